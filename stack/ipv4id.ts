/**
 * IPv4 Identification values that tell an observer nothing (RFC 6864, RFC 7739).
 *
 * One global counter, +1 per datagram, lets anyone who can ping us count the datagrams we send to
 * everybody else (the idle scan: we become the "zombie"), and predict the ID of our next
 * fragments (blind fragment injection). Instead, as Linux does (__ip_select_ident):
 * - an atomic datagram (DF set, never fragmented) carries ID 0: RFC 6864 §4.1 lets the source
 *   put any value there, and 0 says nothing (Linux's RSTs, SYN-ACKs and unconnected sockets);
 * - a datagram that may be fragmented takes the next value of one of BUCKETS counters, chosen by
 *   a keyed hash of (source, destination, protocol) (RFC 7739 §5.3): IDs stay unique per
 *   destination for 65,536 datagrams, as reassembly needs (RFC 6864 §4.2), but traffic to other
 *   destinations does not show, and each counter jumps by a random amount that grows with the
 *   time since it was last used, so even a shared bucket reveals no count. Counters and the hash
 *   key start random.
 */
import type { Random } from "./core/random.js";

/** Counters kept (a fixed table, 10 KiB per stack; Linux sizes its own from memory, >= 2048). */
const BUCKETS = 1024;

export class Ipv4Ident {
  /** Made at the first fragmentable datagram: a stack that never sends one (TCP sets DF) pays nothing. */
  private ids: Uint16Array | undefined;
  private lastUsed: Float64Array | undefined;
  private k0 = 0;
  private k1 = 0;

  constructor(private readonly random: Random) {}

  /** The Identification for a datagram that may be fragmented, from `src` to `dst` (u32 addresses). */
  next(src: number, dst: number, protocol: number, now: number): number {
    let ids = this.ids;
    if (!ids) {
      ids = this.ids = new Uint16Array(BUCKETS);
      this.lastUsed = new Float64Array(BUCKETS);
      this.random.fill(new Uint8Array(ids.buffer));
      this.k0 = this.random.u32();
      this.k1 = this.random.u32();
    }
    const b = hsiphash3(this.k0, this.k1, dst, src, protocol) & (BUCKETS - 1);
    const idle = now - this.lastUsed![b]!;
    this.lastUsed![b] = now;
    const jump = idle >= 1 ? this.random.u32() % Math.min(Math.floor(idle), 65536) : 0;
    const id = (ids[b]! + 1 + jump) & 0xffff;
    ids[b] = id;
    return id;
  }
}

/**
 * HalfSipHash-2-4 (the 32-bit SipHash Linux calls hsiphash) of three 32-bit words under the
 * random key (k0, k1): nobody who lacks the key can pick addresses that share our buckets.
 * The state stays in locals, one loop of 12 rounds: this runs for every fragmentable datagram.
 */
export function hsiphash3(k0: number, k1: number, a: number, b: number, c: number): number {
  let v0 = k0 | 0;
  let v1 = k1 | 0;
  let v2 = (0x6c796765 ^ k0) | 0;
  let v3 = (0x74656462 ^ k1) | 0;
  let m = 0;
  for (let r = 0; r < 12; r++) {
    // Two compression rounds per word (a, b, c, then the length byte 12), four to finish.
    if (r < 8 && (r & 1) === 0) {
      m = r === 0 ? a : r === 2 ? b : r === 4 ? c : 12 << 24;
      v3 ^= m;
    }
    v0 = (v0 + v1) | 0;
    v1 = rotl(v1, 5) ^ v0;
    v0 = rotl(v0, 16);
    v2 = (v2 + v3) | 0;
    v3 = rotl(v3, 8) ^ v2;
    v0 = (v0 + v3) | 0;
    v3 = rotl(v3, 7) ^ v0;
    v2 = (v2 + v1) | 0;
    v1 = rotl(v1, 13) ^ v2;
    v2 = rotl(v2, 16);
    if (r < 8 && (r & 1) === 1) v0 ^= m;
    if (r === 7) v2 ^= 0xff;
  }
  return (v1 ^ v3) >>> 0;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
