/**
 * Fault injection around any netif, driven by a seeded PRNG and an injected clock so that a
 * failing run can be replayed exactly: random and bursty (Gilbert-Elliott) loss, duplication,
 * reordering, corruption, delay with jitter, and a token-bucket rate limit with a bounded queue.
 * Faults apply per direction (`rx`: frames the inner netif received, `tx`: frames sent to it).
 *
 * Replay: each direction has its own PRNG, and every frame consumes the same number of draws
 * whatever happens to it, so the fate of the k-th frame in a direction depends only on the seed,
 * k and the spec, never on timing or on the other direction. A run against the real kernel, whose
 * traffic is the same frame for frame, drops the same frames again.
 *
 * Order of the stages, as on a real path: loss, corruption, duplication, reordering, then the
 * bottleneck (rate, its queue), then the propagation delay (delay + jitter).
 */
import type { Netif, NetifReceiver, NetifStats } from "./netif.js";
import { ETH_HEADER_LEN } from "./netif.js";
import type { Clock } from "../core/clock.js";
import { RealClock } from "../core/clock.js";
import { SeededRandom } from "../core/random.js";
import { copyBytes } from "../wire/addr.js";
import { DelayLine } from "./delayline.js";

/** Default of FaultSpec.queueLimit: frames waiting for the rate limiter. */
export const DEFAULT_RATE_QUEUE_LIMIT = 100;
/** Default of FaultSpec.limit: frames held at once by one direction (as netem's `limit`). */
export const DEFAULT_HOLD_LIMIT = 1000;
/** Default of FaultSpec.reorderDelayMs. */
export const DEFAULT_REORDER_DELAY_MS = 10;

/**
 * Bursty loss: the Gilbert-Elliott two-state model, with netem's parameters (`loss gemodel p r
 * 1-h 1-k`). In the good state a frame is lost with probability `lossGood`, in the bad state with
 * `lossBad`; after each frame the state flips good->bad with probability `p` and bad->good with
 * `r`. With the defaults (lossBad 1, lossGood 0, the "simple Gilbert" model) the mean loss is
 * p / (p + r) and the mean burst of losses 1 / r frames.
 */
export interface GilbertElliott {
  p: number;
  r: number;
  /** 1-h: loss probability in the bad state. Default 1. */
  lossBad?: number;
  /** 1-k: loss probability in the good state. Default 0. */
  lossGood?: number;
}

export interface FaultSpec {
  /** Probability (0..1) a frame is lost, independently of the others (netem `loss random`). */
  drop?: number;
  /** Bursty loss, on top of `drop` (a frame is lost if either model loses it). */
  gilbertElliott?: GilbertElliott;
  /** Probability a frame is delivered twice. */
  duplicate?: number;
  /**
   * Probability a frame is held back and delivered after the next one, or after
   * `reorderDelayMs` (default 10) if no other frame comes. One frame is held at a time.
   */
  reorder?: number;
  reorderDelayMs?: number;
  /** Probability one random bit past the Ethernet header is flipped (on a copy). */
  corrupt?: number;
  /** Fixed one-way delay (ms) and uniform jitter (0..jitterMs ms) added to each frame. Jitter reorders frames, as netem's does. */
  delayMs?: number;
  jitterMs?: number;
  /** Bottleneck rate in bits/s (0 = unlimited), like tbf's `rate`. */
  rateBps?: number;
  /**
   * Bytes that may pass at once at line speed after an idle spell (tbf's `burst`, the bucket).
   * Default 0: every frame waits its own serialisation time (bytes * 8 / rate).
   */
  burstBytes?: number;
  /** Frames waiting for the rate limiter (tbf's `limit`, counted in frames); more are dropped (rateDropped). Default 100. */
  queueLimit?: number;
  /** Frames this direction holds at once (delay line, rate queue); more are dropped (limitDropped). Default 1000, as netem. */
  limit?: number;
}

export type FaultDirection = "rx" | "tx";
export type FaultKind = "drop" | "duplicate" | "reorder" | "corrupt" | "rate" | "limit";

/** One fault applied: the `frame`-th frame (from 0) offered in direction `dir`. */
export interface FaultEvent {
  dir: FaultDirection;
  frame: number;
  kind: FaultKind;
}

export interface FaultyOptions {
  seed?: number;
  clock?: Clock;
  rx?: FaultSpec;
  tx?: FaultSpec;
  /** Called for every fault applied (tests compare these between runs to check a replay). */
  onFault?: (e: FaultEvent) => void;
}

export interface FaultStats {
  /** Frames offered to the fault stage. */
  frames: number;
  /** Lost (random or Gilbert-Elliott). */
  dropped: number;
  duplicated: number;
  reordered: number;
  corrupted: number;
  /** Held by a delay or the rate limiter before delivery. */
  delayed: number;
  /** Dropped because the rate limiter's queue was full (queueLimit). */
  rateDropped: number;
  /** Dropped because the direction already held `limit` frames. */
  limitDropped: number;
}

