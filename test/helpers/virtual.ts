/** Driving a virtual clock and an in-process switch together in unit tests. */
import type { VirtualClock } from "../../stack/core/clock.js";
import type { VirtualSwitch } from "../../stack/netif/vswitch.js";

/**
 * Run the event loop and the virtual clock until cond() holds: while frames are in flight the
 * loop turns; when the wire is idle the clock jumps to the next timer. Throws after `maxMs` of
 * virtual time, or when nothing is left to run (no timers armed, wire idle) for `stallTurns` turns.
 */
export async function runUntil(sw: VirtualSwitch, clock: VirtualClock, cond: () => boolean, what: string, maxMs: number, stallTurns: number): Promise<void> {
  const end = clock.now() + maxMs;
  for (let i = 0; !cond(); i++) {
    await new Promise((r) => setImmediate(r));
    if (cond()) break;
    if (sw.idle) {
      const d = clock.nextDeadline();
      if (d === undefined) {
        if (i > stallTurns) throw new Error(`stalled waiting for ${what}: no timers armed, wire idle`);
        continue;
      }
      if (d > end) throw new Error(`timed out (virtual ${maxMs} ms) waiting for ${what}`);
      clock.advanceTo(d);
    }
  }
}
