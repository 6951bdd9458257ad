/**
 * SipHash-2-4 (Aumasson and Bernstein, 2012), the keyed pseudo-random function Linux uses for
 * TCP initial sequence numbers and SYN cookies (RFC 6528 §3 asks for a PRF with a secret key).
 * It costs well under a microsecond, where a crypto.createHash() per SYN costs several: connection
 * setup pays for it on every SYN. JavaScript has no 64-bit integers that are cheap, so each 64-bit
 * word is kept as two 32-bit halves (h, l).
 */
export class SipHash {
  private readonly k0h: number;
  private readonly k0l: number;
  private readonly k1h: number;
  private readonly k1l: number;
  // The state v0..v3, as halves.
  private v0h = 0;
  private v0l = 0;
  private v1h = 0;
  private v1l = 0;
  private v2h = 0;
  private v2l = 0;
  private v3h = 0;
  private v3l = 0;
  /** High half of the last tag (hash() returns the low half). */
  high = 0;

  /** `key`: 16 secret bytes. */
  constructor(key: Uint8Array) {
    if (key.length !== 16) throw new RangeError("SipHash needs a 16-byte key");
    this.k0l = le32(key, 0);
    this.k0h = le32(key, 4);
    this.k1l = le32(key, 8);
    this.k1h = le32(key, 12);
  }

  /** The low 32 bits of SipHash-2-4 over the first `len` bytes of `m` (the high 32 in `high`). */
  hash(m: Uint8Array, len = m.length): number {
    this.v0h = (this.k0h ^ 0x736f6d65) >>> 0;
    this.v0l = (this.k0l ^ 0x70736575) >>> 0;
    this.v1h = (this.k1h ^ 0x646f7261) >>> 0;
    this.v1l = (this.k1l ^ 0x6e646f6d) >>> 0;
    this.v2h = (this.k0h ^ 0x6c796765) >>> 0;
    this.v2l = (this.k0l ^ 0x6e657261) >>> 0;
    this.v3h = (this.k1h ^ 0x74656462) >>> 0;
    this.v3l = (this.k1l ^ 0x79746573) >>> 0;
    const whole = len - (len % 8);
    for (let i = 0; i < whole; i += 8) this.compress(le32(m, i + 4), le32(m, i));
    // The last block: the remaining bytes, and the length in the top byte.
    let lo = 0;
    let hi = (len & 0xff) << 24;
    for (let i = whole; i < len; i++) {
      const k = i - whole;
      if (k < 4) lo |= m[i]! << (8 * k);
      else hi |= m[i]! << (8 * (k - 4));
    }
    this.compress(hi >>> 0, lo >>> 0);
    this.v2l = (this.v2l ^ 0xff) >>> 0;
    this.round();
    this.round();
    this.round();
    this.round();
    this.high = (this.v0h ^ this.v1h ^ this.v2h ^ this.v3h) >>> 0;
    return (this.v0l ^ this.v1l ^ this.v2l ^ this.v3l) >>> 0;
  }

  private compress(mh: number, ml: number): void {
    this.v3h = (this.v3h ^ mh) >>> 0;
    this.v3l = (this.v3l ^ ml) >>> 0;
    this.round();
    this.round();
    this.v0h = (this.v0h ^ mh) >>> 0;
    this.v0l = (this.v0l ^ ml) >>> 0;
  }

  /** One SipRound, with 64-bit add (carry from the low half), rotate and xor on halves. */
  private round(): void {
    let v0h = this.v0h,
      v0l = this.v0l,
      v1h = this.v1h,
      v1l = this.v1l;
    let v2h = this.v2h,
      v2l = this.v2l,
      v3h = this.v3h,
      v3l = this.v3l;
    let l: number, h: number;
    // v0 += v1; v1 <<<= 13; v1 ^= v0; v0 <<<= 32
    l = (v0l + v1l) >>> 0;
    v0h = (v0h + v1h + (l < v0l ? 1 : 0)) >>> 0;
    v0l = l;
    h = ((v1h << 13) | (v1l >>> 19)) >>> 0;
    v1l = ((v1l << 13) | (v1h >>> 19)) >>> 0;
    v1h = h;
    v1h = (v1h ^ v0h) >>> 0;
    v1l = (v1l ^ v0l) >>> 0;
    h = v0h;
    v0h = v0l;
    v0l = h;
    // v2 += v3; v3 <<<= 16; v3 ^= v2
    l = (v2l + v3l) >>> 0;
    v2h = (v2h + v3h + (l < v2l ? 1 : 0)) >>> 0;
    v2l = l;
    h = ((v3h << 16) | (v3l >>> 16)) >>> 0;
    v3l = ((v3l << 16) | (v3h >>> 16)) >>> 0;
    v3h = h;
    v3h = (v3h ^ v2h) >>> 0;
    v3l = (v3l ^ v2l) >>> 0;
    // v0 += v3; v3 <<<= 21; v3 ^= v0
    l = (v0l + v3l) >>> 0;
    v0h = (v0h + v3h + (l < v0l ? 1 : 0)) >>> 0;
    v0l = l;
    h = ((v3h << 21) | (v3l >>> 11)) >>> 0;
    v3l = ((v3l << 21) | (v3h >>> 11)) >>> 0;
    v3h = h;
    v3h = (v3h ^ v0h) >>> 0;
    v3l = (v3l ^ v0l) >>> 0;
    // v2 += v1; v1 <<<= 17; v1 ^= v2; v2 <<<= 32
    l = (v2l + v1l) >>> 0;
    v2h = (v2h + v1h + (l < v2l ? 1 : 0)) >>> 0;
    v2l = l;
    h = ((v1h << 17) | (v1l >>> 15)) >>> 0;
    v1l = ((v1l << 17) | (v1h >>> 15)) >>> 0;
    v1h = h;
    v1h = (v1h ^ v2h) >>> 0;
    v1l = (v1l ^ v2l) >>> 0;
    h = v2h;
    v2h = v2l;
    v2l = h;
    this.v0h = v0h;
    this.v0l = v0l;
    this.v1h = v1h;
    this.v1l = v1l;
    this.v2h = v2h;
    this.v2l = v2l;
    this.v3h = v3h;
    this.v3l = v3l;
  }
}

function le32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}
