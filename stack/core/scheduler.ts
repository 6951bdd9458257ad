/**
 * The scheduler that stacks sharing a process share: one timer heap (one Node timer armed for
 * all of them) and one receive driver that serves the stacks with frames waiting, round-robin,
 * once per turn of the event loop (one setImmediate for all), each within its share of CPU time
 * (deficit round robin, after Shreedhar and Varghese, with the cost of a batch measured rather
 * than counted in bytes). An idle stack costs nothing here: no timer armed, not in the ring.
 *
 * How a stack's frames arrive decides how its share is enforced:
 * - a pollable netif (the VirtualSwitch's ports) keeps frames until the stack's turn, and the
 *   scheduler polls it while the stack has credit left, leaving the rest for the next turn;
 * - a pushing netif (a TAP: the kernel's queue holds what is not read) delivers one batch per
 *   turn by itself; after a batch that left the stack in debt its reading is paused, and resumed
 *   at the first turn that brings its credit back above zero.
 * The share is work-conserving: a stack is held back only while another stack had work too.
 * Alone it still stops after one quantum per turn and goes on at the next, so that a frame for
 * another stack (an idle tenant is not "contending" until its request is in) waits for one
 * quantum, not for whatever the busy stack was given.
 *
 * A batch's cost counts the application work its frames bring (the responses, TCP output and
 * TAP write that run in its nextTicks and microtasks): measured where the netif can (a TAP's
 * addon times its callback with them, see `afterBatch`), estimated from that ratio (`inflate`)
 * for the frames the scheduler polls and to decide when to stop a batch.
 *
 * Stacks made without a scheduler share one per process (see stack.ts): it holds nothing of any
 * stack but its timers and its place in the ring, so stacks still never see each other's state.
 */
import { type Clock, RealClock } from "./clock.js";
import { CryptoRandom, type Random } from "./random.js";
import { Timer, TimerHeap, TimerQueue } from "./timers.js";

export interface SchedulerOptions {
  /** Protocol time for every stack of this scheduler. Default: the real clock. */
  clock?: Clock;
  /** Where CPU time is read (ms) for fair shares and per-stack CPU stats. Default performance.now. */
  cpuClock?: () => number;
  /** Randomness for the stacks made without their own. Default: one CryptoRandom for all of them. */
  random?: Random;
}

/** The receive side of a stack's netif, as the scheduler drives it. */
export interface TaskDriver {
  /** Deliver up to `max` waiting frames (then a batch end); true if frames are left. */
  poll?(max: number): boolean;
  /** Stop and resume delivering (the frames wait outside, e.g. in the kernel's queue). */
  pause?(): void;
  resume?(): void;
}

/** Frames delivered per poll between two looks at the credit. */
const POLL_BATCH = 64;

/**
 * A bound on a stack's CPU over time, as cgroups' cpu.max bounds a group's: `percent` of one CPU,
 * with `burstMs` of it saved up (a token bucket of CPU ms, refilled with the protocol clock).
 */
export interface CpuCap {
  percent: number;
  burstMs: number;
}

/** A throttled stack is looked at again no sooner than this (ms): one Node timer tick. */
const MIN_THROTTLE_MS = 1;

/** One stack as the scheduler sees it. */
export class Task {
  /** CPU credit (ms): `quantumMs` is added every turn, up to `quantumMs`; work subtracts its cost. */
  private credit: number;
  private lastTurn: number;
  /** In the scheduler's ring for the next turn. */
  queued = false;
  /** A pollable driver has frames waiting. */
  private pending = false;
  /** A pushing driver was paused for being over its share. */
  private paused = false;
  private closed = false;
  /** CPU time (ms) of the stack's input processing. */
  cpuMs = 0;
  /** Turns the stack's input was held back because it had used its share. */
  deferredTurns = 0;
  /** Last turn this task did work (for the scheduler's contention estimate). */
  workTurn = -1;
  /**
   * What a batch costs in all over what its own measure sees (1-8, kept by the stack): the
   * application work its frames cause (responses, TCP output, the TAP write) runs after it, in
   * nextTicks and microtasks. Time so far is scaled by it, so that a batch ends before the
   * work it brings has used the share, not after.
   */
  inflate = 1;
  /** Frames are being delivered by this task's visit (poll), not pushed by the netif. */
  polling = false;
  /** The driver is paused (for the share, the cap or both): pause and resume are called in pairs. */
  private driverHeld = false;
  /** Its CPU cap's state, for a stack that has one (an idle stack without one carries nothing of it). */
  private readonly cap: CpuBucket | undefined;

