/**
 * HTTP services over flows, all driven by Node's own http / http2 implementations:
 * - httpService: cleartext HTTP/1.0, HTTP/1.1 and HTTP/2 by prior knowledge (h2c) on one port,
 *   chosen by sniffing the HTTP/2 connection preface;
 * - httpsService: TLS 1.2/1.3 with ALPN choosing h2 or http/1.1 (clients offering no ALPN get
 *   HTTP/1.1), SNI certificate selection, certificate replacement without restart.
 * Handlers are Node-standard (req, res) functions; the same one serves HTTP/1.x and HTTP/2.
 */
import http from "node:http";
import http2 from "node:http2";
import tls from "node:tls";
import type { Flow } from "./listener.js";
import type { Service } from "./serve.js";
import { DeadlineTable, type ConnectionDeadline, type DeadlinePhase } from "./deadlines.js";
import { upgradeListener, type UpgradeHandler } from "./upgrade.js";

export type Handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

export interface HttpLimits {
  /** Largest request head (bytes). Default 16 KiB. */
  maxHeaderSize?: number;
  /**
   * Time from accept to a complete request head, TLS handshake and HTTP/2 preface included, and
   * from the first byte of a later request to its head (slowloris defence, ms). Default 20000.
   */
  headersTimeoutMs?: number;
  /** Time from a request head to its complete body (ms). Default 300000. */
  requestTimeoutMs?: number;
  /** Idle connection between requests: HTTP/1.1 keep-alive, an HTTP/2 session without streams (ms). Default 5000. */
  keepAliveTimeoutMs?: number;
  /** HTTP/2 streams per connection. Default 100. */
  maxConcurrentStreams?: number;
}

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
/** The preface's request line: no HTTP/1.x request is this line, so a client sending it meant HTTP/2. */
const PREFACE_LINE = PREFACE.subarray(0, 16);
/**
 * The answer to a client that began the HTTP/2 preface and broke it: an invalid preface is a
 * connection error of type PROTOCOL_ERROR (RFC 9113 §3.4), so the server's preface (an empty
 * SETTINGS) and GOAWAY(last stream 0, PROTOCOL_ERROR) (§5.4.1, §6.8), then the connection closes.
 */
const BAD_PREFACE_ANSWER = (() => {
  const debug = Buffer.from("invalid connection preface");
  const settings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
  const goaway = Buffer.from([0, 0, 8 + debug.length, 7, 0, 0, 0, 0, 0, /* last stream */ 0, 0, 0, 0, /* PROTOCOL_ERROR */ 0, 0, 0, 1]);
  return Buffer.concat([settings, goaway, debug]);
})();

/** Send the last bytes of a connection, and reset it if the peer has not closed its side 1 s on. */
function endWith(flow: Flow, bytes: string | Buffer): void {
  flow.end(bytes);
  setTimeout(() => flow.destroy(), 1000).unref();
}
const REQUEST_TIMEOUT = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

function deadlineTable(l: HttpLimits): DeadlineTable {
  return new DeadlineTable({ headersTimeoutMs: l.headersTimeoutMs ?? 20_000, requestTimeoutMs: l.requestTimeoutMs ?? 300_000, keepAliveTimeoutMs: l.keepAliveTimeoutMs ?? 5000 });
}

/**
 * Close a connection whose deadline passed: 408 to an HTTP/1.x client still sending its head,
 * GOAWAY to an HTTP/2 one (no stream is open), FIN otherwise; what has not closed a second later
 * is closed from below (the transport then finishes the close, or resets it).
 */
function closeExpired(d: ConnectionDeadline, phase: DeadlinePhase): void {
  const flow = d.flow;
  const upper = d.upper ?? flow;
  if (d.session && !d.session.destroyed) d.session.close();
  else if (phase === "request") upper.destroy();
  else if (upper.writable) upper.end(d.http1 && phase === "head" ? REQUEST_TIMEOUT : undefined);
  setTimeout(() => {
    d.session?.destroy();
    upper.destroy();
    flow.destroy();
  }, 1000).unref();
}

/** Requests being handled, so shutdown can wait for them. */
interface Inflight {
  n: number;
}

/**
 * Turns handler exceptions into a 500 and a log line, never a crash; counts requests in flight;
 * with `deadlines`, keeps an HTTP/1.x connection's deadline in step with its requests (head done,
 * body in, response done; HTTP/2 streams are followed by their session instead).
 *
 * One listener per event on each request and response, and no second 'request' listener on the
 * server: a second listener for the same event makes Node allocate a [first, second] array per
 * request, and once V8 has learnt (from the long-lived emitters of a thousand tenants' connections)
 * to allocate that array in the old generation, each one holds the request's young closures
 * through the next scavenges. 1000-tenant runs then promoted 0.15-2.8 MB per scavenge, each
 * scavenge taking 3-15 ms instead of 1 (README "Tenants").
 */
