/** Bytes of JS heap allocated since allocMeter() (exact: V8's GC profiler; see alloc.mjs). */
export function allocMeter(): { stop(): { heap: number; gcs: number } };