  constructor(
    private readonly s: Scheduler,
    private readonly driver: TaskDriver,
    readonly quantumMs: number,
    cap?: CpuCap,
  ) {
    this.credit = quantumMs;
    this.lastTurn = s.turn;
    if (cap && cap.percent < 100) this.cap = new CpuBucket(cap.percent / 100, Math.max(quantumMs, (cap.percent / 100) * cap.burstMs), s.timers.now());
  }

  /** Over its CPU cap: its input waits (frames stay in the netif's bounded queue) until the time is back. */
  get throttled(): boolean {
    return this.cap?.throttled === true;
  }

  /** Times the stack went over its CPU cap. */
  get throttles(): number {
    return this.cap?.throttles ?? 0;
  }

  /** Time (ms) its input waited for its CPU cap. */
  get throttledMs(): number {
    return this.cap?.throttledMs ?? 0;
  }

  /** The driver has frames waiting (pollable): serve them at the next turn. */
  ready(): void {
    if (this.closed) return;
    this.pending = true;
    this.s.enqueue(this);
  }

  /** `ms` of CPU went into the stack's work (a batch of frames). */
  charge(ms: number): void {
    this.cpuMs += ms;
    this.refill();
    this.credit -= ms;
    this.s.worked(this);
    const d = this.driver;
    if (this.credit <= 0 && !this.paused && !this.closed && !d.poll && d.pause && d.resume && this.s.contended()) {
      this.paused = true;
      this.holdDriver();
      this.s.enqueue(this);
    }
    const cap = this.cap;
    if (cap) {
      cap.refill(this.s.timers.now());
      cap.tokens -= ms;
      if (cap.tokens <= 0 && !cap.throttled && !this.closed) this.throttle(cap);
    }
  }

  /** Pause the driver while the share or the cap holds the stack back, resume it when neither does. */
  private holdDriver(): void {
    const want = this.paused || this.throttled;
    if (want === this.driverHeld || !this.driver.pause || !this.driver.resume) return;
    this.driverHeld = want;
    if (want) this.driver.pause();
    else this.driver.resume();
  }

  /** Over the cap: input waits (no visit, the driver paused) until the bucket has CPU time again. */
  private throttle(cap: CpuBucket): void {
    cap.throttled = true;
    cap.throttles++;
    cap.throttledAt = cap.at;
    this.holdDriver();
    cap.release ??= new Timer(() => this.unthrottle(cap), true);
    this.s.timers.armAt(cap.release, cap.at + cap.wait());
  }

  private unthrottle(cap: CpuBucket): void {
    if (this.closed) return;
    cap.refill(this.s.timers.now());
    if (cap.tokens <= 0) {
      this.s.timers.armAt(cap.release!, cap.at + cap.wait());
      return;
    }
    cap.throttled = false;
    cap.throttledMs += cap.at - cap.throttledAt;
    this.holdDriver();
    if (this.pending) this.s.enqueue(this);
  }

  /**
   * Should a batch that has taken `ms` so far stop here (the rest waits for a later turn)? While
   * other stacks have work: once it would put the stack over its share. Alone: once it takes a
   * whole quantum, which costs the stack nothing (no debt, it goes on at the next turn) but
   * bounds how long any other stack's frame that arrives meanwhile waits for the event loop to
   * read it (an idle tenant is not "contending" until its request is in, and then it waits for
   * whatever the busy one started).
   */
  overBudget(ms: number): boolean {
    this.refill();
    const cost = ms * this.inflate;
    const cap = this.cap;
    if (cap) {
      cap.refill(this.s.timers.now());
      if (cap.tokens - cost <= 0) return true;
    }
    return this.s.contended() ? this.credit - cost <= 0 : cost >= this.quantumMs;
  }

