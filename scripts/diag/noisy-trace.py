#!/usr/bin/env python3
"""Issue 15: what tenant 1's slowest requests overlapped in the server (noisy-trace.mjs).

  python3 scripts/diag/noisy-trace.py T1.pcap TIMELINE.json [--sched PERF.data --pid PID] [--examples N]

A request is a client->server segment with payload on tenant 1's TAP; its server time runs to
the first server->client segment with payload on that connection (on the wire, as the kernel
timestamps frames on the TAP). For the requests at or over the 98th percentile, the time of
each kind of timeline event inside [request, response] is summed (timeline.mjs: "b0"/"b1" a
tenant's TAP batch, "b0app" what ran after it in its nextTicks and microtasks, "s" a scheduler
turn, "vp" a polled visit inside it, "gc"; from perf: "offR" preempted, "offS" asleep), as
ms per slow request; the rest ("other") is loop work none of these cover. With --examples N,
N slow requests are printed event by event.
"""
import argparse
import bisect
import json
import random
import re
import struct
import subprocess

from pcaplib import packets


def requests(path, port=80):
    """(request ms, response ms) per request, epoch ms."""
    pending, out = {}, []
    for ts, d in packets(path):
        t = ts * 1000
        if len(d) < 34 or d[12:14] != b"\x08\x00":
            continue
        ihl = (d[14] & 15) * 4
        total = struct.unpack(">H", d[16:18])[0]
        tcp = d[14 + ihl :]
        sp, dp = struct.unpack(">HH", tcp[:4])
        if total - ihl - (tcp[12] >> 4) * 4 <= 0:
            continue
        if dp == port:
            pending.setdefault(sp, t)
        elif sp == port and dp in pending:
            out.append((pending.pop(dp), t))
    return out


def off_cpu(path, pid, clock):
    """[kind, start, ms] for each time the thread was off its CPU (perf sched_switch, CLOCK_MONOTONIC)."""
    txt = subprocess.run(["perf", "script", "-i", path], capture_output=True, text=True).stdout
    pat = re.compile(r" (\d+\.\d+): sched:sched_switch: prev_comm=.* prev_pid=(\d+) .*prev_state=(\S+) ==> next_comm=.* next_pid=(\d+)")
    out, left = [], None
    _, origin, mono0 = clock
    for line in txt.splitlines():
        m = pat.search(line)
        if not m:
            continue
        t = float(m.group(1)) * 1000 - mono0 + origin
        if int(m.group(2)) == pid:
            left = (t, "offR" if m.group(3).startswith("R") else "offS")
        elif int(m.group(4)) == pid and left:
            out.append([left[1], left[0], t - left[0]])
            left = None
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pcap")
    ap.add_argument("timeline")
    ap.add_argument("--sched")
    ap.add_argument("--pid", type=int)
    ap.add_argument("--examples", type=int, default=0)
    a = ap.parse_args()
    ev = json.load(open(a.timeline))
    clock = next(e for e in ev if e[0] == "clock")
    ev = [e for e in ev if e[0] != "clock"]
    if a.sched and a.pid:
        ev += off_cpu(a.sched, a.pid, clock)
    ev.sort(key=lambda e: e[1])
    starts = [e[1] for e in ev]
    reqs = [r for r in requests(a.pcap) if r[0] >= ev[0][1] and r[1] <= ev[-1][1]] if ev else []
    if not reqs:
        print("no requests inside the timeline")
        return
    times = sorted(b - t for t, b in reqs)
    n = len(times)
    q = lambda p: times[min(n - 1, int(p * n))]
    print(f"tenant 1: {n} requests, server time (wire) ms p50 {q(0.5):.3f} p90 {q(0.9):.3f} p99 {q(0.99):.3f} max {times[-1]:.3f}")
    thr = q(0.98)
    slow = [(t, b) for t, b in reqs if b - t >= thr]
    parts = lambda e: [(e[0], e[1], e[1] + e[2])] + ([(e[0] + "app", e[1] + e[2], e[1] + e[3])] if e[0][0] == "b" and len(e) > 3 and e[3] > e[2] else [])
    total = {}
    for t, b in slow:
        i = bisect.bisect_left(starts, t - 50)
        while i < len(ev) and ev[i][1] < b:
            for k, s, en in parts(ev[i]):
                ov = min(en, b) - max(s, t)
                if ov > 0:
                    total[k] = total.get(k, 0) + ov
            i += 1
    mean = {k: v / len(slow) for k, v in total.items()}
    all_ms = sum(b - t for t, b in slow) / len(slow)
    # "vp" is inside "s"; GC and off-CPU time can fall inside either: "other" is only an estimate.
    covered = sum(v for k, v in mean.items() if k != "vp")
    order = ["b0", "b0app", "s", "vp", "b1", "b1app", "gc", "offR", "offS"]
    print(f"the slowest {len(slow)} (>= {thr:.3f} ms, mean {all_ms:.3f} ms), ms each:", ", ".join(f"{k} {mean[k]:.3f}" for k in order if k in mean), f", other {max(0.0, all_ms - covered):.3f}")
    random.seed(1)
    for t, b in random.sample(slow, min(a.examples, len(slow))):
        print(f"--- request of {b - t:.3f} ms")
        i = bisect.bisect_left(starts, t - 50)
        while i < len(ev) and ev[i][1] < b:
            e = ev[i]
            i += 1
            end = e[1] + max(e[2], e[3] if e[0][0] == "b" and len(e) > 3 else 0)
            if end < t:
                continue
            extra = f" (with its ticks {e[3]:.3f}, {e[4]} frames)" if e[0][0] == "b" else (f" (quantum {e[4]} ms)" if e[0] in ("vp", "vr") else "")
            print(f"  {e[1] - t:+.3f} {e[0]} {e[2]:.3f} ms{extra}")
        print(f"  {b - t:+.3f} response")


if __name__ == "__main__":
    main()