function guarded(handler: Handler, log: (msg: string) => void, inflight: Inflight, deadlines?: DeadlineTable): Handler {
  return (req, res) => {
    inflight.n++;
    let done = false;
    const d = deadlines && req.httpVersionMajor === 1 ? deadlines.of(req.socket) : undefined;
    d?.requestStarted(req as http.IncomingMessage);
    // 'close' ends every response, finished or aborted (node:http and the HTTP/2 compatibility
    // API alike); one listener (on: it comes once) rather than once() on 'finish' and 'close'.
    res.on("close", () => {
      if (done) return;
      done = true;
      inflight.n--;
      d?.requestDone();
    });
    try {
      handler(req, res);
    } catch (err) {
      log(`paf: handler error for ${req.method} ${req.url}: ${(err as Error).message}`);
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end("internal server error\n");
      } else res.destroy();
    }
  };
}

function h1Server(handler: Handler, l: HttpLimits, log: (m: string) => void, inflight: Inflight, deadlines: DeadlineTable): http.Server {
  const headersTimeout = l.headersTimeoutMs ?? 20_000;
  const s = http.createServer(
    {
      maxHeaderSize: l.maxHeaderSize ?? 16 * 1024,
      requestTimeout: l.requestTimeoutMs ?? 300_000,
      headersTimeout,
      keepAliveTimeout: l.keepAliveTimeoutMs ?? 5000,
      // Node checks the two timeouts on this interval (30 s by default): keep it well below them.
      connectionsCheckingInterval: Math.max(250, Math.min(headersTimeout / 2, 5000)),
    },
    guarded(handler, log, inflight, deadlines) as http.RequestListener,
  );
  // A client that half-closes after pipelining requests (`printf ... | nc`) still gets every
  // response: with the default (false) node:http aborts the queued responses when the FIN arrives
  // in the same batch as the requests, which a userspace stack delivers far more often than a
  // kernel socket does. The connection is ended after the last response instead.
  (s as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  s.on("clientError", (err: Error & { code?: string }, socket) => {
    // Parse errors and timeouts: answer 400/408/431 when possible, then close only that connection.
    const code = err.code === "HPE_HEADER_OVERFLOW" ? 431 : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
    if (socket.writable) socket.end(`HTTP/1.1 ${code} ${http.STATUS_CODES[code]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    lingerClose(socket);
  });
  return s;
}

const LINGER_MS = 2000;
const lingering = new WeakSet<object>();

/**
 * Lingering close (RFC 9112 §9.6): after answering an error, read and discard what the client is
 * still sending (the rest of an oversized head, say) before closing, so that the close does not
 * become a reset that discards our answer before the client has read it. At most LINGER_MS.
 */
function lingerClose(socket: import("node:stream").Duplex): void {
  if (lingering.has(socket)) return;
  lingering.add(socket);
  socket.on("data", () => {});
  socket.resume();
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}

/**
 * Track HTTP/2 sessions so shutdown can close them (the server does not do it for emitted
 * connections), and keep their connections' deadlines: a stream is a request. `accepting` names
 * the connection whose session is being made now (h2c: made synchronously on 'connection').
 */
function trackSessions(s: http2.Http2Server | http2.Http2SecureServer, deadlines: DeadlineTable, accepting?: { current: ConnectionDeadline | undefined }): Set<http2.ServerHttp2Session> {
  const sessions = new Set<http2.ServerHttp2Session>();
  s.on("session", (sess: http2.ServerHttp2Session) => {
    sessions.add(sess);
    const d = accepting?.current ?? deadlines.of(sess.socket);
    if (d) {
      d.session = sess;
      sess.on("stream", (stream: http2.ServerHttp2Stream) => {
        d.requestStarted(stream);
        stream.once("close", () => d.requestDone());
      });
    }
    sess.on("close", () => {
      sessions.delete(sess);
      // The session is over (GOAWAY either way, an error, a rapid-reset flood): so is the
      // connection. node:http2 does not end a socket it was handed that way, which would keep
      // it open, with whatever it had not read, for good.
      d?.flow.destroy();
    });
    sess.on("error", () => {});
  });
  return sessions;
}

/**
 * RFC 9113 §8.1: a server may stop an upload with RST_STREAM(NO_ERROR) only after it has sent the
 * frame with END_STREAM. Node's http2 (v20) resets a finished server stream whose request body was
 * never read one event-loop turn after the response ends (Http2Stream[kMaybeDestroy] ->
 * setImmediate(callStreamClose)), even while the final empty DATA frame with END_STREAM is still
 * held back by an empty flow-control window; nghttp2 then sends the RST_STREAM first and the client
 * discards a complete response. That happens whenever the peer's WINDOW_UPDATE takes more than one
 * loop turn (a kernel socket on a slow link as well as a paf flow). Reading what is left of the
 * request once the response is finished (as node:http dumps an unread body) keeps Node off that
 * path: the stream closes when END_STREAM has really been sent. This listener runs before Node's
 * own 'finish' listener, which is added later, when the writable side shuts down.
 */
function endStreamBeforeReset(s: http2.Http2Server | http2.Http2SecureServer): void {
  s.on("stream", (stream: http2.ServerHttp2Stream) => {
    stream.once("finish", () => {
      if (stream.readableFlowing === null) stream.resume();
    });
  });
}

/**
 * HTTP/1.1 upgrades go to the hook; the connection is then the hook's (a WebSocket keeps its own
 * time): its deadline stops, so no 408 is ever written into it.
 */
function attachUpgrade(server: http.Server | http2.Http2SecureServer, hook: UpgradeHandler, deadlines: DeadlineTable, h2cOnHttp1?: http.Server): void {
  server.on(
    "upgrade",
    upgradeListener(h2cOnHttp1, hook, (socket) => deadlines.of(socket)?.stop()),
  );
}

/** Graceful stop: GOAWAY to HTTP/2 sessions, wait for requests in flight, close the rest at the deadline. */
async function shutdownAll(servers: Array<http.Server | http2.Http2Server | http2.Http2SecureServer>, sessions: Set<http2.ServerHttp2Session>, inflight: Inflight, deadline: number): Promise<void> {
  for (const s of sessions) s.close(); // in-flight streams finish, no new ones
  while (Date.now() < deadline && (inflight.n > 0 || sessions.size > 0)) await new Promise((r) => setTimeout(r, 25));
  for (const s of sessions) s.destroy();
  for (const srv of servers) if ("closeAllConnections" in srv) srv.closeAllConnections();
}

export interface HttpServiceOptions extends HttpLimits {
  log?: (msg: string) => void;
  /**
   * HTTP/1.1 `Upgrade` requests (WebSocket and others): the raw connection after the request head
   * is handed over, as with node:http's 'upgrade' event; e.g. a `ws` server's
   * `(req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req))`.
   * `Upgrade: h2c` alone is served over HTTP/1.1 as usual (see upgrade.ts). Without a hook, upgrade
   * requests are answered as ordinary requests (node:http's behaviour).
   */
  upgrade?: UpgradeHandler;
}

/** Cleartext HTTP/1.x and h2c (prior knowledge) on one listener. */
export function httpService(handler: Handler, opts: HttpServiceOptions = {}): Service & { h1: http.Server; h2: http2.Http2Server } {
  const log = opts.log ?? ((m) => console.error(m));
  const inflight: Inflight = { n: 0 };
  const deadlines = deadlineTable(opts);
  const accepting: { current: ConnectionDeadline | undefined } = { current: undefined };
  // Node's servers are made at the first connection: of a thousand tenants' services, those that
  // serve nobody cost nothing of them (and do not make V8 take Node's per-request allocations
  // for long-lived ones, which slows every other tenant's requests).
  let servers: { h1: http.Server; h2: http2.Http2Server; sessions: Set<http2.ServerHttp2Session> } | undefined;
  const made = () => {
    if (servers) return servers;
    const h1 = h1Server(handler, opts, log, inflight, deadlines);
    const h2 = http2.createServer({ settings: { maxConcurrentStreams: opts.maxConcurrentStreams ?? 100 }, maxSessionMemory: 10 }, guarded(handler, log, inflight) as never);
    const sessions = trackSessions(h2, deadlines, accepting);
    endStreamBeforeReset(h2);
    if (opts.upgrade) attachUpgrade(h1, opts.upgrade, deadlines, h1);
    return (servers = { h1, h2, sessions });
  };
  return {
    get h1() {
      return made().h1;
    },
    get h2() {
      return made().h2;
    },
    stats: () => ({ ...deadlines.counts }),
    evictIdle: () => deadlines.evictOldest(),
    handle(flow: Flow) {
      const { h1, h2 } = made();
      // From accept: a client that sends nothing, or part of the preface, is closed in time too.
      const d = deadlines.track(flow, closeExpired);
      // Sniff the first bytes: the HTTP/2 preface means h2c, its request line followed by anything
      // else a broken HTTP/2 preface, anything else HTTP/1.x.
      let seen = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        seen = Buffer.concat([seen, chunk]);
        const n = Math.min(seen.length, PREFACE.length);
        const isH2 = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
        if (isH2 && seen.length < PREFACE.length) return; // need more bytes to decide
        flow.off("data", onData);
        if (!isH2 && seen.length >= PREFACE_LINE.length && seen.subarray(0, PREFACE_LINE.length).equals(PREFACE_LINE)) {
          d.stop();
          return endWith(flow, BAD_PREFACE_ANSWER);
        }
        flow.pause();
        flow.unshift(seen);
        // The server takes the bytes already read from the stream's buffer (http2 reads them
        // itself; resuming here would race it for a kernel socket's native handle).
        // node:http manages the end of its connections itself (its own net.Server accepts with
        // allowHalfOpen), so a client's FIN must not end our side before the queued responses.
        // node:http2 wraps the flow (a JS stream) in a JSStreamSocket that ends it itself at EOF
        // (shutdown, as for a kernel socket): a flow that also ended itself at the FIN left the
        // wrapper's shutdown pending while the session still wrote, and Node asserted
        // (ERR_INTERNAL_ASSERTION in JSStreamSocket.doWrite, an uncaught exception).
        flow.allowHalfOpen = true;
        if (isH2) {
          accepting.current = d;
          h2.emit("connection", flow);
          accepting.current = undefined;
        } else {
          d.http1 = true;
          h1.emit("connection", flow);
          flow.resume();
        }
      };
      flow.on("data", onData);
    },
    shutdown: async (deadline) => {
      if (servers) await shutdownAll([servers.h1, servers.h2], servers.sessions, inflight, deadline);
    },
  };
}

export interface TlsOptions extends HttpLimits {
  key: string | Buffer;
  cert: string | Buffer;
  /** More certificates chosen by SNI server name ("*.example.org" wildcards allowed). */
  sni?: Record<string, { key: string | Buffer; cert: string | Buffer }>;
  minVersion?: tls.SecureVersion;
  log?: (msg: string) => void;
  /** HTTP/1.1 `Upgrade` requests over TLS (wss:// for a `ws` server), as in HttpServiceOptions. */
  upgrade?: UpgradeHandler;
}

/** HTTPS with ALPN: h2 or http/1.1 on the same port; setCertificate() swaps certificates live. */
export function httpsService(
  handler: Handler,
  opts: TlsOptions,
): Service & { server: http2.Http2SecureServer; setCertificate(key: string | Buffer, cert: string | Buffer, servername?: string): void } {
  const log = opts.log ?? ((m) => console.error(m));
  const inflight: Inflight = { n: 0 };
  const deadlines = deadlineTable(opts);
  const contexts = new Map<string, tls.SecureContext>();
  for (const [name, c] of Object.entries(opts.sni ?? {})) contexts.set(name.toLowerCase(), tls.createSecureContext({ key: c.key, cert: c.cert }));
  const pick = (servername: string): tls.SecureContext | undefined => {
    const n = servername.toLowerCase();
    return contexts.get(n) ?? contexts.get("*." + n.split(".").slice(1).join("."));
  };
  const server = http2.createSecureServer(
    {
      key: opts.key,
      cert: opts.cert,
      allowHTTP1: true,
      minVersion: opts.minVersion ?? "TLSv1.2",
      settings: { maxConcurrentStreams: opts.maxConcurrentStreams ?? 100 },
      SNICallback: (name, cb) => cb(null, pick(name)),
    },
    guarded(handler, log, inflight, deadlines) as never,
  );
  server.on("tlsClientError", () => {}); // a failed handshake ends only that connection
  const sessions = trackSessions(server, deadlines);
  endStreamBeforeReset(server);
  // allowHTTP1 hands HTTP/1.1 connections to node:http's own connection code, which emits
  // 'upgrade' on this server (h2c is never offered over TLS: ALPN chooses h2 there).
  if (opts.upgrade) attachUpgrade(server, opts.upgrade, deadlines);
  server.on("secureConnection", (socket: tls.TLSSocket) => {
    const d = deadlines.of(socket);
    if (!d) return;
    d.upper = socket;
    d.http1 = socket.alpnProtocol !== "h2";
  });
  return {
    server,
    stats: () => ({ ...deadlines.counts }),
    evictIdle: () => deadlines.evictOldest(),
    handle: (flow: Flow) => {
      // The clock starts at accept: the TLS handshake is part of the time to a request head.
      deadlines.track(flow, closeExpired);
      server.emit("connection", flow);
      // TLS owns the flow and ends it (close_notify, then FIN) when it is done: the flow must not
      // end itself at the peer's FIN, or TLS's close_notify after the EOF fails ("write after
      // end") and node:http2 destroys the session with that error. Set after the TLS socket is
      // made: it takes allowHalfOpen from the socket it wraps, and must itself end at EOF.
      flow.allowHalfOpen = true;
    },
    shutdown: (deadline) => shutdownAll([server], sessions, inflight, deadline),
    setCertificate(key, cert, servername) {
      if (servername) contexts.set(servername.toLowerCase(), tls.createSecureContext({ key, cert }));
      else server.setSecureContext({ key, cert });
    },
  };
}
