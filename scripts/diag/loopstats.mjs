// Diagnostics preload for `paf serve` (issue 16, HTTP tail latency): load with
//   node --import ./scripts/diag/loopstats.mjs dist/cli/main.js serve ...
// It records, without touching paf's sources (prototypes are wrapped at run time):
// - event-loop delay (perf_hooks.monitorEventLoopDelay, 1 ms resolution) percentiles;
// - GC pauses by kind (PerformanceObserver 'gc'): count, total, max;
// - for a TAP stack: frames per read batch (TapNetif.onBatch), the cost of each batch with the
//   microtasks and nextTicks it left (the addon's timing), the gap between two batches, frames
//   per TAP write (writeQueued) and connections flushed per TCP output run (OutputScheduler.run).
// PAF_DIAG_EVENTS=FILE: also every GC pause and TAP batch as [epoch ms, ms] (pcap-latency.py).
// Those records are kept in memory until written, and grow V8's old generation: only with
// PAF_DIAG_EVENTS are they taken (kept always, they set off a mark-compact every 30-50 ms
// during a bulk upload that has none without this preload).
// PAF_DIAG_BATCH=N: open the TAP with N frames per read instead of the default 64.
// The first SIGUSR2 resets every figure (start of the load), the second writes them as one JSON
// line to $PAF_DIAG_OUT (or stderr) and resets again. Nothing is recorded between two runs.
import { monitorEventLoopDelay, PerformanceObserver, createHistogram, performance } from "node:perf_hooks";
import { appendFileSync, writeFileSync } from "node:fs";
import { getHeapSpaceStatistics } from "node:v8";

const us = (ms) => Math.max(1, Math.round(ms * 1000));
let eld = monitorEventLoopDelay({ resolution: 1 });
eld.enable();
const h = {
  batchFrames: createHistogram(),
  batchUs: createHistogram(),
  gapUs: createHistogram(),
  writeFrames: createHistogram(),
  flushConns: createHistogram(),
};
const gc = {};
let started = performance.now();
/** [epoch ms, duration ms] of each GC pause since the reset, and of each TAP batch ([.., frames]). */
const EVENTS = process.env.PAF_DIAG_EVENTS;
let gcLog = [];
let batchLog = [];
/** Start of the last TAP batch (0: none since the reset). */
const lastEnd = { t: 0, cpu: 0, n: 0 };

new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    // perf_hooks' kinds (constants.NODE_PERFORMANCE_GC_*): 1 minor (scavenge), 4 major
    // (mark-compact), 8 incremental marking, 16 weak callbacks.
    const kind = { 1: "scavenge", 4: "markCompact", 8: "incremental", 16: "weakcb" }[e.detail?.kind ?? e.kind] ?? "other";
    const g = (gc[kind] ??= { n: 0, totalMs: 0, maxMs: 0, over1ms: 0, over2ms: 0 });
    g.n++;
    if (EVENTS && gcLog.length < 100_000) gcLog.push([+(performance.timeOrigin + e.startTime).toFixed(3), +e.duration.toFixed(3)]);
    g.totalMs += e.duration;
    if (e.duration > g.maxMs) g.maxMs = e.duration;
    if (e.duration > 1) g.over1ms++;
    if (e.duration > 2) g.over2ms++;
  }
}).observe({ entryTypes: ["gc"] });

