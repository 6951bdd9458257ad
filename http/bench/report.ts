/**
 * From a load run to the report: the JSON document (schema.ts) and the text shown on stdout
 * (a bar histogram of latencies, percentiles, rates, errors by kind).
 */
import type { JsHistogram } from "hdr-histogram-js";
import type { LoadOptions, LoadResult } from "./load.js";
import { BENCH_SCHEMA, ERROR_KINDS, type BenchReport, type ErrorKind } from "./schema.js";

/** Microseconds to milliseconds, kept to the microsecond. */
const ms = (us: number): number => Math.round(us) / 1000;

/** Bucket bounds per decade for the histogram (µs x 10^k): nice numbers, roughly log-spaced. */
const STEPS = [1, 1.5, 2, 3, 5, 7];

/** Bucket edges (µs): the one below `minUs`, then up to the first at or above `maxUs`. */
function bucketEdges(minUs: number, maxUs: number): number[] {
  const edges: number[] = [];
  let prev = 0;
  for (let decade = 1; decade <= 1e12; decade *= 10) {
    for (const s of STEPS) {
      const b = s * decade;
      if (b >= minUs && !edges.length) edges.push(prev);
      if (edges.length) edges.push(b);
      if (b >= maxUs) return edges;
      prev = b;
    }
  }
  return edges;
}

/** Every distinct recorded value (µs, HDR-equivalent) with its count. */
function recorded(h: JsHistogram): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const it = h.recordedValuesIterator;
  it.reset();
  while (it.hasNext()) {
    const v = it.next();
    out.push([h.highestEquivalentValue(v.valueIteratedTo), v.countAddedInThisIterationStep]);
  }
  return out;
}

export function buildReport(opts: Omit<LoadOptions, "ctx" | "connector">, r: LoadResult, transport: "kernel" | "paf"): BenchReport {
  const h = r.histogram as unknown as JsHistogram;
  const n = h.totalCount;
  const secs = r.durationMs / 1000;
  // A percentile is an HDR bucket's upper edge, which can lie above the largest value recorded.
  const at = (p: number): number => (n ? ms(Math.min(h.getValueAtPercentile(p), h.maxValue)) : 0);
  const histogram: BenchReport["histogram"] = [];
  const percentiles: BenchReport["percentiles"] = [];
  if (n) {
    const values = recorded(h);
    const edges = bucketEdges(values[0]![0], values[values.length - 1]![0]);
    let i = 0;
    for (let k = 1; k < edges.length; k++) {
      let count = 0;
      while (i < values.length && values[i]![0] <= edges[k]!) count += values[i++]![1];
      histogram.push({ fromMs: ms(edges[k - 1]!), toMs: ms(edges[k]!), count });
    }
    // The percentile curve on a "nines" scale: 0, 90, 99, 99.9 ... in 20 steps per nine.
    const nines = Math.max(1, Math.log10(n));
    for (let x = 0; x < nines; x += 0.05) {
      const p = 100 * (1 - 10 ** -x);
      percentiles.push({ percentile: Math.round(p * 1e4) / 1e4, ms: at(p) });
    }
    percentiles.push({ percentile: 100, ms: ms(h.maxValue) });
  }
  return {
    schema: BENCH_SCHEMA,
    url: opts.url.href,
    method: opts.method,
    protocol: opts.h2 ? "h2" : "http/1.1",
    tls: opts.url.protocol === "https:",
    transport,
    startedAt: r.startedAt.toISOString(),
    durationSeconds: Math.round(secs * 1e6) / 1e6,
    options: {
      clients: opts.clients,
      streams: opts.h2 ? opts.streams : 1,
      requests: opts.requests ?? null,
      durationSeconds: opts.durationMs !== undefined ? opts.durationMs / 1000 : null,
      rate: opts.rate ?? null,
      warmupSeconds: opts.warmupMs ? opts.warmupMs / 1000 : null,
      bodySize: opts.bodySize,
      timeoutMs: opts.timeoutMs,
      insecure: opts.insecure,
    },
    ...(opts.warmupMs ? { warmup: { requests: r.warmup.started, completed: r.warmup.completed, failed: r.warmup.failed } } : {}),
    requests: r.started,
    completed: r.completed,
    failed: r.failed,
    errors: { ...r.errors },
    errorSamples: r.errorSamples,
    statusCodes: r.statusCodes,
    connections: r.connections,
    bytes: { sent: r.bytesSent, received: r.bytesReceived },
    throughput: {
      requestsPerSecond: secs > 0 ? Math.round((r.completed / secs) * 10) / 10 : 0,
      bytesPerSecond: secs > 0 ? Math.round((r.bytesSent + r.bytesReceived) / secs) : 0,
    },
    latencyMs: {
      min: n ? ms(h.minNonZeroValue) : 0,
      mean: n ? ms(h.mean) : 0,
      stdev: n ? ms(h.stdDeviation) : 0,
      p50: at(50),
      p90: at(90),
      p99: at(99),
      p999: at(99.9),
      max: n ? ms(h.maxValue) : 0,
    },
    histogram,
    percentiles,
  };
}

