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
  private readonly ids = new Uint16Array(BUCKETS);
  private readonly lastUsed = new Float64Array(BUCKETS);
  private readonly k0: number;
  private readonly k1: number;
  /** HalfSipHash state, reused. */
  private readonly v = new Int32Array(4);

  constructor(private readonly random: Random) {
    random.fill(new Uint8Array(this.ids.buffer));
    this.k0 = random.u32();
    this.k1 = random.u32();
  }

  /** The Identification for a datagram that may be fragmented, from `src` to `dst` (u32 addresses). */
  next(src: number, dst: number, protocol: number, now: number): number {
    const b = this.hash(dst, src, protocol) & (BUCKETS - 1);
    const idle = now - this.lastUsed[b]!;
    this.lastUsed[b] = now;
    const jump = idle >= 1 ? this.random.u32() % Math.min(Math.floor(idle), 65536) : 0;
    const id = (this.ids[b]! + 1 + jump) & 0xffff;
    this.ids[b] = id;
    return id;
  }

  /**
   * HalfSipHash-2-4 (the 32-bit SipHash Linux calls hsiphash) of three 32-bit words under the
   * random key: nobody who lacks the key can pick addresses that share our buckets.
   */
  private hash(a: number, b: number, c: number): number {
    const v = this.v;
    v[0] = this.k0;
    v[1] = this.k1;
    v[2] = 0x6c796765 ^ this.k0;
    v[3] = 0x74656462 ^ this.k1;
    this.absorb(a);
    this.absorb(b);
    this.absorb(c);
    this.absorb(12 << 24); // the length byte, no tail
    v[2] ^= 0xff;
    for (let i = 0; i < 4; i++) this.round();
    return (v[1]! ^ v[3]!) >>> 0;
  }

  private absorb(m: number): void {
    this.v[3] ^= m;
    this.round();
    this.round();
    this.v[0] ^= m;
  }

  private round(): void {
    const v = this.v;
    v[0] += v[1]!;
    v[1] = rotl(v[1]!, 5) ^ v[0]!;
    v[0] = rotl(v[0]!, 16);
    v[2] += v[3]!;
    v[3] = rotl(v[3]!, 8) ^ v[2]!;
    v[0] += v[3]!;
    v[3] = rotl(v[3]!, 7) ^ v[0]!;
    v[2] += v[1]!;
    v[1] = rotl(v[1]!, 13) ^ v[2]!;
    v[2] = rotl(v[2]!, 16);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