  private refill(): void {
    const turns = this.s.turn - this.lastTurn;
    if (turns <= 0) return;
    this.lastTurn = this.s.turn;
    this.credit = Math.min(this.quantumMs, this.credit + turns * this.quantumMs);
  }

  /** Its turn: resume, or deliver what waits while credit lasts. */
  visit(): void {
    this.queued = false;
    // Throttled: its release enqueues it again.
    if (this.closed || this.throttled) return;
    this.refill();
    if (this.paused) {
      if (this.credit > 0 || !this.s.contended()) {
        this.paused = false;
        this.holdDriver();
      } else {
        this.deferredTurns++;
        this.s.enqueue(this);
      }
      return;
    }
    if (!this.pending || !this.driver.poll) return;
    if (this.credit <= 0 && this.s.contended()) {
      this.deferredTurns++;
      this.s.enqueue(this);
      return;
    }
    let more = true;
    // The stack charges each batch's cost itself (it measures its own input), which lowers credit;
    // alone it still yields after one quantum (see overBudget).
    const start = this.s.cpuNow();
    this.polling = true;
    do more = this.driver.poll(POLL_BATCH);
    while (more && !this.closed && !this.throttled && (this.s.contended() ? this.credit > 0 : (this.s.cpuNow() - start) * this.inflate < this.quantumMs));
    this.polling = false;
    // Throttled with frames left: its release enqueues it.
    if (!more) this.pending = false;
    else if (!this.closed && !this.throttled) this.s.enqueue(this);
  }

  close(): void {
    this.closed = true;
    if (this.cap?.release) this.s.timers.cancel(this.cap.release);
  }
}

/** A CPU cap's token bucket: CPU ms, refilled at `rate` CPU ms per ms of protocol time up to `burst`. */
class CpuBucket {
  tokens: number;
  throttled = false;
  throttles = 0;
  throttledMs = 0;
  throttledAt = 0;
  release: Timer | undefined;

  constructor(
    readonly rate: number,
    readonly burst: number,
    public at: number,
  ) {
    this.tokens = burst;
  }

  refill(now: number): void {
    if (now > this.at) this.tokens = Math.min(this.burst, this.tokens + (now - this.at) * this.rate);
    this.at = now;
  }

  /** How long until the bucket is above zero again (at least a Node timer tick). */
  wait(): number {
    return Math.max(MIN_THROTTLE_MS, -this.tokens / this.rate);
  }
}

export class Scheduler {
  readonly clock: Clock;
  readonly timers: TimerHeap;
  readonly cpuNow: () => number;
  /** The randomness of stacks made without their own (a CSPRNG pool shared, as a kernel shares one). */
  readonly random: Random;
  /** Turns of the driver so far (one per event-loop turn with work). */
  turn = 0;
  private ring: Task[] = [];
  private spare: Task[] = [];
  private scheduled = false;
  private deferred: Array<() => void> = [];
  /** Stacks that did work this turn and the last (to tell whether anyone else is waiting). */
  private activeNow = 0;
  private activePrev = 0;
  /** Stacks with frames waiting at the start of this turn. */
  private visiting = 0;
  private holds = 0;
  private keepAlive: ReturnType<typeof setInterval> | undefined;
  private readonly runNow = (): void => this.run();

  /** The CPU clock reads the protocol clock's time source: one read serves both. */
  private readonly oneClock: boolean;

  constructor(opts: SchedulerOptions = {}) {
    this.clock = opts.clock ?? new RealClock();
    this.cpuNow = opts.cpuClock ?? (() => performance.now());
    this.random = opts.random ?? new CryptoRandom();
    this.oneClock = this.clock instanceof RealClock && !opts.cpuClock;
    this.timers = new TimerHeap(this.clock, this.cpuNow);
  }

  /** A stack starts processing a batch of frames: freeze protocol time; returns the CPU clock. */
  beginBatch(): number {
    const cpu = this.cpuNow();
    this.timers.frozen = this.oneClock ? cpu : this.clock.now();
    return cpu;
  }

