"""Send scapy-crafted frames on an interface and print the replies as JSON (for hostile.test.ts).

    python3 scapy_probe.py IFACE REPLY_SRC_MAC WAIT_SECONDS < script

The script (Python, with scapy's names in scope) builds `pkts`, a list of frames or a list of
lists (rounds, sent WAIT_SECONDS apart), and may define `action()`, called once the capture runs
(after the frames are sent), to make the kernel talk. Everything REPLY_SRC_MAC sends on IFACE from
just before the first frame until WAIT_SECONDS after the last round (or the action) is printed,
one JSON object per frame, with the fields the tests read (IPv4/IPv6 addresses and ID, TCP flags and numbers, ICMP type, code and
the 32-bit word after them, which is the parameter problem pointer).
"""
import json
import sys
import threading
import time

from scapy.all import *  # noqa: F401,F403 (the script uses scapy's names)
from scapy.all import AsyncSniffer, ICMP, IP, IPv6, TCP, UDP, raw, sendp, conf

conf.verb = 0


def describe(p):
    d = {"len": len(p), "round": getattr(p, "probe_round", 0)}
    if IP in p:
        ip = p[IP]
        d["ip"] = {"src": ip.src, "dst": ip.dst, "id": ip.id, "df": bool(int(ip.flags) & 2), "proto": ip.proto, "frag": int(ip.frag), "mf": bool(int(ip.flags) & 1)}
    if IPv6 in p:
        ip6 = p[IPv6]
        d["ip6"] = {"src": ip6.src, "dst": ip6.dst, "nh": ip6.nh, "hlim": ip6.hlim}
        if ip6.nh == 58:
            b = raw(ip6.payload)
            d["icmp6"] = {"type": b[0], "code": b[1], "rest": int.from_bytes(b[4:8], "big"), "target": str(ip6.payload.tgt) if hasattr(ip6.payload, "tgt") else None}
    if TCP in p and not (IP in p and p[IP].frag):
        t = p[TCP]
        d["tcp"] = {"sport": t.sport, "dport": t.dport, "flags": int(t.flags), "seq": t.seq, "ack": t.ack, "len": len(t.payload)}
    if ICMP in p:
        c = p[ICMP]
        d["icmp"] = {"type": c.type, "code": c.code, "id": c.id, "seq": c.seq}
    if UDP in p:
        d["udp"] = {"sport": p[UDP].sport, "dport": p[UDP].dport}
    return d


def main():
    iface, mac, wait = sys.argv[1], sys.argv[2].lower(), float(sys.argv[3])
    scope = dict(globals())
    exec(compile(sys.stdin.read(), "<probe script>", "exec"), scope)
    pkts = scope.get("pkts", [])
    rounds = pkts if pkts and isinstance(pkts[0], list) else [pkts]
    got = []
    current = [0]

    def keep(p):
        p.probe_round = current[0]
        got.append(p)

    started = threading.Event()
    sniffer = AsyncSniffer(iface=iface, lfilter=lambda p: p.src.lower() == mac, prn=keep, started_callback=started.set, store=False)
    sniffer.start()
    started.wait(5)
    for i, r in enumerate(rounds):
        current[0] = i
        if r:
            sendp(r, iface=iface, inter=0.005)
        time.sleep(wait)
    if "action" in scope:
        scope["action"]()
        time.sleep(wait)
    sniffer.stop()
    print(json.dumps([describe(p) for p in got]))


main()
