// A profile of one phase of a run through node:inspector (no node flags, so only the phase that
// matters is recorded). No side effects at import: the measured child processes use it too.
import { writeFileSync } from "node:fs";

/**
 * Start a CPU profile (`cpu`: the file to write) or a sampling heap profile (`heap`: the file, or
 * true to keep it in memory only); returns the function that stops it, writes the file and
 * resolves with the profile, or undefined when neither is asked for. The heap profile holds what
 * survived young-generation collections (promoted), alive or collected by a major GC since; with
 * `young`, also what a scavenge collected: every allocation sampled.
 */
export async function profilePhase({ cpu, heap, young = false, samplingInterval = 4096 } = {}) {
  if (!cpu && !heap) return undefined;
  const { Session } = await import("node:inspector/promises");
  const s = new Session();
  s.connect();
  if (heap) {
    await s.post("HeapProfiler.enable");
    await s.post("HeapProfiler.startSampling", { samplingInterval, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: young });
    return async () => {
      const { profile } = await s.post("HeapProfiler.stopSampling");
      if (typeof heap === "string") writeFileSync(heap, JSON.stringify(profile));
      s.disconnect();
      return profile;
    };
  }
  await s.post("Profiler.enable");
  await s.post("Profiler.start");
  return async () => {
    const { profile } = await s.post("Profiler.stop");
    writeFileSync(cpu, JSON.stringify(profile));
    s.disconnect();
    return profile;
  };
}
