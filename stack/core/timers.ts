import type { Clock, TimerCancel } from "./clock.js";

/**
 * Protocol timers. Protocol code never calls setTimeout: it arms Timers on its stack's
 * TimerQueue. The queues of every stack sharing a scheduler (scheduler.ts) keep their deadlines
 * in one TimerHeap, a binary min-heap driven by the injected clock with at most one Clock timer
 * armed (for the earliest deadline), so a thousand stacks cost one Node timer, and an idle stack
 * (no timer armed) costs nothing.
 */
export class Timer {
  /** Absolute deadline in clock ms, or -1 when not armed. */
  deadline = -1;
  /** Position in the heap, -1 when not queued. */
  index = -1;
  /**
   * @param weak a weak timer does not keep the process alive by itself (housekeeping, TIME_WAIT,
   * keepalive); protocol work in progress (retransmissions, resolution) uses strong timers.
   * @param owner the queue (stack) it belongs to: its errors, CPU time and liveness.
   */
  constructor(
    readonly fire: () => void,
    readonly weak = false,
    readonly owner: TimerQueue | undefined = undefined,
  ) {}
  get armed(): boolean {
    return this.index >= 0;
  }
}

/** The deadlines of every queue of one scheduler, earliest first. */
export class TimerHeap {
  private heap: Timer[] = [];
  private armedAt = Infinity;
  private cancelArmed: TimerCancel | undefined;
  private readonly runNow = (): void => this.run();
  private armedStrong = false;
  /** Armed strong timers of queues that keep the process alive (see TimerQueue.unref). */
  private strong = 0;
  /**
   * While a batch of frames or of due timers is processed, time stands still at its start (as
   * Linux reads its clock once per packet batch): one clock read per batch, not one per use.
   */
  frozen = -1;

  /** @param cpuNow a time source (ms) to charge each callback's run time to its queue (CPU use per stack). */
  constructor(
    readonly clock: Clock,
    private readonly cpuNow?: () => number,
  ) {}

  now(): number {
    return this.frozen >= 0 ? this.frozen : this.clock.now();
  }

  /** Number of armed timers, all queues together. */
  get size(): number {
    return this.heap.length;
  }

  armAt(t: Timer, deadline: number): void {
    if (t.index >= 0) {
      const old = t.deadline;
      t.deadline = deadline;
      if (deadline < old) this.up(t.index);
      else this.down(t.index);
    } else {
      t.deadline = deadline;
      t.index = this.heap.length;
      this.heap.push(t);
      this.up(t.index);
      const q = t.owner;
      if (q) {
        q.size++;
        if (!t.weak) {
          q.strong++;
          if (q.refed) this.strong++;
        }
      } else if (!t.weak) this.strong++;
    }
    this.reschedule();
  }

  cancel(t: Timer): void {
    const i = t.index;
    if (i < 0) return;
    const last = this.heap.pop()!;
    if (last !== t) {
      this.heap[i] = last;
      last.index = i;
      this.down(i);
      this.up(last.index);
    }
    t.index = -1;
    t.deadline = -1;
    const q = t.owner;
    let strongGone = false;
    if (q) {
      q.size--;
      if (!t.weak) {
        q.strong--;
        if (q.refed) strongGone = --this.strong === 0;
      }
    } else if (!t.weak) strongGone = --this.strong === 0;
    // Nothing left that should keep the process alive: re-arm the clock timer as weak.
    // Otherwise no need to re-arm eagerly: an early wake-up simply finds nothing due.
    if (strongGone) this.strengthChanged();
  }

  /** A queue's liveness changed by `delta` strong timers (ref / unref). */
  adjustStrong(delta: number): void {
    if (delta === 0) return;
    this.strong += delta;
    this.strengthChanged();
  }

  /** Remove every timer of `q` (its stack closed). */
  removeOwner(q: TimerQueue): void {
    if (q.size === 0) return;
    const keep: Timer[] = [];
    for (const t of this.heap) {
      if (t.owner === q) {
        t.index = -1;
        t.deadline = -1;
      } else keep.push(t);
    }
    if (q.refed) this.strong -= q.strong;
    q.size = 0;
    q.strong = 0;
    this.heap = keep;
    // Re-heapify (Floyd): O(n), once per closed stack.
    for (let i = 0; i < keep.length; i++) keep[i]!.index = i;
    for (let i = (keep.length >> 1) - 1; i >= 0; i--) this.down(i);
    if (keep.length === 0 && this.cancelArmed) {
      this.cancelArmed();
      this.cancelArmed = undefined;
      this.armedAt = Infinity;
    } else this.strengthChanged();
  }

  /**
   * Make the armed clock timer keep the process alive or not in place, where the clock can: true
   * if done. A connection's RTO armed and cancelled per request flips this every time, and no
   * Node timer is made and cleared for it.
   */
  private setArmedStrength(strong: boolean): boolean {
    if (!this.cancelArmed?.keepAlive) return false;
    this.armedStrong = strong;
    this.cancelArmed.keepAlive(strong);
    return true;
  }