const emptyFaultStats = (): FaultStats => ({ frames: 0, dropped: 0, duplicated: 0, reordered: 0, corrupted: 0, delayed: 0, rateDropped: 0, limitDropped: 0 });

/** Uniform draws taken for every frame: loss, GE loss, GE transition, corrupt, bit, duplicate, reorder, jitter x2. */
const DRAWS = 9;
const D_DROP = 0;
const D_GE_LOSS = 1;
const D_GE_MOVE = 2;
const D_CORRUPT = 3;
const D_BIT = 4;
const D_DUP = 5;
const D_REORDER = 6;
const D_JITTER = 7;

class Direction {
  readonly st: FaultStats = emptyFaultStats();
  private readonly rnd: SeededRandom;
  private readonly u = new Float64Array(DRAWS);
  /** Gilbert-Elliott: in the bad state. */
  private bad = false;
  private held: Uint8Array | undefined;
  private heldJitter = 0;
  private cancelHeld: (() => void) | undefined;
  /** Rate limiter (GCRA form of a token bucket): when the frames accepted so far have been serialised. */
  private busyUntil = -Infinity;
  /** Departure times of the frames waiting for the rate limiter, nondecreasing; [rateHead..] are live. */
  private departures: number[] = [];
  private rateHead = 0;
  private readonly line: DelayLine;

  constructor(
    readonly dir: FaultDirection,
    public spec: FaultSpec,
    seed: number,
    private readonly clock: Clock,
    private readonly out: (f: Uint8Array) => void,
    private readonly isClosed: () => boolean,
    private readonly onFault: ((e: FaultEvent) => void) | undefined,
  ) {
    this.rnd = new SeededRandom(seed);
    this.line = new DelayLine(clock, (f) => !isClosed() && out(f));
  }

  /**
   * Apply the faults to one frame. `borrowed`: the view is only valid during this call (a netif's
   * receive slab), so it is copied if it must be kept. Returns false if a bound dropped it.
   */
  push(frame: Uint8Array, borrowed: boolean): boolean {
    const s = this.spec;
    const u = this.u;
    for (let i = 0; i < DRAWS; i++) u[i] = this.rnd.float();
    const k = this.st.frames++;
    let lost = !!s.drop && u[D_DROP]! < s.drop;
    const ge = s.gilbertElliott;
    if (ge) {
      if (u[D_GE_LOSS]! < (this.bad ? (ge.lossBad ?? 1) : (ge.lossGood ?? 0))) lost = true;
      this.bad = this.bad ? !(u[D_GE_MOVE]! < ge.r) : u[D_GE_MOVE]! < ge.p;
    }
    if (lost) {
      this.st.dropped++;
      this.fault(k, "drop");
      return true; // a lossy link does not tell the sender
    }
    let f = frame;
    if (s.corrupt && u[D_CORRUPT]! < s.corrupt && f.length > ETH_HEADER_LEN) {
      f = copyBytes(f);
      borrowed = false;
      const bit = ETH_HEADER_LEN * 8 + Math.floor(u[D_BIT]! * (f.length - ETH_HEADER_LEN) * 8);
      f[bit >> 3]! ^= 1 << (bit & 7);
      this.st.corrupted++;
      this.fault(k, "corrupt");
    }
    const copies = s.duplicate && u[D_DUP]! < s.duplicate ? 2 : 1;
    if (copies === 2) {
      this.st.duplicated++;
      this.fault(k, "duplicate");
    }
    let ok = true;
    for (let c = 0; c < copies; c++) {
      const jitter = u[D_JITTER + c]!;
      if (c === 0 && s.reorder && !this.held && u[D_REORDER]! < s.reorder) {
        this.hold(borrowed ? copyBytes(f) : f, jitter);
        this.st.reordered++;
        this.fault(k, "reorder");
        continue;
      }
      if (!this.schedule(f, borrowed, jitter, k)) ok = false;
      // The held frame goes right after the one that overtook it.
      if (this.held) this.release();
    }
    return ok;
  }

  private hold(f: Uint8Array, jitter: number): void {
    this.held = f;
    this.heldJitter = jitter;
    this.cancelHeld = this.clock.setTimer(this.spec.reorderDelayMs ?? DEFAULT_REORDER_DELAY_MS, () => {
      this.cancelHeld = undefined;
      if (!this.isClosed()) this.release();
    });
  }

  private release(): void {
    const h = this.held!;
    this.held = undefined;
    this.cancelHeld?.();
    this.cancelHeld = undefined;
    this.schedule(h, false, this.heldJitter, -1);
  }

