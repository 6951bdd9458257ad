"""Hostile-load client for paf's resource tests (runs inside the test's namespace, the kernel's TCP).

  holdconns.py HOST PORT COUNT MODE HOLD_SECONDS

Opens COUNT connections to HOST:PORT (at most 128 handshakes at once, as a patient attacker
would: a burst past the listener's backlog would meet SYN cookies instead), sends what MODE
says, then holds them open doing nothing else for up to HOLD_SECONDS, watching which ones the
server ends. MODE: silent (send nothing), byte (one byte of a request head), h2partial (half the
HTTP/2 preface), h2preface (the whole preface, then nothing), keepalive (one complete HTTP/1.1
request, read the response, then stay idle), trickle (one request, then a second one a byte
every 3 s).
Prints "ready {json}" once every connection is established (or failed), then at the end one JSON
line: how many the server closed with FIN (eof) or RST (reset), how many are still open, and the
youngest and oldest age (s since its handshake) at which a connection was closed. Ends early once
every connection is closed, or when stdin closes (the test lets go). Bounded: HOLD_SECONDS.
"""
import errno, json, os, resource, selectors, socket, sys, time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
IN_FLIGHT = 128

def main():
    host, port, count, mode, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    sel = selectors.DefaultSelector()
    socks = {}
    st = {"failed": 0, "established": 0, "eof": 0, "reset": 0, "minAge": None, "maxAge": None}
    t0 = time.monotonic()
    end = t0 + hold

    def closed(fd, reset):
        c = socks.pop(fd)
        sel.unregister(c["s"])
        c["s"].close()
        st["reset" if reset else "eof"] += 1
        age = round(time.monotonic() - c["opened"], 3)
        st["minAge"] = age if st["minAge"] is None else min(st["minAge"], age)
        st["maxAge"] = age if st["maxAge"] is None else max(st["maxAge"], age)

    def on_event(fd):
        c = socks[fd]
        s = c["s"]
        if c["state"] == "connecting":
            sel.unregister(s)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                st["failed"] += 1
                s.close()
                del socks[fd]
                return
            c["state"] = "open"
            c["opened"] = time.monotonic()
            st["established"] += 1
            try:
                if mode == "byte":
                    s.send(b"G")
                elif mode == "h2partial":
                    s.send(PREFACE[:12])
                elif mode == "h2preface":
                    s.send(PREFACE)
                elif mode in ("keepalive", "trickle"):
                    s.send(REQUEST)
            except OSError:
                pass
            sel.register(s, selectors.EVENT_READ)
            return
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            return closed(fd, True)
        except OSError:
            return
        if d:
            c["got"] = (c["got"] + d)[-65536:]
        else:
            closed(fd, False)

    started = 0
    connecting = 0
    while started < count or connecting > 0:
        if time.monotonic() > min(end, t0 + 60):
            break
        while started < count and connecting < IN_FLIGHT:
            started += 1
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setblocking(False)
            e = s.connect_ex((host, port))
            if e not in (0, errno.EINPROGRESS):
                st["failed"] += 1
                s.close()
                continue
            socks[s.fileno()] = {"s": s, "state": "connecting", "got": b""}
            sel.register(s, selectors.EVENT_WRITE)
        for key, _ in sel.select(timeout=0.5):
            on_event(key.fd)
        connecting = sum(1 for c in socks.values() if c["state"] == "connecting")
    for fd in [fd for fd, c in socks.items() if c["state"] == "connecting"]:
        socks[fd]["s"].close()
        sel.unregister(socks[fd]["s"])
        del socks[fd]
        st["failed"] += 1
    print("ready " + json.dumps({"established": st["established"], "failed": st["failed"], "ms": round((time.monotonic() - t0) * 1000)}), flush=True)
    sel.register(sys.stdin, selectors.EVENT_READ)
    stdin_open = True
    trickle_at = time.monotonic() + 3
    trickle_pos = {}
    while socks and time.monotonic() < end and stdin_open:
        now = time.monotonic()
        if mode == "trickle" and now >= trickle_at:
            trickle_at = now + 3
            for fd, c in socks.items():
                # After the first response: the second request, one byte at a time.
                if b"\r\n\r\n" in c["got"]:
                    i = trickle_pos.get(fd, 0)
                    if i < len(REQUEST):
                        try:
                            c["s"].send(REQUEST[i:i + 1])
                        except OSError:
                            pass
                        trickle_pos[fd] = i + 1
        for key, _ in sel.select(timeout=0.2):
            if key.fileobj is sys.stdin:
                if not os.read(sys.stdin.fileno(), 4096):
                    stdin_open = False
                    sel.unregister(sys.stdin)
                continue
            on_event(key.fd)
    st["open"] = len(socks)
    print(json.dumps(st), flush=True)

if __name__ == "__main__":
    main()
