/**
 * Fault injection around any netif, driven by a seeded PRNG and an injected clock so that a
 * failing run can be replayed exactly: drop, duplicate, reorder, corrupt, delay (+ jitter) and a
 * token-bucket rate limit with a bounded queue. Faults apply per direction (`rx`, `tx`).
 */
import type { Netif, NetifReceiver, NetifStats } from "./netif.js";
import type { Clock } from "../core/clock.js";
import { RealClock } from "../core/clock.js";
import { SeededRandom } from "../core/random.js";
import { copyBytes } from "../wire/addr.js";

export interface FaultSpec {
  /** Probability (0..1) a frame is dropped. */
  drop?: number;
  /** Probability a frame is delivered twice. */
  duplicate?: number;
  /** Probability a frame is held back and delivered after the next one (or after reorderDelayMs). */
  reorder?: number;
  reorderDelayMs?: number;
  /** Probability one random bit past the Ethernet header is flipped (on a copy). */
  corrupt?: number;
  /** Fixed delay (ms) and uniform jitter (ms) added to each frame. */
  delayMs?: number;
  jitterMs?: number;
  /** Bottleneck rate in bits/s (0 = unlimited), with at most queueLimit frames waiting. */
  rateBps?: number;
  queueLimit?: number;
}

export interface FaultyOptions {
  seed?: number;
  clock?: Clock;
  rx?: FaultSpec;
  tx?: FaultSpec;
}

export interface FaultStats {
  dropped: number;
  duplicated: number;
  reordered: number;
  corrupted: number;
  delayed: number;
  rateDropped: number;
}

class Direction {
  held: Uint8Array | undefined;
  heldTimer: (() => void) | undefined;
  busyUntil = 0; // rate limiter: when the link is free again
  queued = 0;
  constructor(
    public spec: FaultSpec,
    private readonly owner: FaultyNetif,
    private readonly out: (f: Uint8Array) => void,
  ) {}

  push(frame: Uint8Array): boolean {
    const s = this.spec;
    const r = this.owner.rnd;
    const st = this.owner.fstats;
    if (s.drop && r.float() < s.drop) {
      st.dropped++;
      return true;
    }
    let f = frame;
    if (s.corrupt && r.float() < s.corrupt && f.length > 14) {
      f = copyBytes(f);
      const bit = 14 * 8 + (r.u32() % ((f.length - 14) * 8));
      f[bit >> 3]! ^= 1 << (bit & 7);
      st.corrupted++;
    }
    const copies = s.duplicate && r.float() < s.duplicate ? 2 : 1;
    if (copies === 2) st.duplicated++;
    for (let i = 0; i < copies; i++) {
      if (s.reorder && !this.held && r.float() < s.reorder) {
        this.held = f;
        st.reordered++;
        const hold = f;
        this.heldTimer = this.owner.clock.setTimer(s.reorderDelayMs ?? 10, () => {
          if (this.held === hold) {
            this.held = undefined;
            this.schedule(hold);
          }
        });
        continue;
      }
      if (!this.schedule(f)) return false;
      if (this.held) {
        const h = this.held;
        this.held = undefined;
        this.heldTimer?.();
        this.schedule(h);
      }
    }
    return true;
  }

  /** Apply rate limit and delay, then deliver. */
  private schedule(f: Uint8Array): boolean {
    const s = this.spec;
    const clock = this.owner.clock;
    let at = clock.now();
    if (s.rateBps && s.rateBps > 0) {
      if (this.queued >= (s.queueLimit ?? 100)) {
        this.owner.fstats.rateDropped++;
        return false;
      }
      const start = Math.max(at, this.busyUntil);
      this.busyUntil = start + (f.length * 8 * 1000) / s.rateBps;
      at = this.busyUntil;
      this.queued++;
    }
    let delay = at - clock.now() + (s.delayMs ?? 0);
    if (s.jitterMs) delay += this.owner.rnd.float() * s.jitterMs;
    if (delay <= 0) {
      this.out(f);
      return true;
    }
    this.owner.fstats.delayed++;
    const rated = !!(s.rateBps && s.rateBps > 0);
    clock.setTimer(delay, () => {
      if (rated) this.queued--;
      if (!this.owner.closed) this.out(f);
    });
    return true;
  }
}

export class FaultyNetif implements Netif {
  readonly rnd: SeededRandom;
  readonly clock: Clock;
  readonly fstats: FaultStats = { dropped: 0, duplicated: 0, reordered: 0, corrupted: 0, delayed: 0, rateDropped: 0 };
  closed = false;
  private rxDir: Direction | undefined;
  private readonly txDir: Direction;
  private rxSpec: FaultSpec;
  private receiver: NetifReceiver | undefined;

  constructor(
    private readonly inner: Netif,
    opts: FaultyOptions = {},
  ) {
    this.rnd = new SeededRandom(opts.seed ?? 1);
    this.clock = opts.clock ?? new RealClock();
    this.rxSpec = opts.rx ?? {};
    // Frames crossing this wrapper are copied when held, since a netif's receive view is only
    // valid during the call.
    this.txDir = new Direction(opts.tx ?? {}, this, (f) => this.inner.send(f));
  }
  get name(): string {
    return `faulty(${this.inner.name})`;
  }
  get mtu(): number {
    return this.inner.mtu;
  }
  get features() {
    return this.inner.features;
  }

  /** Change the faults at run time. */
  setFaults(opts: { rx?: FaultSpec; tx?: FaultSpec }): void {
    if (opts.rx) {
      this.rxSpec = opts.rx;
      if (this.rxDir) this.rxDir.spec = opts.rx;
    }
    if (opts.tx) this.txDir.spec = opts.tx;
  }

  faultStats(): FaultStats {
    return { ...this.fstats };
  }

  start(rx: NetifReceiver): void {
    this.receiver = rx;
    this.rxDir = new Direction(this.rxSpec, this, (f) => {
      if (this.closed) return;
      this.receiver?.frame(f);
      this.receiver?.batchEnd?.();
    });
    this.inner.start({
      frame: (buf) => {
        // Keep a copy only if the frame may outlive this call (delay, reorder, rate).
        const s = this.rxSpec;
        const keep = s.delayMs || s.jitterMs || s.reorder || s.rateBps || s.duplicate;
        this.rxDir!.push(keep ? copyBytes(buf) : buf);
      },
      batchEnd: () => {},
    });
  }

  send(frame: Uint8Array): boolean {
    if (this.closed) return false;
    return this.txDir.push(frame);
  }

  stats(): NetifStats {
    return this.inner.stats();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.inner.close();
  }
}
