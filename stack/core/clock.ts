/**
 * Time is injected into every stack (STYLE.md: "time passed in, never read from a global clock").
 * A Clock gives monotonic milliseconds and a single kind of one-shot timer; the per-stack
 * TimerQueue multiplexes every protocol timer onto at most one armed Clock timer.
 */
export interface Clock {
  /** Monotonic time in milliseconds (may be fractional). */
  now(): number;
  /**
   * Arm a one-shot callback `delayMs` from now; returns a function that cancels it (and, from a
   * clock where it matters, changes whether the timer keeps the process alive: `keepAlive`).
   * `keepAlive` false means the timer alone must not keep the process running (Node's unref).
   */
  setTimer(delayMs: number, cb: () => void, keepAlive?: boolean): TimerCancel;
}

/** Cancels a Clock timer; `keepAlive(on)`, where present, is Node's ref/unref of the same timer. */
export type TimerCancel = (() => void) & { keepAlive?: (on: boolean) => void };

/**
 * The real clock: performance.now() and Node timers. Pending protocol work (a ping, DAD, a TCP
 * retransmission) keeps the process alive like a socket does; housekeeping timers do not.
 */
export class RealClock implements Clock {
  now(): number {
    return performance.now();
  }
  setTimer(delayMs: number, cb: () => void, keepAlive = true): TimerCancel {
    const t = setTimeout(cb, Math.max(0, delayMs));
    if (!keepAlive) t.unref();
    const cancel: TimerCancel = () => clearTimeout(t);
    cancel.keepAlive = (on) => void (on ? t.ref() : t.unref());
    return cancel;
  }
}

interface VirtualTimer {
  at: number;
  seq: number;
  cb: () => void;
  cancelled: boolean;
}

/**
 * A virtual clock for deterministic tests: time moves only when `advance()` / `runUntil()` is
 * called, and due timers fire in (deadline, creation) order.
 */
export class VirtualClock implements Clock {
  private t = 0;
  private seq = 0;
  private timers: VirtualTimer[] = [];

  constructor(start = 0) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimer(delayMs: number, cb: () => void): () => void {
    const timer: VirtualTimer = { at: this.t + Math.max(0, delayMs), seq: this.seq++, cb, cancelled: false };
    this.timers.push(timer);
    return () => {
      timer.cancelled = true;
    };
  }

  /** Number of timers still armed. */
  pending(): number {
    this.timers = this.timers.filter((x) => !x.cancelled);
    return this.timers.length;
  }

  /** Deadline of the earliest armed timer, or undefined. */
  nextDeadline(): number | undefined {
    let best: VirtualTimer | undefined;
    for (const x of this.timers) if (!x.cancelled && (!best || x.at < best.at || (x.at === best.at && x.seq < best.seq))) best = x;
    return best?.at;
  }

  /** Advance time by `ms`, firing every timer that falls due on the way, in order. */
  advance(ms: number): void {
    this.advanceTo(this.t + ms);
  }

  advanceTo(target: number): void {
    for (;;) {
      let best: VirtualTimer | undefined;
      for (const x of this.timers) {
        if (x.cancelled || x.at > target) continue;
        if (!best || x.at < best.at || (x.at === best.at && x.seq < best.seq)) best = x;
      }
      if (!best) break;
      this.timers.splice(this.timers.indexOf(best), 1);
      if (best.at > this.t) this.t = best.at;
      best.cb();
    }
    if (target > this.t) this.t = target;
  }
}
