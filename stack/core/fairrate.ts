/**
 * A rate limit shared fairly by its sources: one token bucket for everyone (`rate` per second,
 * `burst` saved up), and, once that bucket is below half full (contention), one bucket per source
 * refilled at `share` of the rate, so that no single source (an address, or an address and a
 * protocol) takes more than its share while others want some; without contention any source may
 * use it all. Sources are numbers (cheap Map keys); at most `maxSources` are tracked, the oldest
 * forgotten first. Time (ms) comes from the caller.
 */

/** take() results. */
export const ADMIT = 0;
export const OVER_RATE = 1;
export const OVER_SHARE = 2;
/** The bucket is contended: call take() again with the source named. */
export const NEED_SOURCE = 3;

interface SourceBucket {
  tokens: number;
  last: number;
}

export class FairRate {
  private tokens: number;
  private last: number;
  private sources: Map<number, SourceBucket> | undefined;

  constructor(
    readonly rate: number,
    readonly burst: number,
    readonly share: number,
    readonly maxSources: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /**
   * Take `cost` tokens at `now`: ADMIT, OVER_RATE or OVER_SHARE (nothing taken then), or, under
   * contention when `source` is not given, NEED_SOURCE (so the caller works out a source only
   * when it matters).
   */
  take(cost: number, now: number, source?: number): number {
    const elapsed = now - this.last;
    if (elapsed > 0) {
      this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.rate) / 1000);
      this.last = now;
    }
    if (this.tokens < cost) return OVER_RATE;
    if (this.share < 1 && this.tokens < this.burst / 2) {
      if (source === undefined) return NEED_SOURCE;
      const s = this.source(source, now);
      const e = now - s.last;
      if (e > 0) {
        s.tokens = Math.min(this.burst * this.share, s.tokens + (e * this.rate * this.share) / 1000);
        s.last = now;
      }
      if (s.tokens < cost) return OVER_SHARE;
      s.tokens -= cost;
    }
    this.tokens -= cost;
    return ADMIT;
  }

  private source(key: number, now: number): SourceBucket {
    const m = (this.sources ??= new Map());
    let s = m.get(key);
    if (s) {
      // Most recently seen last, so the oldest is evicted first.
      m.delete(key);
    } else {
      if (m.size >= this.maxSources) m.delete(m.keys().next().value as number);
      s = { tokens: this.burst * this.share, last: now };
    }
    m.set(key, s);
    return s;
  }
}

/**
 * A bound per source, with or without contention: each source its own bucket (`rate` per second,
 * `burst` saved up), at most `maxSources` tracked (the least recently seen forgotten first, so a
 * forgotten source starts again with a full bucket). Time (ms) comes from the caller.
 */
export class SourceRate {
  private readonly buckets = new Map<number, SourceBucket>();

  constructor(
    readonly rate: number,
    readonly burst: number,
    readonly maxSources: number,
  ) {}

  /** Take one frame of `source` at `now`: false if its bucket is empty. */
  take(source: number, now: number): boolean {
    const m = this.buckets;
    let s = m.get(source);
    if (s) {
      m.delete(source); // most recently seen last
      const e = now - s.last;
      if (e > 0) {
        s.tokens = Math.min(this.burst, s.tokens + (e * this.rate) / 1000);
        s.last = now;
      }
    } else {
      if (m.size >= this.maxSources) m.delete(m.keys().next().value as number);
      s = { tokens: this.burst, last: now };
    }
    m.set(source, s);
    if (s.tokens < 1) return false;
    s.tokens -= 1;
    return true;
  }
}

/** A number naming an address (4 or 16 bytes) at `off` of `b`, for FairRate keys. */
export function addressKey(b: Uint8Array, off: number, len: number): number {
  if (len === 4) return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
  // FNV-1a over the 16 bytes, above the IPv4 range.
  let h = 0x811c9dc5;
  for (let i = 0; i < len; i++) h = Math.imul(h ^ b[off + i]!, 0x01000193);
  return 2 ** 32 + (h >>> 0);
}
