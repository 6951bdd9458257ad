/**
 * The load engine of `paf bench`: N clients, each one connection (reopened after an error), doing
 * HTTP/1.1 keep-alive requests one at a time (node:http) or K concurrent HTTP/2 streams
 * (node:http2), over TLS (ALPN h2 or http/1.1) for https URLs. Connections come from the client
 * side's context resolution (a Ctx and a Connector, as for every other client of paf): the
 * kernel's sockets, a paf stack's flows (names through its DNS), a Unix socket or a protocol of
 * the user's, with TLS layered by the same code. Every request is bounded by a timeout, the run
 * by a request count and/or a duration. Latencies of completed requests go into an HDR histogram
 * (microseconds).
 *
 * Closed loop by default: each client sends its next request when the last one is done, so a
 * slow server slows the load and the latencies show only the requests it let through. With a
 * rate the load is open: request i is due at start + i / rate, whichever client is free takes
 * it (waiting for its time), and its latency counts from when it was due, so a server that falls
 * behind is charged the queueing it causes (wrk2's correction of coordinated omission); one that
 * no client could start within the timeout of its time is a timeout, not sent. Node's
 * timers have millisecond granularity: a request may start up to ~1 ms after its time, which
 * counts too.
 */
import http from "node:http";
import http2 from "node:http2";
import type { Duplex } from "node:stream";
import * as hdr from "hdr-histogram-js";
import { ERROR_KINDS, type ErrorKind } from "./schema.js";
import type { Ctx } from "../client/context.js";
import { ClientError } from "../client/errors.js";
import { defaultConnector, withTarget, K, type Connector } from "../client/resolve.js";

export interface LoadOptions {
  url: URL;
  method: string;
  clients: number;
  /** Concurrent streams per connection with h2 (ignored for HTTP/1.1). */
  streams: number;
  /** Request budget; undefined: bounded by `durationMs` only. */
  requests: number | undefined;
  /** Time budget; undefined: bounded by `requests` only. */
  durationMs: number | undefined;
  /** Request body bytes (0: none). */
  bodySize: number;
  h2: boolean;
  /** Accept any server certificate. */
  insecure: boolean;
  /** Per request (connecting included) and per connect/handshake. */
  timeoutMs: number;
  /** Open loop: requests per second in all (request i due at start + i / rate). Undefined: closed loop. */
  rate?: number;
  /**
   * A first phase of this many ms, on the same connections, whose requests are made but counted
   * apart (`LoadResult.warmup`): the duration, the request budget and every figure are of the
   * requests after it. Undefined or 0: none.
   */
  warmupMs?: number;
  /**
   * Where connections come from (e.g. `Ctx.empty.with(K.host_tcp, true)` for the kernel's TCP,
   * `.with(K.stack, stack)` for a paf stack); TLS settings in its K.tls apply under the bench's own
   * ALPN and `insecure`.
   */
  ctx: Ctx;
  /** Protocols to resolve `ctx` with. Default: defaultConnector(). */
  connector?: Connector;
}

export interface LoadCounters {
  started: number;
  completed: number;
  failed: number;
  errors: Record<ErrorKind, number>;
  errorSamples: Partial<Record<ErrorKind, string[]>>;
  statusCodes: Record<string, number>;
  connections: number;
  bytesSent: number;
  bytesReceived: number;
}

export interface LoadResult extends LoadCounters {
  /** Latencies of completed requests, microseconds. */
  histogram: hdr.Histogram;
  /** What the warm-up phase did (all zero without one). */
  warmup: { started: number; completed: number; failed: number };
  startedAt: Date;
  durationMs: number;
}

export interface LoadRun {
  /** Live counters (for a progress display). */
  readonly counters: Readonly<LoadCounters>;
  /** Start no new requests; those in flight finish (or time out). */
  stop(): void;
  readonly result: Promise<LoadResult>;
}

const SAMPLES_PER_KIND = 5;
/** Pause after a failed connect before the client tries again (keeps a dead server from spinning). */
const CONNECT_RETRY_MS = 20;

