/**
 * The JSON that `paf bench --json FILE` writes, schema "paf-bench/1".
 *
 * One object per run. Counting rules:
 *  - `requests` is every request attempted; each one ends either `completed` (a 2xx/3xx status
 *    and the whole body) or failed, counted once in `errors` under the first thing that went
 *    wrong, so `requests === completed + failed` and `failed` is the sum of `errors`.
 *  - Error kinds: `connect` (TCP connect or TLS handshake failed, or ALPN did not give the
 *    protocol asked for), `reset` (the connection or HTTP/2 stream was closed or reset before the
 *    response head arrived), `timeout` (no complete response within `options.timeoutMs`),
 *    `badStatus` (the response was not 2xx/3xx; its body is still read), `shortBody` (the
 *    response head arrived but the body ended before Content-Length, or the stream ended early),
 *    `other` (anything else, e.g. a protocol error; see `errorSamples`).
 *  - Latencies are those of completed requests only: from the request's start to its last
 *    body byte, microsecond resolution, kept in an HDR histogram (hdr-histogram-js, 3
 *    significant digits); all times in the JSON are milliseconds.
 *  - `bytes.sent` / `bytes.received` count HTTP body bytes (not headers, not TLS) of all requests.
 *  - Rates divide by `durationSeconds`, the time from the first request to the last response.
 * Fields may be added in a later "paf-bench/1" file; a change of meaning gets "paf-bench/2".
 */

export const BENCH_SCHEMA = "paf-bench/1";

export const ERROR_KINDS = ["connect", "reset", "timeout", "badStatus", "shortBody", "other"] as const;
export type ErrorKind = (typeof ERROR_KINDS)[number];

export interface LatencySummary {
  min: number;
  mean: number;
  stdev: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export interface BenchReport {
  schema: typeof BENCH_SCHEMA;
  /** The URL requested. */
  url: string;
  method: string;
  /** "http/1.1" (one request at a time per connection, keep-alive) or "h2" (`streams` at a time). */
  protocol: "http/1.1" | "h2";
  tls: boolean;
  /** Whose TCP carried the connections: the kernel's sockets or a paf userspace stack on a TAP. */
  transport: "kernel" | "paf";
  /** ISO 8601 time of the start. */
  startedAt: string;
  durationSeconds: number;
  options: {
    clients: number;
    /** Concurrent streams per connection (1 for HTTP/1.1). */
    streams: number;
    /** Request budget (null: bounded by duration only). */
    requests: number | null;
    /** Time budget in seconds (null: bounded by the request count only). */
    durationSeconds: number | null;
    /** Open loop at this many requests per second in all, latencies counted from when each was due (null: closed loop). */
    rate?: number | null;
    /** Seconds of warm-up before the measured run (null: none); see `warmup`. */
    warmupSeconds?: number | null;
    bodySize: number;
    timeoutMs: number;
    insecure: boolean;
  };
  /** The warm-up's requests: made, counted only here (absent without --warmup). */
  warmup?: { requests: number; completed: number; failed: number };
  requests: number;
  completed: number;
  failed: number;
  errors: Record<ErrorKind, number>;
  /** Up to 5 error messages per kind, for diagnosis. */
  errorSamples: Partial<Record<ErrorKind, string[]>>;
  /** Responses by status code (including bad statuses). */
  statusCodes: Record<string, number>;
  /** Connections opened (clients + reconnects after errors). */
  connections: number;
  bytes: { sent: number; received: number };
  throughput: { requestsPerSecond: number; bytesPerSecond: number };
  /** Latency summary of completed requests, milliseconds (all 0 when none completed). */
  latencyMs: LatencySummary;
  /** The distribution as buckets: `count` requests took more than `fromMs` and at most `toMs`. */
  histogram: Array<{ fromMs: number; toMs: number; count: number }>;
  /** The percentile curve (percentile 0..100, latency ms), for plotting. */
  percentiles: Array<{ percentile: number; ms: number }>;
}
