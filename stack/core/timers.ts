import type { Clock } from "./clock.js";

/**
 * One timer structure per stack (a binary min-heap of deadlines) driven by the injected clock.
 * Protocol code never calls setTimeout; it schedules here, and the queue keeps at most one
 * Clock timer armed for the earliest deadline.
 */
export class Timer {
  /** Absolute deadline in clock ms, or -1 when not armed. */
  deadline = -1;
  /** Position in the heap, -1 when not queued. */
  index = -1;
  /**
   * @param weak a weak timer does not keep the process alive by itself (housekeeping, TIME_WAIT,
   * keepalive); protocol work in progress (retransmissions, resolution) uses strong timers.
   */
  constructor(
    readonly fire: () => void,
    readonly weak = false,
  ) {}
  get armed(): boolean {
    return this.index >= 0;
  }
}

export class TimerQueue {
  private heap: Timer[] = [];
  private armedAt = Infinity;
  private cancelArmed: (() => void) | undefined;
  private armedStrong = false;
  /** Armed timers that keep the process alive. */
  private strong = 0;
  private closed = false;

  constructor(readonly clock: Clock) {}

  /**
   * A timer callback threw (a bug): the stack counts it and logs it once per kind; it never
   * crashes the process. The default, for a queue outside a stack, logs it.
   */
  onError: (err: unknown) => void = (err) => console.error("paf: a timer callback threw:", err);

  now(): number {
    return this.clock.now();
  }

  /** Create an (unarmed) timer whose callback runs when it falls due. */
  timer(fire: () => void, weak = false): Timer {
    return new Timer(fire, weak);
  }

  /** Arm (or re-arm) `t` to fire `delayMs` from now. */
  arm(t: Timer, delayMs: number): void {
    this.armAt(t, this.clock.now() + delayMs);
  }

  armAt(t: Timer, deadline: number): void {
    if (this.closed) return;
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
      if (!t.weak) this.strong++;
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
    if (!t.weak && --this.strong === 0 && this.armedStrong && this.cancelArmed) {
      // Nothing left that should keep the process alive: re-arm the clock timer as weak.
      this.cancelArmed();
      this.cancelArmed = undefined;
      this.armedAt = Infinity;
      this.reschedule();
    }
    // Otherwise no need to re-arm eagerly: an early wake-up simply finds nothing due.
  }

  /** Number of armed timers. */
  get size(): number {
    return this.heap.length;
  }

  close(): void {
    this.closed = true;
    this.cancelArmed?.();
    this.cancelArmed = undefined;
    for (const t of this.heap) {
      t.index = -1;
      t.deadline = -1;
    }
    this.heap = [];
    this.strong = 0;
  }

  private reschedule(): void {
    const top = this.heap[0];
    if (!top) return;
    const wantStrong = this.strong > 0;
    if (top.deadline >= this.armedAt && this.cancelArmed && wantStrong === this.armedStrong) return;
    this.cancelArmed?.();
    this.armedAt = top.deadline;
    this.armedStrong = wantStrong;
    this.cancelArmed = this.clock.setTimer(top.deadline - this.clock.now(), () => this.run(), wantStrong);
  }

  private run(): void {
    this.cancelArmed = undefined;
    this.armedAt = Infinity;
    const now = this.clock.now();
    // Fire everything due; callbacks may re-arm timers (including themselves).
    let guard = 0;
    while (this.heap.length > 0 && this.heap[0]!.deadline <= now && guard++ < 1_000_000) {
      const t = this.heap[0]!;
      this.cancel(t);
      try {
        t.fire();
      } catch (err) {
        this.onError(err);
      }
    }
    if (!this.closed) this.reschedule();
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