try {
  const { TapNetif } = await import("../../dist/stack/netif/tap.js");
  // PAF_DIAG_BATCH=N: frames per TAP read (TapOptions.batch), which the CLI does not expose
  const batch = Number(process.env.PAF_DIAG_BATCH ?? 0);
  if (batch > 0) {
    const open = TapNetif.open;
    TapNetif.open = (name, opts = {}) => open.call(TapNetif, name, { ...opts, batch });
  }
  const onBatch = TapNetif.prototype.onBatch;
  lastEnd.t = 0;
  TapNetif.prototype.onBatch = function (n, err) {
    const t0 = performance.now();
    const prev = this.timing[0];
    if (EVENTS) {
      // [start epoch ms, batch ms, frames, turn wall ms, turn process CPU ms] of the previous batch
      const cpu = process.cpuUsage();
      const cpuMs = (cpu.user + cpu.system) / 1000;
      if (prev > 0 && lastEnd.t && batchLog.length < 200_000)
        batchLog.push([+(performance.timeOrigin + lastEnd.t).toFixed(3), +prev.toFixed(3), lastEnd.n, +(t0 - lastEnd.t).toFixed(3), +(cpuMs - lastEnd.cpu).toFixed(3)]);
      lastEnd.cpu = cpuMs;
    }
    lastEnd.n = n;
    if (prev > 0) {
      h.batchUs.record(us(prev));
      // the previous batch ended at (its start + its cost); the gap is what the loop did since
      if (lastEnd.t) h.gapUs.record(us(Math.max(0.001, t0 - (lastEnd.t + prev))));
    }
    lastEnd.t = t0;
    if (n > 0) h.batchFrames.record(n);
    return onBatch.call(this, n, err);
  };
  const writeQueued = TapNetif.prototype.writeQueued;
  TapNetif.prototype.writeQueued = function () {
    if (this.queue.length) h.writeFrames.record(this.queue.length);
    return writeQueued.call(this);
  };
  const { OutputScheduler } = await import("../../dist/stack/tcp/output.js");
  const run = OutputScheduler.prototype.run;
  OutputScheduler.prototype.run = function () {
    if (this.due?.n) h.flushConns.record(this.due.n);
    return run.call(this);
  };
} catch (e) {
  process.stderr.write(`loopstats: no TAP instrumentation: ${e.message}\n`);
}

const pct = (x, div = 1) =>
  x.count === 0
    ? { n: 0 }
    : { n: x.count, mean: +(x.mean / div).toFixed(3), p50: x.percentile(50) / div, p90: x.percentile(90) / div, p99: x.percentile(99) / div, p999: x.percentile(99.9) / div, max: x.max / div };

function reset() {
  eld.disable();
  eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  for (const x of Object.values(h)) x.reset();
  for (const k of Object.keys(gc)) delete gc[k];
  started = performance.now();
  lastEnd.t = 0;
  gcLog = [];
  batchLog = [];
}

let armed = false;
process.on("SIGUSR2", () => {
  if (!armed) {
    armed = true;
    reset();
    return;
  }
  armed = false;
  const wallMs = performance.now() - started;
  const gcAll = Object.values(gc).reduce((a, g) => ({ n: a.n + g.n, totalMs: a.totalMs + g.totalMs, maxMs: Math.max(a.maxMs, g.maxMs) }), { n: 0, totalMs: 0, maxMs: 0 });
  const out = {
    wallMs: Math.round(wallMs),
    eldMs: { mean: +(eld.mean / 1e6).toFixed(3), p50: eld.percentile(50) / 1e6, p90: eld.percentile(90) / 1e6, p99: eld.percentile(99) / 1e6, max: eld.max / 1e6 },
    gc: { ...gcAll, pctOfWall: +((100 * gcAll.totalMs) / wallMs).toFixed(2), byKind: gc },
    batchFrames: pct(h.batchFrames),
    batchMs: pct(h.batchUs, 1000),
    gapMs: pct(h.gapUs, 1000),
    writeFrames: pct(h.writeFrames),
    flushConns: pct(h.flushConns),
    heapMB: +(process.memoryUsage().heapUsed / 2 ** 20).toFixed(1),
    newSpaceMB: +((getHeapSpaceStatistics().find((x) => x.space_name === "new_space")?.space_size ?? 0) / 2 ** 20).toFixed(1),
  };
  const line = JSON.stringify(out) + "\n";
  if (process.env.PAF_DIAG_EVENTS) writeFileSync(process.env.PAF_DIAG_EVENTS, JSON.stringify({ gc: gcLog, batches: batchLog }));
  if (process.env.PAF_DIAG_OUT) appendFileSync(process.env.PAF_DIAG_OUT, line);
  else process.stderr.write(line);
  reset();
});
