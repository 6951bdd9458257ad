#!/usr/bin/env python3
"""Issue 16: per-request server time and stalls from a capture of HTTP/1.1 keep-alive load.

  python3 scripts/diag/pcap-latency.py FILE.pcap SERVER_IP [PORT] [EVENTS.json]

With EVENTS.json (loopstats.mjs's PAF_DIAG_EVENTS: the server's GC pauses and TAP batches, wall
clock), each request is checked for a GC pause inside its server time, and the slow ones (over
the p99) are attributed.

For each connection, a request is a client->server segment with payload; its server time is
from that segment to the first server->client segment with payload after it (as seen on the
wire next to the client: what the stack and the app add, without the client's own delays).
Also reported: segments per response, pure ACKs each way, gaps >= 30 ms inside a connection
(a delayed-ACK / Nagle stall would show as ~40 ms), retransmissions (a repeated seq with data).
"""
import struct
import bisect
import json
import sys
from collections import defaultdict

from pcaplib import packets


def main():
    path, server = sys.argv[1], sys.argv[2]
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 80
    events = json.load(open(sys.argv[4])) if len(sys.argv) > 4 else None
    spans = []  # (request time, server ms)
    srv = bytes(int(x) for x in server.split("."))
    pending = {}  # conn -> time of the oldest unanswered request
    last = {}
    server_ms = []
    seg_per_resp = defaultdict(int)
    cur_resp = {}
    acks = {"c2s": 0, "s2c": 0}
    data = {"c2s": 0, "s2c": 0}
    gaps = []
    seen = set()
    retrans = 0
    for ts, p in packets(path):
        if len(p) < 34 or p[12:14] != b"\x08\x00":
            continue
        ihl = (p[14] & 0x0F) * 4
        if p[23] != 6:
            continue
        ip_len = struct.unpack(">H", p[16:18])[0]
        src, dst = p[26:30], p[30:34]
        t = 14 + ihl
        sport, dport, seq = struct.unpack(">HHI", p[t : t + 8])
        doff = (p[t + 12] >> 4) * 4
        flags = p[t + 13]
        plen = ip_len - ihl - doff
        if dst == srv and dport == port:
            conn, way = sport, "c2s"
        elif src == srv and sport == port:
            conn, way = dport, "s2c"
        else:
            continue
        if flags & 0x07:  # SYN/FIN/RST: connection setup and teardown
            continue
        if conn in last and ts - last[conn] >= 0.030:
            gaps.append((round((ts - last[conn]) * 1000, 1), conn, way, plen))
        last[conn] = ts
        if plen <= 0:
            acks[way] += 1
            continue
        data[way] += 1
        key = (conn, way, seq)
        if key in seen:
            retrans += 1
        seen.add(key)
        if way == "c2s":
            pending.setdefault(conn, ts)
            if conn in cur_resp:
                seg_per_resp[cur_resp.pop(conn)] += 1
        else:
            if conn in pending:
                t0 = pending.pop(conn)
                server_ms.append((ts - t0) * 1000)
                spans.append((t0, ts))
                cur_resp[conn] = 1
            elif conn in cur_resp:
                cur_resp[conn] += 1
    server_ms.sort()
    n = len(server_ms)
    pct = lambda q: server_ms[min(n - 1, int(q * n))] if n else float("nan")
    print(f"requests answered: {n}; server time ms p50 {pct(.5):.3f} p90 {pct(.9):.3f} p99 {pct(.99):.3f} p99.9 {pct(.999):.3f} max {server_ms[-1] if n else 0:.3f}")
    print(f"data segments c2s {data['c2s']} s2c {data['s2c']}; pure ACKs c2s {acks['c2s']} s2c {acks['s2c']}; segments per response {dict(seg_per_resp)}; retransmissions {retrans}")
    if events:
        attribute(spans, events, pct(.99))
    print(f"gaps >= 30 ms inside a connection: {len(gaps)} {sorted(gaps, reverse=True)[:10]}")



def attribute(spans, events, p99):
    """Share of requests, and of those slower than p99, whose server time holds a GC pause or a long batch."""
    gc = sorted((s / 1000, (s + d) / 1000, d) for s, d in events["gc"])
    gcs = [g[0] for g in gc]
    bt = sorted((s / 1000, (s + d) / 1000, d) for s, d, *_ in events["batches"])
    bts = [b[0] for b in bt]

    def gc_in(a, b):
        i = bisect.bisect_left(gcs, a - 0.05)
        tot = 0.0
        while i < len(gc) and gc[i][0] < b:
            if gc[i][1] > a:
                tot += gc[i][2]
            i += 1
        return tot

    def longest_batch(a, b):
        i = bisect.bisect_left(bts, a - 0.05)
        m = 0.0
        while i < len(bt) and bt[i][0] < b:
            if bt[i][1] > a:
                m = max(m, bt[i][2])
            i += 1
        return m

    if not gc and not bt:
        print("no events recorded")
        return
    rows = [((b - a) * 1000, gc_in(a, b), longest_batch(a, b)) for a, b in spans]
    slow = [r for r in rows if r[0] > p99]
    with_gc = [r for r in rows if r[1] > 0]
    print(f"GC pauses recorded {len(gc)} (sum {sum(g[2] for g in gc):.1f} ms); requests with a GC pause inside their server time: {100 * len(with_gc) / len(rows):.1f}%")
    if slow:
        print(f"requests over p99 ({p99:.2f} ms): {len(slow)}; with a GC pause inside: {100 * sum(1 for r in slow if r[1] > 0) / len(slow):.1f}%, "
              f"mean GC inside {sum(r[1] for r in slow) / len(slow):.2f} ms; with a batch >= 2 ms inside: {100 * sum(1 for r in slow if r[2] >= 2) / len(slow):.1f}%; "
              f"with neither: {100 * sum(1 for r in slow if r[1] == 0 and r[2] < 2) / len(slow):.1f}%")
    nogc = sorted(r[0] for r in rows if r[1] == 0)
    if nogc:
        print(f"server time of requests with no GC inside: p50 {nogc[len(nogc) // 2]:.3f} p99 {nogc[int(.99 * len(nogc))]:.3f} ms")
    yes = sorted(r[0] for r in with_gc)
    if yes:
        print(f"server time of requests with GC inside: p50 {yes[len(yes) // 2]:.3f} p99 {yes[int(.99 * len(yes))]:.3f} ms")


main()
