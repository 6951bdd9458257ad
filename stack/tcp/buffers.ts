/**
 * Per-connection buffers: the send queue (references to the user's chunks until acknowledged,
 * copied into frames only when segmented), the SACK scoreboard (RFC 2018 / RFC 6675), and the
 * out-of-order receive queue (bounded in bytes and segments).
 */
import { seqAdd, seqGe, seqGt, seqLe, seqLt, seqMax, seqMin, seqSub } from "./seq.js";
import { copyBytes } from "../wire/addr.js";

/** Bytes from sequence `base` onward, as a list of chunks. */
export class SendQueue {
  private chunks: Uint8Array[] = [];
  private head = 0; // offset into chunks[0]
  /** Total bytes queued (sent or not, not yet acknowledged). */
  length = 0;

  push(c: Uint8Array): void {
    if (c.length === 0) return;
    this.chunks.push(c);
    this.length += c.length;
  }

  /** Drop `n` acknowledged bytes from the front. */
  consume(n: number): void {
    this.length -= n;
    while (n > 0) {
      const c = this.chunks[0]!;
      const avail = c.length - this.head;
      if (n < avail) {
        this.head += n;
        return;
      }
      n -= avail;
      this.chunks.shift();
      this.head = 0;
    }
  }

  /** Copy `n` bytes starting `off` bytes from the front into dst at dstOff. */
  copy(off: number, n: number, dst: Uint8Array, dstOff: number): void {
    let i = 0;
    let pos = off + this.head;
    while (i < this.chunks.length && pos >= this.chunks[i]!.length) {
      pos -= this.chunks[i]!.length;
      i++;
    }
    while (n > 0 && i < this.chunks.length) {
      const c = this.chunks[i]!;
      const take = Math.min(n, c.length - pos);
      dst.set(c.subarray(pos, pos + take), dstOff);
      dstOff += take;
      n -= take;
      pos = 0;
      i++;
    }
  }

  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.length = 0;
  }
}

/** Ranges [l, r) above SND.UNA that the receiver reported holding (merged, sorted). */
export class Scoreboard {
  ranges: Array<[number, number]> = [];
  /** Bytes covered by the ranges. */
  sacked = 0;

  clear(): void {
    this.ranges = [];
    this.sacked = 0;
  }

  /** Add a block reported by the peer; ignored unless within (una, max]. */
  add(l: number, r: number, una: number, max: number): void {
    if (!seqLt(l, r) || seqLe(r, una) || seqGt(r, max)) return;
    l = seqMax(l, una);
    const out: Array<[number, number]> = [];
    let placed = false;
    for (const [a, b] of this.ranges) {
      if (seqLt(b, l)) out.push([a, b]);
      else if (seqLt(r, a)) {
        if (!placed) out.push([l, r]);
        placed = true;
        out.push([a, b]);
      } else {
        l = seqMin(l, a);
        r = seqMax(r, b);
      }
    }
    if (!placed) out.push([l, r]);
    this.ranges = out;
    this.recount();
  }

  /** Forget everything below the new SND.UNA. */
  advance(una: number): void {
    if (this.ranges.length === 0) return;
    const out: Array<[number, number]> = [];
    for (const [a, b] of this.ranges) {
      if (seqLe(b, una)) continue;
      out.push([seqMax(a, una), b]);
    }
    this.ranges = out;
    this.recount();
  }

  private recount(): void {
    let s = 0;
    for (const [a, b] of this.ranges) s += seqSub(b, a);
    this.sacked = s;
  }

  isSacked(seq: number): boolean {
    for (const [a, b] of this.ranges) if (seqLe(a, seq) && seqLt(seq, b)) return true;
    return false;
  }

  /** The highest sequence number SACKed, or undefined. */
  highest(): number | undefined {
    return this.ranges.length ? this.ranges[this.ranges.length - 1]![1] : undefined;
  }

  /** If `seq` falls in a SACKed range, the end of that range; else seq. */
  skip(seq: number): number {
    for (const [a, b] of this.ranges) if (seqLe(a, seq) && seqLt(seq, b)) return b;
    return seq;
  }

  /** Length of the un-SACKed run starting at seq (up to `limit` bytes). */
  holeLength(seq: number, limit: number): number {
    for (const [a] of this.ranges) if (seqGt(a, seq)) return Math.min(limit, seqSub(a, seq));
    return limit;
  }
}