  /** The batch begun at `start` ended: time moves again; returns the CPU ms it took. */
  endBatch(start: number): number {
    this.timers.frozen = -1;
    return this.cpuNow() - start;
  }

  /** A timer queue for one stack, on the shared heap. */
  timerQueue(): TimerQueue {
    return new TimerQueue(this.timers);
  }

  /** Register a stack's receive side; `quantumMs` is its CPU share per turn, `cap` its bound over time. */
  task(driver: TaskDriver, quantumMs: number, cap?: CpuCap): Task {
    return new Task(this, driver, quantumMs, cap);
  }

  /** Is more than one stack working or waiting (this turn or the last)? Shares are only enforced then. */
  contended(): boolean {
    return this.visiting > 1 || this.activeNow > 1 || this.activePrev > 1;
  }

  worked(t: Task): void {
    if (t.workTurn !== this.turn) {
      t.workTurn = this.turn;
      this.activeNow++;
    }
    // Turns must advance while stacks work, for their credit to come back.
    this.schedule();
  }

  enqueue(t: Task): void {
    if (t.queued) return;
    t.queued = true;
    this.ring.push(t);
    this.schedule();
  }

  /** Run `fn` at the next turn (output retries and the like: one setImmediate for all stacks). */
  defer(fn: () => void): void {
    this.deferred.push(fn);
    this.schedule();
  }

  /**
   * Keep the process alive until the returned function is called (a listening server, as a
   * net.Server does). One ref'd Node timer stands for all holds.
   */
  hold(): () => void {
    if (this.holds++ === 0) {
      this.keepAlive ??= setInterval(() => {}, 2 ** 30);
      this.keepAlive.ref();
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.holds === 0) this.keepAlive?.unref();
    };
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.runNow);
  }

  private run(): void {
    this.scheduled = false;
    this.turn++;
    this.activePrev = this.activeNow;
    this.activeNow = 0;
    // Visits may queue stacks for the next turn: they go to the other array (two, swapped).
    const ring = this.ring;
    this.ring = this.spare;
    this.visiting = ring.length;
    for (let i = 0; i < ring.length; i++) ring[i]!.visit();
    ring.length = 0;
    this.spare = ring;
    this.visiting = 0;
    if (this.deferred.length > 0) {
      const fns = this.deferred;
      this.deferred = [];
      for (const fn of fns) {
        try {
          fn();
        } catch (err) {
          // Not ours to swallow: rethrown where an uncaught exception belongs.
          queueMicrotask(() => {
            throw err;
          });
        }
      }
    }
  }
}

/**
 * The scheduler of the stacks made without one (on the real clock), created at first use. It is
 * the one piece of module-level state in paf, on purpose: sharing one timer and one driver is the
 * point (a thousand stacks, one Node timer), as one libuv loop serves a whole process. It holds
 * no stack's data (no caches, counters or limits; only armed timers and whose turn it is), is
 * not exported, and a program that wants its own passes `Stack.create({ scheduler })`.
 */
let processWide: Scheduler | undefined;

export function sharedScheduler(): Scheduler {
  return (processWide ??= new Scheduler());
}

/**
 * What of one stack keeps the process alive (its listening servers, as a net.Server does): the
 * scheduler's hold is taken while there is at least one and the stack is ref'd.
 */
export class KeepAlive {
  private count = 0;
  private refed = true;
  private release: (() => void) | undefined;

  constructor(private readonly s: Scheduler) {}

  /** One more thing keeps the process alive; call the returned function when it no longer does. */
  add(): () => void {
    this.count++;
    this.update();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.count--;
      this.update();
    };
  }

  /** The stack's ref() / unref(). */
  setRef(on: boolean): void {
    this.refed = on;
    this.update();
  }

  private update(): void {
    const want = this.refed && this.count > 0;
    if (want && !this.release) this.release = this.s.hold();
    else if (!want && this.release) {
      this.release();
      this.release = undefined;
    }
  }
}