  private strengthChanged(): void {
    if (!this.cancelArmed || this.armedStrong === this.strong > 0) return;
    if (this.setArmedStrength(this.strong > 0)) return;
    this.cancelArmed();
    this.cancelArmed = undefined;
    this.armedAt = Infinity;
    this.reschedule();
  }

  private reschedule(): void {
    const top = this.heap[0];
    if (!top) return;
    const wantStrong = this.strong > 0;
    if (top.deadline >= this.armedAt && this.cancelArmed && (wantStrong === this.armedStrong || this.setArmedStrength(wantStrong))) return;
    this.cancelArmed?.();
    this.armedAt = top.deadline;
    this.armedStrong = wantStrong;
    this.cancelArmed = this.clock.setTimer(top.deadline - this.clock.now(), this.runNow, wantStrong);
  }

  private run(): void {
    this.cancelArmed = undefined;
    this.armedAt = Infinity;
    const now = this.clock.now();
    const cpu = this.cpuNow;
    const wasFrozen = this.frozen;
    this.frozen = now;
    // Fire everything due; callbacks may re-arm timers (including themselves).
    let guard = 0;
    while (this.heap.length > 0 && this.heap[0]!.deadline <= now && guard++ < 1_000_000) {
      const t = this.heap[0]!;
      this.cancel(t);
      const q = t.owner;
      const t0 = cpu ? cpu() : 0;
      try {
        t.fire();
      } catch (err) {
        if (q) q.onError(err);
        else console.error("paf: a timer callback threw:", err);
      }
      if (cpu && q) q.cpuMs += cpu() - t0;
    }
    this.frozen = wasFrozen;
    this.reschedule();
  }

  private up(i: number): void {
    const h = this.heap;
    const t = h[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pt = h[p]!;
      if (pt.deadline <= t.deadline) break;
      h[i] = pt;
      pt.index = i;
      i = p;
    }
    h[i] = t;
    t.index = i;
  }

  private down(i: number): void {
    const h = this.heap;
    const n = h.length;
    const t = h[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && h[r]!.deadline < h[l]!.deadline ? r : l;
      const ct = h[c]!;
      if (ct.deadline >= t.deadline) break;
      h[i] = ct;
      ct.index = i;
      i = c;
    }
    h[i] = t;
    t.index = i;
  }
}

/**
 * One stack's view of the timers: what its layers arm and cancel. Its timers live in a TimerHeap
 * shared with the other stacks of its scheduler (or a heap of its own, `new TimerQueue(clock)`).
 */
export class TimerQueue {
  readonly clock: Clock;
  /** Armed timers of this queue (maintained by the heap). */
  size = 0;
  /** Armed strong timers of this queue (maintained by the heap). */
  strong = 0;
  /** False after unref(): this queue's timers no longer keep the process alive. */
  refed = true;
  /** Milliseconds spent in this queue's timer callbacks (when the heap measures it). */
  cpuMs = 0;
  private closed = false;
  private readonly heap: TimerHeap;

  constructor(clockOrHeap: Clock | TimerHeap) {
    this.heap = clockOrHeap instanceof TimerHeap ? clockOrHeap : new TimerHeap(clockOrHeap);
    this.clock = this.heap.clock;
  }

  /**
   * A timer callback threw (a bug): the stack counts it and logs it once per kind; it never
   * crashes the process. The default, for a queue outside a stack, logs it.
   */
  onError: (err: unknown) => void = (err) => console.error("paf: a timer callback threw:", err);

  now(): number {
    return this.heap.now();
  }

  /** Create an (unarmed) timer whose callback runs when it falls due. */
  timer(fire: () => void, weak = false): Timer {
    return new Timer(fire, weak, this);
  }

  /** Arm (or re-arm) `t` to fire `delayMs` from now. */
  arm(t: Timer, delayMs: number): void {
    if (this.closed) return;
    this.heap.armAt(t, this.heap.now() + delayMs);
  }

  armAt(t: Timer, deadline: number): void {
    if (this.closed) return;
    this.heap.armAt(t, deadline);
  }

  cancel(t: Timer): void {
    this.heap.cancel(t);
  }

  /** Let this queue's strong timers keep the process alive (the default). */
  ref(): void {
    if (this.refed) return;
    this.refed = true;
    this.heap.adjustStrong(this.strong);
  }

  /** This queue's timers no longer keep the process alive (its stack was unref()'d). */
  unref(): void {
    if (!this.refed) return;
    this.refed = false;
    this.heap.adjustStrong(-this.strong);
  }

  close(): void {
    this.closed = true;
    this.heap.removeOwner(this);
  }
}
