// What a process allocates over a phase, exactly (not sampled): V8's GC profiler records the
// heap's use before and after every collection, so the bytes allocated between two points are
// the growth between collections summed (a collection frees, it does not allocate; promotion
// moves objects, it does not change the total). That is the JS heap: what the GC has to scan,
// copy and free (garbage per segment, per request). ArrayBuffer memory outside the heap (Buffers'
// bytes) is not counted: V8 frees it concurrently with the program, so the same arithmetic on its
// counter undercounts. Checked against V8's sampling heap profiler with collected objects kept
// (154.1 MB measured, 153.9 MB sampled, the same loop). No side effects at import: measured child
// processes use it too.
//
// In a child process (`node --import ./alloc.mjs ...` with PAF_ALLOC_SIGNAL=1): the first
// SIGUSR2 starts a phase, the next prints `paf-alloc {"heap":B,"gcs":N}` on stderr.
import v8 from "node:v8";

/** Start measuring; `stop()` returns { heap: bytes allocated since, gcs: collections since }. */
export function allocMeter() {
  const prof = new v8.GCProfiler();
  const h0 = v8.getHeapStatistics();
  prof.start();
  return {
    stop() {
      const h1 = v8.getHeapStatistics();
      const { statistics } = prof.stop();
      let heap = 0;
      let last = h0.used_heap_size;
      for (const s of statistics) {
        heap += Math.max(0, s.beforeGC.heapStatistics.usedHeapSize - last);
        last = s.afterGC.heapStatistics.usedHeapSize;
      }
      heap += Math.max(0, h1.used_heap_size - last);
      return { heap, gcs: statistics.length };
    },
  };
}

if (process.env.PAF_ALLOC_SIGNAL === "1") {
  let meter;
  process.on("SIGUSR2", () => {
    if (!meter) meter = allocMeter();
    else {
      process.stderr.write(`paf-alloc ${JSON.stringify(meter.stop())}\n`);
      meter = undefined;
    }
  });
}
