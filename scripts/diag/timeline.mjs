// Diagnostics preload (issue 15, a tenant's tail latency): a timeline of what a `paf serve`
// process's event loop did, for scripts/diag/noisy-trace.py to lay over a capture:
//   node --import ./scripts/diag/timeline.mjs dist/cli/main.js serve ...
// Records, between a first and a second SIGUSR2 (then written to $PAF_TIMELINE_OUT, default
// /tmp/paf-timeline.json), as [kind, start epoch ms, ms, ...]:
// - "b<last char of the TAP's name>": one TAP read batch, delivered synchronously, with the
//   whole cost (its nextTicks and microtasks, the addon's timing) and the frame count;
// - "s": one turn of a stack Scheduler (setImmediate: polled frames and deferred work), with
//   "vp"/"vr" for each task it visited (poll, or resume of a paused TAP), its quantum in ms;
// - "gc": a GC pause and its perf_hooks kind.
// A last ["clock", timeOrigin, monotonic ms at performance.now() 0] lets the analysis put perf's
// CLOCK_MONOTONIC timestamps (sched_switch) on the same epoch axis.
// Prototypes are wrapped at run time; nothing of paf is changed. At most 2 M records are kept.
import { PerformanceObserver, performance } from "node:perf_hooks";
import { writeFileSync } from "node:fs";

const T0 = performance.timeOrigin;
const MAX = 2_000_000;
let on = false;
let ev = [];
const push = (e) => {
  if (on && ev.length < MAX) ev.push(e);
};

new PerformanceObserver((list) => {
  if (!on) return;
  for (const e of list.getEntries()) push(["gc", T0 + e.startTime, e.duration, e.detail?.kind ?? 0]);
}).observe({ entryTypes: ["gc"] });

const { TapNetif } = await import("../../dist/stack/netif/tap.js");
const onBatch = TapNetif.prototype.onBatch;
const lastOf = new WeakMap();
TapNetif.prototype.onBatch = function (n, err) {
  const t0 = performance.now();
  // The addon's timing of the previous batch (its ticks included) is known now.
  const prev = this.timing[0];
  const last = lastOf.get(this);
  if (last && prev > 0) last[3] = prev;
  const r = onBatch.call(this, n, err);
  const e = [`b${this.name.slice(-1)}`, T0 + t0, performance.now() - t0, 0, n];
  lastOf.set(this, e);
  push(e);
  return r;
};

const { Scheduler, Task } = await import("../../dist/stack/core/scheduler.js");
const run = Scheduler.prototype.run;
Scheduler.prototype.run = function () {
  const t0 = performance.now();
  const r = run.call(this);
  push(["s", T0 + t0, performance.now() - t0]);
  return r;
};
const visit = Task.prototype.visit;
Task.prototype.visit = function () {
  const t0 = performance.now();
  const resumed = this.paused;
  const r = visit.call(this);
  push([resumed ? "vr" : "vp", T0 + t0, performance.now() - t0, 0, this.quantumMs]);
  return r;
};

process.on("SIGUSR2", () => {
  if (!on) {
    on = true;
    ev = [];
    return;
  }
  on = false;
  ev.push(["clock", T0, Number(process.hrtime.bigint()) / 1e6 - performance.now()]);
  writeFileSync(process.env.PAF_TIMELINE_OUT ?? "/tmp/paf-timeline.json", JSON.stringify(ev));
  ev = [];
});