const KIND_NAMES: Record<ErrorKind, string> = { connect: "connect", reset: "reset", timeout: "timeout", badStatus: "bad status", shortBody: "short body", other: "other" };

export function formatBytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i ? n.toFixed(2) : n} ${units[i]}`;
}

/** The text report: what was run, the histogram with bars, percentiles, rates, errors. */
export function formatText(r: BenchReport, width = 40): string {
  const out: string[] = [];
  const via = r.transport === "paf" ? "a paf userspace stack" : "kernel TCP";
  out.push(`paf bench: ${r.method} ${r.url}`);
  out.push(
    `  ${r.protocol}${r.tls ? " over TLS" : ""} via ${via}, ${r.options.clients} clients${r.protocol === "h2" ? ` x ${r.options.streams} streams` : ""}, ${r.connections} connections opened${r.options.rate ? `, open loop at ${r.options.rate} req/s (latency from when each request was due)` : ""}`,
  );
  if (r.warmup) out.push(`  warm-up: ${r.options.warmupSeconds} s, ${r.warmup.requests} requests (${r.warmup.completed} completed, ${r.warmup.failed} failed), not counted below`);
  out.push(`  ${r.requests} requests in ${r.durationSeconds.toFixed(2)} s: ${r.completed} completed, ${r.failed} failed`);
  out.push("");
  if (r.histogram.length) {
    const maxCount = Math.max(...r.histogram.map((b) => b.count));
    const fmt = (x: number) => x.toFixed(3).padStart(9);
    out.push(`  latency (ms)${" ".repeat(11)}${" ".repeat(width + 2)}  count`);
    for (const b of r.histogram) {
      const len = Math.round((b.count / maxCount) * width);
      const bar = "#".repeat(b.count && !len ? 1 : len).padEnd(width);
      const pct = ((100 * b.count) / r.completed).toFixed(1).padStart(5);
      out.push(`  ${fmt(b.fromMs)} - ${fmt(b.toMs)} |${bar}| ${String(b.count).padStart(8)} ${pct}%`);
    }
    out.push("");
  }
  const l = r.latencyMs;
  out.push(
    `  latency ms: p50 ${l.p50.toFixed(3)}  p90 ${l.p90.toFixed(3)}  p99 ${l.p99.toFixed(3)}  p99.9 ${l.p999.toFixed(3)}  max ${l.max.toFixed(3)}  (mean ${l.mean.toFixed(3)}, stdev ${l.stdev.toFixed(3)})`,
  );
  out.push(
    `  requests/s: ${r.throughput.requestsPerSecond.toFixed(1)}   bytes/s: ${formatBytes(r.throughput.bytesPerSecond)}/s (bodies: ${formatBytes(r.bytes.sent)} sent, ${formatBytes(r.bytes.received)} received)`,
  );
  out.push(
    `  status codes: ${
      Object.entries(r.statusCodes)
        .map(([c, n]) => `${c} x${n}`)
        .join(", ") || "none"
    }`,
  );
  out.push(`  errors: ${ERROR_KINDS.map((k) => `${KIND_NAMES[k]} ${r.errors[k]}`).join(", ")}`);
  for (const k of ERROR_KINDS) for (const s of r.errorSamples[k] ?? []) out.push(`    ${KIND_NAMES[k]}: ${s}`);
  return out.join("\n") + "\n";
}
