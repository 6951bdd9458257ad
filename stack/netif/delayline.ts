/**
 * Frames waiting for their delivery time, for the fault injector: a binary heap ordered by
 * (time, arrival) with one armed clock timer for the earliest, so a delay line of thousands of
 * frames costs one timer. Bounded by the
 * caller (FaultSpec.limit): `size` is checked before `add`.
 */
import type { Clock } from "../core/clock.js";

interface Entry {
  at: number;
  seq: number;
  frame: Uint8Array;
}

export class DelayLine {
  private readonly heap: Entry[] = [];
  private seq = 0;
  private cancel: (() => void) | undefined;
  private armedAt = Infinity;

  constructor(
    private readonly clock: Clock,
    /** Called for each frame when its time has come, in (time, arrival) order. */
    private readonly deliver: (frame: Uint8Array) => void,
  ) {}

  get size(): number {
    return this.heap.length;
  }

  /** Hold `frame` until `at` (clock milliseconds). */
  add(at: number, frame: Uint8Array): void {
    const h = this.heap;
    h.push({ at, seq: this.seq++, frame });
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
    if (at < this.armedAt) this.arm();
  }

  /** Forget every frame and disarm. */
  clear(): void {
    this.heap.length = 0;
    this.cancel?.();
    this.cancel = undefined;
    this.armedAt = Infinity;
  }

  private arm(): void {
    this.cancel?.();
    const top = this.heap[0];
    if (!top) {
      this.cancel = undefined;
      this.armedAt = Infinity;
      return;
    }
    this.armedAt = top.at;
    this.cancel = this.clock.setTimer(top.at - this.clock.now(), () => this.fire());
  }

  private fire(): void {
    this.cancel = undefined;
    this.armedAt = Infinity;
    // Node's timers have millisecond granularity and may fire a fraction early against
    // performance.now(): deliver what is due, re-arm for the rest.
    const now = this.clock.now();
    while (this.heap.length && this.heap[0]!.at <= now) this.deliver(this.pop().frame);
    if (this.heap.length && this.cancel === undefined) this.arm();
  }

  private pop(): Entry {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

const before = (a: Entry, b: Entry): boolean => a.at < b.at || (a.at === b.at && a.seq < b.seq);