  /** The bottleneck (rate, bounded queue), then the delay line; delivers at once if nothing holds the frame. */
  private schedule(f: Uint8Array, borrowed: boolean, jitter: number, k: number): boolean {
    const s = this.spec;
    const now = this.clock.now();
    let at = now;
    if (s.rateBps && s.rateBps > 0) {
      const d = this.departures;
      while (this.rateHead < d.length && d[this.rateHead]! <= now) this.rateHead++;
      if (this.rateHead > 1024 && this.rateHead * 2 > d.length) {
        this.departures = d.slice(this.rateHead);
        this.rateHead = 0;
      }
      if (this.departures.length - this.rateHead >= (s.queueLimit ?? DEFAULT_RATE_QUEUE_LIMIT)) {
        this.st.rateDropped++;
        this.fault(k, "rate");
        return false;
      }
      // Token bucket as GCRA: the frame may leave once the link, run at `rate` since the first
      // frame it still owes time for, is no more than `burst` ahead of now.
      this.busyUntil = Math.max(this.busyUntil, now) + (f.length * 8 * 1000) / s.rateBps;
      at = Math.max(now, this.busyUntil - ((s.burstBytes ?? 0) * 8 * 1000) / s.rateBps);
      if (at > now) this.departures.push(at);
    }
    at += (s.delayMs ?? 0) + (s.jitterMs ? jitter * s.jitterMs : 0);
    if (at <= now) {
      this.out(f);
      return true;
    }
    if (this.line.size >= (s.limit ?? DEFAULT_HOLD_LIMIT)) {
      this.st.limitDropped++;
      this.fault(k, "limit");
      return false;
    }
    this.st.delayed++;
    this.line.add(at, borrowed ? copyBytes(f) : f);
    return true;
  }

  private fault(frame: number, kind: FaultKind): void {
    if (frame >= 0) this.onFault?.({ dir: this.dir, frame, kind });
  }

  close(): void {
    this.line.clear();
    this.cancelHeld?.();
    this.cancelHeld = undefined;
    this.held = undefined;
  }
}

/** Seeds of the two directions' PRNGs, derived from the netif's seed. */
const TX_STREAM = 0x243f6a88;
const RX_STREAM = 0x85a308d3;

export class FaultyNetif implements Netif {
  readonly clock: Clock;
  closed = false;
  private readonly rxDir: Direction;
  private readonly txDir: Direction;
  private receiver: NetifReceiver | undefined;

  constructor(
    private readonly inner: Netif,
    opts: FaultyOptions = {},
  ) {
    const seed = opts.seed ?? 1;
    this.clock = opts.clock ?? new RealClock();
    const closed = (): boolean => this.closed;
    this.txDir = new Direction("tx", opts.tx ?? {}, (seed ^ TX_STREAM) >>> 0, this.clock, (f) => this.inner.send(f), closed, opts.onFault);
    // Every received frame goes up as a batch of its own (as it always has: the unit tests'
    // ACK timing on the virtual switch depends on it).
    const up = (f: Uint8Array): void => {
      this.receiver?.frame(f);
      this.receiver?.batchEnd?.();
    };
    this.rxDir = new Direction("rx", opts.rx ?? {}, (seed ^ RX_STREAM) >>> 0, this.clock, up, closed, opts.onFault);
  }
  get name(): string {
    return `faulty(${this.inner.name})`;
  }
  get mtu(): number {
    return this.inner.mtu;
  }
  /**
   * The inner netif's, without TSO or checksum offload: faults act on frames as they are on the
   * wire, so the stack sends wire-size segments with whole checksums through here; and frames go up one by one, later, so none is
   * promised to outlive its frame() call (rxKeptUntilBatchEnd).
   */
  get features() {
    return { ...this.inner.features, tso: 0, checksumOffload: false, rxKeptUntilBatchEnd: false };
  }

  /** Change the faults at run time (frames already held keep their times). */
  setFaults(opts: { rx?: FaultSpec; tx?: FaultSpec }): void {
    if (opts.rx) this.rxDir.spec = opts.rx;
    if (opts.tx) this.txDir.spec = opts.tx;
  }

  /** Faults applied so far: in one direction, or both added up. */
  faultStats(dir?: FaultDirection): FaultStats {
    if (dir) return { ...(dir === "rx" ? this.rxDir : this.txDir).st };
    const out = emptyFaultStats();
    for (const d of [this.rxDir, this.txDir]) for (const key of Object.keys(out) as (keyof FaultStats)[]) out[key] += d.st[key];
    return out;
  }

  start(rx: NetifReceiver): void {
    this.receiver = rx;
    this.inner.start({
      // No RxMeta goes up: a corrupted frame must not arrive marked "checksum verified".
      frame: (buf) => {
        if (!this.closed) this.rxDir.push(buf, true);
      },
      batchEnd: () => {},
    });
  }

  send(frame: Uint8Array): boolean {
    if (this.closed) return false;
    return this.txDir.push(frame, false);
  }

  inputPending(): boolean {
    return this.inner.inputPending?.() ?? false;
  }
  stats(): NetifStats {
    return this.inner.stats();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.rxDir.close();
    this.txDir.close();
    await this.inner.close();
  }
}
