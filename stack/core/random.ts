import { randomFillSync } from "node:crypto";

/** Randomness is injected: cryptographic in production, seeded and reproducible in tests. */
export interface Random {
  /** Uniform unsigned 32-bit integer. */
  u32(): number;
  /** Fill `buf` with random bytes and return it. */
  fill(buf: Uint8Array): Uint8Array;
}

/** Fills up to this many bytes come from the pool (each randomFillSync call costs microseconds). */
const POOLED_FILL = 64;

/**
 * Cryptographically secure randomness (node:crypto), drawn from a pool refilled 4 KiB at a time
 * to keep calls cheap. One instance may serve many stacks (a scheduler's stacks share one): its
 * output reveals nothing of what it gave others.
 */
export class CryptoRandom implements Random {
  private pool = new Uint32Array(1024);
  private pos = 1024;
  u32(): number {
    if (this.pos >= this.pool.length) {
      randomFillSync(this.pool);
      this.pos = 0;
    }
    return this.pool[this.pos++]!;
  }
  fill(buf: Uint8Array): Uint8Array {
    if (buf.length > POOLED_FILL) return randomFillSync(buf);
    for (let i = 0; i < buf.length; i += 4) {
      const x = this.u32();
      for (let j = 0; j < 4 && i + j < buf.length; j++) buf[i + j] = (x >>> (8 * j)) & 0xff;
    }
    return buf;
  }
}

/** Deterministic PRNG (xoshiro128**) seeded from a number: for tests and fault injection. */
export class SeededRandom implements Random {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  constructor(seed: number) {
    // splitmix32 to spread the seed over the state.
    let x = seed >>> 0;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next() | 1;
  }
  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    this.s0 >>>= 0;
    this.s1 >>>= 0;
    this.s2 >>>= 0;
    this.s3 >>>= 0;
    return result;
  }
  /** Uniform float in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }
  fill(buf: Uint8Array): Uint8Array {
    for (let i = 0; i < buf.length; i++) buf[i] = this.u32() & 0xff;
    return buf;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
