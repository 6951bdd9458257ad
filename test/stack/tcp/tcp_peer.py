"""Kernel-side TCP peer for paf's TAP tests (runs inside the test's namespace).

  tcp_peer.py send HOST PORT SIZE        connect, send SIZE random bytes, half-close, read the
                                         peer's reply; print {"sha": ours, "reply": theirs}
  tcp_peer.py serve PORT SIZE [--rst]    accept one connection; send SIZE random bytes while
                                         hashing what arrives; print {"sent": sha, "got": sha}
                                         (--rst: after accepting, abort with RST instead)
  tcp_peer.py slowread PORT SECONDS      accept one connection, read nothing for SECONDS, then
                                         read everything; print {"got": bytes, "sha": sha}
Bounded: every socket has a timeout.
"""
import hashlib, json, os, socket, struct, sys, threading, time

def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET

def send_random(c, size):
    """Send `size` random bytes, then half-close; returns their SHA-256 hex digest."""
    h = hashlib.sha256()
    left = size
    while left > 0:
        b = os.urandom(min(65536, left))
        h.update(b)
        c.sendall(b)
        left -= len(b)
    c.shutdown(socket.SHUT_WR)
    return h.hexdigest()

def listener(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.listen(8)
    s.settimeout(60)
    print("ready", flush=True)
    return s

def main():
    mode = sys.argv[1]
    if mode == "send":
        host, port, size = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        c = socket.socket(family(host), socket.SOCK_STREAM)
        c.settimeout(120)
        c.connect((host, port))
        sha = send_random(c, size)
        reply = b""
        while True:
            d = c.recv(65536)
            if not d:
                break
            reply += d
        print(json.dumps({"sha": sha, "reply": reply.decode()}), flush=True)
    elif mode == "serve":
        port, size = int(sys.argv[2]), int(sys.argv[3])
        s = listener(port)
        c, _ = s.accept()
        c.settimeout(120)
        if "--rst" in sys.argv:
            time.sleep(0.2)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
            print(json.dumps({"rst": True}), flush=True)
            return
        got = hashlib.sha256()
        n = [0]
        def reader():
            while True:
                d = c.recv(65536)
                if not d:
                    break
                got.update(d)
                n[0] += len(d)
        t = threading.Thread(target=reader)
        t.start()
        sent = send_random(c, size)
        t.join(120)
        print(json.dumps({"sent": sent, "got": got.hexdigest(), "gotBytes": n[0]}), flush=True)
    elif mode == "slowread":
        port, secs = int(sys.argv[2]), float(sys.argv[3])
        s = listener(port)
        c, _ = s.accept()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.settimeout(120)
        time.sleep(secs)
        h = hashlib.sha256()
        n = 0
        while True:
            d = c.recv(65536)
            if not d:
                break
            h.update(d)
            n += len(d)
        print(json.dumps({"got": n, "sha": h.hexdigest()}), flush=True)

main()