interface OooSegment {
  seq: number;
  data: Uint8Array;
  fin: boolean;
  /** When it last arrived (a counter): SACK blocks go most recent first. */
  stamp?: number;
}

/** Out-of-order segments waiting for the hole before them to fill (RFC 9293 §3.10.7.4, seventh). */
export class ReorderQueue {
  segs: OooSegment[] = [];
  bytes = 0;
  private arrivals = 0;
  constructor(
    /** The receive buffer: grows with it (autotuning). */
    public maxBytes: number,
    private readonly maxSegments: number,
  ) {}

  /** Store a copy of an out-of-order segment. Returns false if a bound refused it. */
  add(seq: number, data: Uint8Array, fin: boolean): boolean {
    if (this.segs.length >= this.maxSegments || this.bytes + data.length > this.maxBytes) return false;
    // Keep sorted by seq; trim overlaps with what is already held.
    let i = 0;
    while (i < this.segs.length && seqLt(this.segs[i]!.seq, seq)) i++;
    const prev = this.segs[i - 1];
    if (prev) {
      const pend = seqAdd(prev.seq, prev.data.length);
      if (seqGe(pend, seqAdd(seq, data.length)) && !fin) {
        prev.stamp = ++this.arrivals; // fully duplicate: its block is the one to report first
        return true;
      }
      if (seqGt(pend, seq)) {
        data = data.subarray(seqSub(pend, seq));
        seq = pend;
      }
    }
    const next = this.segs[i];
    if (next && seqGt(seqAdd(seq, data.length), next.seq)) {
      // Cut the tail already held; a FIN travels with the tail, so it goes too (the held copy
      // past this point carries it if it is real).
      data = data.subarray(0, Math.max(0, seqSub(next.seq, seq)));
      fin = false;
    }
    if (data.length === 0 && !fin) {
      if (next) next.stamp = ++this.arrivals;
      return true;
    }
    this.segs.splice(i, 0, { seq, data: copyBytes(data), fin, stamp: ++this.arrivals });
    this.bytes += data.length;
    return true;
  }

  /** Remove and return the segments now contiguous with rcvNxt (trimmed), in order. */
  take(rcvNxt: number): OooSegment[] {
    const out: OooSegment[] = [];
    while (this.segs.length > 0) {
      const s = this.segs[0]!;
      if (seqGt(s.seq, rcvNxt)) break;
      this.segs.shift();
      this.bytes -= s.data.length;
      const end = seqAdd(s.seq, s.data.length);
      // Nothing new in it: its data lies below RCV.NXT, and so does its FIN (at `end`) if it
      // carries one. That FIN came already, with a retransmission of this tail cut at another
      // boundary (RFC 9293 §3.10.7.4: a FIN is taken once); handing it back would advance RCV.NXT
      // past the peer's FIN, and every later ACK would acknowledge data it never sent.
      if (seqLt(end, rcvNxt) || (end === rcvNxt && !s.fin)) continue;
      const d = seqLt(s.seq, rcvNxt) ? s.data.subarray(seqSub(rcvNxt, s.seq)) : s.data;
      out.push({ seq: rcvNxt, data: d, fin: s.fin });
      rcvNxt = seqAdd(rcvNxt, d.length);
      if (s.fin) break;
    }
    return out;
  }

  /**
   * Up to `n` SACK blocks describing what is held, the block holding the segment that arrived
   * last first, then the others from the most recent (RFC 2018 §4: the first block MUST report
   * the segment that triggered the ACK, and the rest SHOULD repeat the most recently reported, so
   * a peer with more holes than blocks still hears of each new one).
   */
  sackBlocks(n: number): number[] {
    const blocks: { start: number; end: number; last: number }[] = [];
    let cur: { start: number; end: number; last: number } | undefined;
    for (const s of this.segs) {
      const end = seqAdd(s.seq, s.data.length);
      const stamp = s.stamp ?? 0;
      if (cur && seqLe(s.seq, cur.end)) {
        cur.end = seqMax(cur.end, end);
        cur.last = Math.max(cur.last, stamp);
      } else {
        cur = { start: s.seq, end, last: stamp };
        blocks.push(cur);
      }
    }
    if (blocks.length > 1) blocks.sort((a, b) => b.last - a.last);
    const out: number[] = [];
    for (let i = 0; i < blocks.length && i < n; i++) out.push(blocks[i]!.start, blocks[i]!.end);
    return out;
  }

  clear(): void {
    this.segs = [];
    this.bytes = 0;
  }
}
