// A TCP connection fed random segments from a peer with one byte stream: in-window, old, future
// and far-off sequence numbers (the peer's wrap at 2^32 within the stream), random lengths cut
// from the stream, the FIN where it ends (and the same FIN cut at two boundaries), bytes past the
// FIN once the receiver holds it (a broken peer), stray SYN/RST/URG/ECE flags, random ACK numbers,
// windows, SACK blocks and timestamps, with time moving in between (retransmission, delayed ACK,
// persist and keepalive timers fire). Whatever comes, the application sees a prefix of the peer's
// stream, never data after the end, at most one end, and the connection never throws. It finds
// both FIN bugs fixed on 2026-12-02 (a FIN taken twice; data past the FIN handed up after the
// end). Seeded: a failure names its seed (PAF_SEGFUZZ_SEED replays one, PAF_SEGFUZZ_CONNS runs
// more; 10,000 pass).
import { describe, expect, it } from "vitest";
import { SeededRandom } from "../../../stack/core/random.js";
import { ACK, CWR, ECE, FIN, PSH, RST, SYN, URG } from "../../../stack/wire/tcp.js";
import { pattern } from "./helpers.js";
import { harness } from "./tcbharness.js";

const CONNS = Number(process.env.PAF_SEGFUZZ_CONNS ?? 1000);
const SEGMENTS = 400;
const IRS = 0xfffff000; // the peer's ISS: its sequence numbers wrap at 2^32 within the stream

function fuzzOne(seed: number): string | undefined {
  const r = new SeededRandom(seed);
  const int = (n: number) => r.u32() % n;
  const chance = (p: number) => r.u32() / 2 ** 32 < p;
  const withTs = chance(0.5);
  const h = harness({ timestamps: withTs, sack: true, receiveBufferSize: 16384 + int(65536) }, seed);
  const n = chance(0.5) ? int(12_000) : int(120_000); // the peer's stream, then its FIN
  const stream = pattern(n, seed);
  let ended = false;
  let got = 0;
  let trouble: string | undefined;
  const events = h.tcb.events!;
  h.tcb.events = {
    ...events,
    onData: (d) => {
      if (ended) trouble ??= `data after the end (${d.length} bytes)`;
      if (got + d.length > n) trouble ??= `data past the peer's stream (${got + d.length} > ${n})`;
      else if (!Buffer.from(d).equals(stream.subarray(got, got + d.length))) trouble ??= `data differs from the stream at ${got}`;
      got += d.length;
      h.tcb.consumed(d.length); // the application reads at once: the window reopens
    },
    onEnd: () => {
      if (ended) trouble ??= "a second end";
      if (got !== n) trouble ??= `end after ${got} of ${n} bytes`;
      ended = true;
    },
  };
  let ts = 1000;
  try {
    h.tcb.connect(1000);
    const syn = h.out()[0]!;
    h.tcb.input(h.seg({ seq: IRS, ack: 1001, flags: SYN | ACK, mss: 536 + int(1000), wscale: int(15), sackPermitted: true, hasTimestamp: withTs, tsVal: ts, tsEcr: syn.repr.ts?.val ?? 0 }));
    if (chance(0.5)) h.tcb.send(Buffer.alloc(int(20_000), 0x61));
    /** The peer sends stream bytes [off, off + len), or with `junk` bytes past its stream from off. */
    const send = (off: number, len: number, junk: boolean) => {
      const seq = (IRS + 1 + off) >>> 0;
      const payload = junk ? Buffer.concat([stream.subarray(Math.min(off, n)), pattern(len, seed + off)]).subarray(0, len) : stream.subarray(off, off + len);
      let flags = ACK;
      if (!junk && off + len === n && chance(0.8)) flags |= FIN;
      if (chance(0.3)) flags |= PSH;
      if (chance(0.02)) flags |= SYN;
      if (chance(0.002)) flags |= RST;
      if (chance(0.02)) flags |= URG | ECE | CWR;
      if (chance(0.02)) flags &= ~ACK;
      ts += int(3);
      h.tcb.input(
        h.seg({
          seq,
          ack: chance(0.8) ? (h.tcb.sndUna + int(((h.tcb.sndMax - h.tcb.sndUna) >>> 0) + 1)) >>> 0 : r.u32(),
          flags,
          window: chance(0.1) ? 0 : int(65536),
          payload,
          hasTimestamp: withTs && chance(0.95),
          tsVal: chance(0.99) ? ts : (ts + int(2 ** 20) - 2 ** 19) >>> 0,
          tsEcr: int(100_000),
          sack: [r.u32(), r.u32(), r.u32(), r.u32(), 0, 0, 0, 0],
          sackCount: chance(0.3) ? 1 + int(2) : 0,
        }),
      );
    };
    const clip = (off: number, len: number) => Math.max(0, Math.min(len, n - off));
    for (let i = 0; i < SEGMENTS && h.tcb.state !== "CLOSED" && !trouble; i++) {
      h.out();
      // Where the peer's segment starts: at what it has delivered, ahead of it (out of order),
      // behind it (a retransmission), the tail then all that is left in one (the same FIN cut at
      // two boundaries), bytes straddling or past its FIN (a broken peer), anywhere at all.
      const at = Math.min(n, (h.tcb.rcvNxt - IRS - 1) >>> 0);
      const pick = int(100);
      if (pick < 30) send(at, clip(at, 1 + int(3000)), false);
      else if (pick < 55) {
        const off = at + 1 + int(4000);
        send(off, clip(off, 1 + int(3000)), false);
      } else if (pick < 68) {
        const off = Math.max(0, at - int(3000));
        send(off, clip(off, 1 + int(3000)), false);
      } else if (pick < 80) {
        const off = Math.max(at, n - 1 - int(2500));
        send(off, n - off, false);
        if (chance(0.5) && n - at <= 8000) send(at, n - at, false);
      } else if (pick < 90) {
        // Only once the receiver holds the FIN: before, bytes past it are data as far as it can tell.
        if (ended || h.tcb.ooo.segs.some((x) => x.fin)) send(Math.max(0, n - int(300)), 1 + int(600), true);
      } else send(int(2 ** 31), int(1000), false);
      if (chance(0.2)) h.clock.advance(int(chance(0.1) ? 130_000 : 300));
      if (chance(0.05)) h.tcb.send(Buffer.alloc(int(3000), 0x62));
      if (chance(0.01)) h.tcb.close();
    }
    h.clock.advance(300_000); // every timer to its end
    h.out();
  } catch (e) {
    trouble ??= `threw: ${(e as Error).stack}`;
  }
  return trouble;
}

describe("random segments from a peer with one consistent stream", () => {
  it(`${CONNS} connections x ${SEGMENTS} segments: a prefix of the stream, nothing after the end, one end, no exception`, () => {
    const only = process.env.PAF_SEGFUZZ_SEED;
    const seeds = only ? [Number(only)] : Array.from({ length: CONNS }, (_, i) => 20261202 + i);
    const failures: string[] = [];
    for (const seed of seeds) {
      const t = fuzzOne(seed);
      if (t) failures.push(`seed ${seed}: ${t}`);
      if (failures.length >= 5) break;
    }
    expect(failures).toEqual([]);
  });
});