/** An error of a given kind (the first cause wins; the message is kept for samples). */
class Failure extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/** Reset-like codes: the peer closed or reset the connection or stream. */
const RESET_CODES = new Set([
  "ECONNRESET",
  "EPIPE",
  "ECONNABORTED",
  "ERR_HTTP2_STREAM_ERROR",
  "ERR_HTTP2_SESSION_ERROR",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_INVALID_SESSION",
  "ERR_STREAM_PREMATURE_CLOSE",
]);

function kindOf(err: unknown): Failure {
  if (err instanceof Failure) return err;
  const e = err as Error & { code?: string };
  const msg = `${e.code ? e.code + ": " : ""}${e.message ?? String(err)}`;
  return new Failure(e.code && RESET_CODES.has(e.code) ? "reset" : "other", msg);
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string, onLate: (v: T) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    let late = false;
    const t = setTimeout(() => {
      late = true;
      reject(new Failure("connect", `${what}: no answer within ${ms} ms`));
    }, ms);
    p.then(
      (v) => {
        clearTimeout(t);
        if (late) onLate(v);
        else resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/** The body of every request: a fixed pattern, allocated once. */
function makeBody(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

export function runLoad(opts: LoadOptions): LoadRun {
  const url = opts.url;
  const secure = url.protocol === "https:";
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = Number(url.port || (secure ? 443 : 80));
  const path = url.pathname + url.search;
  const body = opts.bodySize > 0 ? makeBody(opts.bodySize) : undefined;
  const histogram = hdr.build({ useWebAssembly: false, lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
  const fresh = (): LoadCounters => ({
    started: 0,
    completed: 0,
    failed: 0,
    errors: Object.fromEntries(ERROR_KINDS.map((k) => [k, 0])) as Record<ErrorKind, number>,
    errorSamples: {},
    statusCodes: {},
    connections: 0,
    bytesSent: 0,
    bytesReceived: 0,
  });
  const counters = fresh();
  /** The warm-up's requests count here, apart. */
  const warm = fresh();
  const open = new Set<Duplex>();
  let stopped = false;
  const t0 = performance.now();
  const warmEnd = t0 + (opts.warmupMs ?? 0);
  // t0 + an exact offset, as the due times are (t0 + i * 1000 / rate): the same rounding, so the
  // request due right at the end is out, and the count is exactly rate x duration.
  const deadline = opts.durationMs !== undefined ? t0 + ((opts.warmupMs ?? 0) + opts.durationMs) : Infinity;
  /** Whose counters a request started (or due) at `at` goes to. */
  const ctr = (at: number): LoadCounters => (at < warmEnd ? warm : counters);
  let tickets = 0;

  const rate = opts.rate;
  /**
   * One ticket per request: the time its latency counts from (now, or with a rate the time it is
   * due); undefined once the count or the time is used up.
   */
  const take = (): number | undefined => {
    if (stopped || (opts.requests !== undefined && counters.started >= opts.requests)) return undefined;
    const now = performance.now();
    // Open loop: every request due within the duration is made, however late (see drive()).
    const due = rate === undefined ? now : t0 + (tickets * 1000) / rate;
    if (rate === undefined ? now >= deadline : due >= deadline) return undefined;
    tickets++;
    ctr(due).started++;
    return due;
  };

  const fail = (f: Failure, at: number): void => {
    const c = ctr(at);
    c.failed++;
    c.errors[f.kind]++;
    const s = (c.errorSamples[f.kind] ??= []);
    if (s.length < SAMPLES_PER_KIND) s.push(f.message);
  };

  /** A finished response: the status decides success; the latency counts only for successes. */
  const finished = (status: number, startedAt: number): void => {
    const c = ctr(startedAt);
    c.statusCodes[status] = (c.statusCodes[status] ?? 0) + 1;
    if (status < 200 || status >= 400) return fail(new Failure("badStatus", `status ${status}`), startedAt);
    c.completed++;
    if (c === counters) histogram.recordValue(Math.max(1, Math.round((performance.now() - startedAt) * 1000)));
  };

  /** A connection, TLS and ALPN done; connect failures are tagged "connect". */
  const connector = opts.connector ?? defaultConnector();
  const alpn = opts.h2 ? "h2" : "http/1.1";
  const target = withTarget(opts.ctx.with(K.connectTimeout, opts.timeoutMs), url.hostname, port, secure ? { alpn: [alpn], ...(opts.insecure ? { rejectUnauthorized: false } : {}) } : undefined);
  const connect = async (): Promise<Duplex> => {
    counters.connections++;
    let sock: Duplex;
    try {
      const r = await withTimeout(connector.open(target), opts.timeoutMs, `connect ${url.host}`, (late) => late.flow.destroy());
      sock = r.flow;
      if (secure && opts.h2 && r.tls?.alpn !== "h2") {
        sock.destroy();
        throw new Failure("connect", `ALPN: the server chose ${r.tls?.alpn || "no protocol"}, not h2`);
      }
    } catch (e) {
      if (e instanceof Failure) throw e;
      const err = e as Error & { code?: string };
      // Every stage of opening (resolve, connect, TLS) counts as a connect failure.
      throw new Failure("connect", e instanceof ClientError ? err.message : `${err.code ? err.code + ": " : ""}${err.message}`);
    }
    (sock as Duplex & { setNoDelay?(b: boolean): void }).setNoDelay?.(true);
    sock.on("error", () => {}); // the request or session in flight reports it
    open.add(sock);
    sock.once("close", () => open.delete(sock));
    return sock;
  };

  /** Run requests one after another while the run lasts; pause briefly after a failed connect. */
  async function drive(one: (startedAt: number) => Promise<void>): Promise<void> {
    for (let at = take(); at !== undefined; at = take()) {
      const wait = at - performance.now();
      if (wait > 0) await sleep(wait);
      // Open loop, every client busy for longer than a request may take: this one is a timeout
      // without being sent (which also bounds the run to its duration plus --timeout).
      else if (-wait > opts.timeoutMs) {
        fail(new Failure("timeout", `not started within ${opts.timeoutMs} ms of when it was due (every client busy)`), at);
        continue;
      }
      const before = counters.errors.connect;
      await one(at);
      if (counters.errors.connect > before) await sleep(CONNECT_RETRY_MS);
    }
  }

  const clients = Array.from({ length: opts.clients }, () => (opts.h2 ? h2Client() : h1Client()));

  // ---- HTTP/1.1: one connection per client through a keep-alive Agent of one socket.
  function h1Client(): Promise<void> {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1 });
    // Node's Agent accepts an asynchronous createConnection (socket handed to the callback).
    (agent as unknown as { createConnection: unknown }).createConnection = (_o: unknown, cb: (err: Error | null, s?: Duplex) => void) => {
      connect().then(
        (s) => cb(null, s),
        (e: Error) => cb(e),
      );
      return undefined;
    };
    const headers: http.OutgoingHttpHeaders = { host: url.host };
    if (body) headers["content-length"] = String(body.length);
    const one = (startedAt: number): Promise<void> =>
      new Promise((resolve) => {
        let failure: Failure | undefined;
        let done = false;
        const end = (f?: Failure, status?: number): void => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          if (f) fail(f, startedAt);
          else finished(status!, startedAt);
          resolve();
        };
        const req = http.request({ host, port, path, method: opts.method, headers, agent, setHost: false });
        const timer = setTimeout(() => {
          failure = new Failure("timeout", `no complete response within ${opts.timeoutMs} ms`);
          req.destroy(failure);
          end(failure); // counted now, whatever the connection does next
        }, opts.timeoutMs);
        req.on("error", (e) => end(failure ?? kindOf(e)));
        req.on("response", (res) => {
          let got = 0;
          const cl = res.headers["content-length"] !== undefined ? Number(res.headers["content-length"]) : undefined;
          res.on("data", (d: Buffer) => {
            got += d.length;
            ctr(startedAt).bytesReceived += d.length;
          });
          res.on("error", () => {});
          res.on("close", () => {
            if (failure) return end(failure);
            if (!res.complete || (cl !== undefined && got < cl)) return end(new Failure("shortBody", `body ended after ${got}${cl !== undefined ? ` of ${cl}` : ""} bytes`));
            end(undefined, res.statusCode ?? 0);
          });
        });
        if (body) {
          req.end(body);
          ctr(startedAt).bytesSent += body.length;
        } else req.end();
      });
    return drive(one).then(() => agent.destroy());
  }

  // ---- HTTP/2: one session per client, `streams` workers sharing it; reopened after it dies.
  function h2Client(): Promise<void> {
    let session: http2.ClientHttp2Session | undefined;
    let opening: Promise<http2.ClientHttp2Session> | undefined;
    const getSession = (): Promise<http2.ClientHttp2Session> => {
      if (session && !session.closed && !session.destroyed) return Promise.resolve(session);
      opening ??= connect()
        .then((sock) => {
          const s = http2.connect(`${secure ? "https" : "http"}://${url.host}`, { createConnection: () => sock as never, settings: { enablePush: false } });
          s.on("error", () => {}); // streams in flight report it
          s.once("close", () => {
            if (session === s) session = undefined;
          });
          s.once("goaway", () => {
            if (session === s) session = undefined;
          });
          session = s;
          return s;
        })
        .finally(() => (opening = undefined));
      return opening;
    };
    const headers: http2.OutgoingHttpHeaders = { ":method": opts.method, ":path": path };
    if (body) headers["content-length"] = String(body.length);
    const one = async (startedAt: number): Promise<void> => {
      let s: http2.ClientHttp2Session;
      try {
        s = await withTimeout(getSession(), opts.timeoutMs, "connect", () => {});
      } catch (e) {
        return fail(e instanceof Failure ? e : kindOf(e), startedAt);
      }
      await new Promise<void>((resolve) => {
        let done = false;
        let failure: Failure | undefined;
        let status: number | undefined;
        let cl: number | undefined;
        let got = 0;
        let ended = false;
        const end = (f?: Failure): void => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          if (f) fail(f, startedAt);
          else finished(status!, startedAt);
          resolve();
        };
        let stream: http2.ClientHttp2Stream;
        try {
          stream = s.request(headers, { endStream: !body });
        } catch (e) {
          if (session === s) session = undefined;
          return end(new Failure("reset", `session unusable: ${(e as Error).message}`));
        }
        const timer = setTimeout(() => {
          failure = new Failure("timeout", `no complete response within ${opts.timeoutMs} ms`);
          // A stream whose request body is held by flow control closes only once it is written:
          // count the timeout now and let the stream go (the session is destroyed at the end).
          stream.close(http2.constants.NGHTTP2_CANCEL);
          end(failure);
        }, opts.timeoutMs);
        stream.on("response", (h) => {
          status = Number(h[":status"]);
          if (h["content-length"] !== undefined) cl = Number(h["content-length"]);
        });
        stream.on("data", (d: Buffer) => {
          got += d.length;
          ctr(startedAt).bytesReceived += d.length;
        });
        stream.on("end", () => (ended = true));
        stream.on("error", (e) => (failure ??= kindOf(e)));
        stream.on("close", () => {
          if (failure && (failure.kind === "timeout" || status === undefined)) return end(failure);
          if (status === undefined) return end(new Failure("reset", `stream closed before the response (code ${stream.rstCode ?? "?"})`));
          if (!ended || (cl !== undefined && got < cl)) return end(new Failure("shortBody", `stream ended after ${got}${cl !== undefined ? ` of ${cl}` : ""} bytes (code ${stream.rstCode ?? "?"})`));
          end(failure);
        });
        if (body) {
          stream.end(body);
          ctr(startedAt).bytesSent += body.length;
        }
        stream.resume();
      });
    };
    return Promise.all(Array.from({ length: opts.streams }, () => drive(one))).then(() => {
      session?.destroy();
    });
  }

  const result = Promise.all(clients).then(() => {
    // The measured phase's time (the run's, without a warm-up).
    const durationMs = Math.max(0, performance.now() - warmEnd);
    for (const s of open) s.destroy();
    return { ...counters, histogram, warmup: { started: warm.started, completed: warm.completed, failed: warm.failed }, startedAt: new Date(Date.now() - durationMs), durationMs };
  });
  return {
    counters,
    stop: () => void (stopped = true),
    result,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
