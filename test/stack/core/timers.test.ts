// The per-stack timer queue: ordering, re-arming, cancelling, and which timers keep a process alive.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { TimerQueue } from "../../../stack/core/timers.js";
import { VirtualClock, type Clock } from "../../../stack/core/clock.js";

describe("TimerQueue", () => {
  it("fires timers in deadline order whatever the arming order (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 10_000 }), { maxLength: 60 }), (delays) => {
        const clock = new VirtualClock();
        const q = new TimerQueue(clock);
        const fired: number[] = [];
        for (const [i, d] of delays.entries())
          q.arm(
            q.timer(() => fired.push(i)),
            d,
          );
        clock.advance(10_001);
        const expected = delays
          .map((d, i) => [d, i] as const)
          .sort((a, b) => a[0] - b[0])
          .map(([, i]) => i);
        expect(fired.map((i) => delays[i])).toEqual(expected.map((i) => delays[i]));
        expect(q.size).toBe(0);
      }),
    );
  });

  it("re-arming moves a timer, cancelling removes it, a callback may re-arm itself", () => {
    const clock = new VirtualClock();
    const q = new TimerQueue(clock);
    const log: string[] = [];
    const a = q.timer(() => log.push("a@" + clock.now()));
    const b = q.timer(() => log.push("b@" + clock.now()));
    let n = 0;
    const c = q.timer(() => {
      log.push("c@" + clock.now());
      if (++n < 3) q.arm(c, 100);
    });
    q.arm(a, 50);
    q.arm(b, 60);
    q.arm(a, 500);
    q.cancel(b);
    q.arm(c, 100);
    clock.advance(1000);
    expect(log).toEqual(["c@100", "c@200", "c@300", "a@500"]);
  });

  it("keeps the process alive only while a strong timer is armed", () => {
    const calls: boolean[] = [];
    const inner = new VirtualClock();
    const clock: Clock = {
      now: () => inner.now(),
      setTimer: (d, cb, keepAlive = true) => {
        calls.push(keepAlive);
        return inner.setTimer(d, cb);
      },
    };
    const q = new TimerQueue(clock);
    const weak = q.timer(() => {}, true);
    const strong = q.timer(() => {});
    q.arm(weak, 1000);
    expect(calls.at(-1)).toBe(false);
    q.arm(strong, 2000);
    expect(calls.at(-1)).toBe(true);
    q.cancel(strong);
    expect(calls.at(-1)).toBe(false);
  });

  it("with a clock that can ref and unref its timer, strength changes reuse the one timer", () => {
    const made: boolean[] = [];
    const flips: boolean[] = [];
    let cancelled = 0;
    const inner = new VirtualClock();
    const clock: Clock = {
      now: () => inner.now(),
      setTimer: (d, cb, keepAlive = true) => {
        made.push(keepAlive);
        const c = inner.setTimer(d, cb);
        return Object.assign(
          () => {
            cancelled++;
            c();
          },
          { keepAlive: (on: boolean) => flips.push(on) },
        );
      },
    };
    const q = new TimerQueue(clock);
    const weak = q.timer(() => {}, true);
    const strong = q.timer(() => {});
    q.arm(weak, 1000);
    // A request's life: the RTO armed (later than the weak timer), then cancelled by its ACK.
    for (let i = 0; i < 5; i++) {
      q.arm(strong, 2000);
      q.cancel(strong);
    }
    expect(made).toEqual([false]); // one Node timer for all of it
    expect(cancelled).toBe(0);
    expect(flips).toEqual([true, false, true, false, true, false, true, false, true, false]);
    let fired = false;
    q.arm(
      q.timer(() => (fired = true), true),
      10,
    );
    expect(made).toEqual([false, false]); // an earlier deadline still needs a new timer
    inner.advance(10);
    expect(fired).toBe(true);
  });
});
