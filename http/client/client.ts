/**
 * The request API: `client.request(url, opts)` (and `client.fetch`, shaped like WHATWG fetch)
 * over flows resolved from a context, so the same call runs over the userspace stack, the host's
 * sockets, a Unix socket or a protocol of the user's. Per origin it keeps HTTP/1.1 connections
 * alive in a pool (a node:http Agent whose connections come from the context) and multiplexes
 * requests on one HTTP/2 session. Over TLS, ALPN chooses: the first connection to an origin offers
 * h2 and http/1.1 and the answer is remembered. Cleartext HTTP/2 is by prior knowledge only
 * (`http2: "prior-knowledge"`). Redirects are followed (bounded), bodies are streamed both ways,
 * and every failure is a ClientError naming its stage.
 */
import http from "node:http";
import http2 from "node:http2";
import { Readable, type Duplex } from "node:stream";
import { Ctx } from "./context.js";
import { ClientError } from "./errors.js";
import { type Connector, defaultConnector, K, withTarget, type Resolved } from "./resolve.js";

export type Body = string | Uint8Array | Readable | AsyncIterable<Uint8Array>;
export type Headers = Record<string, string | string[] | number | undefined>;

export interface RequestOptions {
  method?: string;
  headers?: Headers;
  body?: Body;
  /**
   * This request's context instead of the client's (build it from `client.ctx.with(...)` to refine
   * the client's, e.g. another CA or another stack). Pooled separately from the client's own.
   */
  ctx?: Ctx;
  /** Time until the response head arrives, ms (stage "timeout"). Default 30000. */
  timeout?: number;
  /** Redirects followed before failing (stage "protocol"). Default 5; 0 returns the 3xx itself. */
  maxRedirects?: number;
  /**
   * HTTP/2: over TLS, offer h2 in ALPN (default true; false offers only http/1.1); over cleartext,
   * "prior-knowledge" speaks h2c directly (default: HTTP/1.1).
   */
  http2?: boolean | "prior-knowledge";
  signal?: AbortSignal;
}

export type Protocol = "http/1.0" | "http/1.1" | "h2";

export interface ClientResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The protocol the response came over. */
  protocol: Protocol;
  /** The final URL (after redirects). */
  url: string;
  /** URLs that redirected here, in order. */
  redirects: string[];
  /** How the response's connection was made. */
  connection: ConnectionInfo | undefined;
  /** The body, streamed. */
  body: Readable;
  bytes(): Promise<Buffer>;
  text(): Promise<string>;
  json(): Promise<unknown>;
}

export interface ConnectionInfo {
  /** The protocol that opened the flow ("paf-tcp", "host-tcp", "unix", or a registered one). */
  via: string;
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  tls: { version: string | null; alpn: string | false } | undefined;
}

const INFO = Symbol("paf.connectionInfo");

function describe(r: Resolved): Duplex {
  const f = r.flow as Duplex & { [INFO]?: ConnectionInfo };
  f[INFO] = { via: r.protocol, remoteAddress: r.remoteAddress, remotePort: r.remotePort, tls: r.tls ? { version: r.tls.version, alpn: r.tls.alpn } : undefined };
  return f;
}

const infoOf = (s: unknown): ConnectionInfo | undefined => (s as { [INFO]?: ConnectionInfo } | null | undefined)?.[INFO];

export interface ClientOptions {
  /** The context requests resolve from (a stack, TLS settings ...). Default: host sockets. */
  ctx?: Ctx;
  connector?: Connector;
  /** HTTP/1.1 connections per origin. Default 6. */
  maxSocketsPerOrigin?: number;
  /** Idle HTTP/1.1 connections kept per origin. Default 6. */
  maxFreeSocketsPerOrigin?: number;
  /** How long an idle pooled HTTP/1.1 connection is kept, ms. Default 4000 (below common servers' 5 s). */
  keepAliveMs?: number;
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host", "te"]);

/** One origin's connections: an HTTP/1.1 pool and at most one HTTP/2 session. */
class Origin {
  readonly agent: http.Agent;
  /** "h2" / "h1" once known for a TLS origin (from ALPN). */
  mode: "h1" | "h2" | undefined;
  session: http2.ClientHttp2Session | undefined;
  sessionInfo: ConnectionInfo | undefined;
  probing: Promise<void> | undefined;
  /** TLS connections that negotiated http/1.1 while probing, handed to the agent first. */
  readonly spare: Duplex[] = [];
  opened = 0;

  constructor(
    readonly key: string,
    readonly open: (alpn: string[] | undefined) => Promise<Resolved>,
    readonly secure: boolean,
    opts: ClientOptions,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: opts.maxSocketsPerOrigin ?? 6, maxFreeSockets: opts.maxFreeSocketsPerOrigin ?? 6, timeout: opts.keepAliveMs ?? 4000 });
    // Connections come from the context (callback form of createConnection: they open asynchronously).
    (this.agent as unknown as { createConnection: unknown }).createConnection = (_o: unknown, cb: (err: Error | null, s?: Duplex) => void) => {
      const s = this.spare.pop();
      if (s) return void cb(null, s);
      this.connect(this.secure ? ["http/1.1"] : undefined).then(
        (r) => cb(null, describe(r)),
        (e: Error) => cb(e),
      );
      return undefined;
    };
  }

  /** Open one connection to this origin (counted in `opened`). */
  async connect(alpn: string[] | undefined): Promise<Resolved> {
    const r = await this.open(alpn);
    this.opened++;
    return r;
  }

  /** The HTTP/2 session, if it is still usable. */
  get liveSession(): http2.ClientHttp2Session | undefined {
    const s = this.session;
    return s && !s.closed && !s.destroyed ? s : undefined;
  }

  /**
   * Run `task` when `needed()` says so, one caller at a time: concurrent first requests to an
   * origin wait for the one connection being set up instead of each opening their own.
   */
  async setUp(needed: () => boolean, task: () => Promise<void>): Promise<void> {
    while (this.probing) await this.probing;
    if (!needed()) return;
    this.probing = task().finally(() => (this.probing = undefined));
    await this.probing;
  }

  /** An HTTP/2 session over a resolved flow. */
  startSession(r: Resolved, authority: string): http2.ClientHttp2Session {
    const flow = describe(r);
    this.sessionInfo = infoOf(flow);
    const s = http2.connect(authority, { createConnection: () => flow as never });
    s.on("error", () => {});
    const drop = () => {
      if (this.session === s) this.session = undefined;
    };
    s.once("close", drop);
    s.once("goaway", drop);
    this.session = s;
    return s;
  }

  close(): void {
    this.session?.close();
    this.agent.destroy();
    for (const s of this.spare.splice(0)) s.destroy();
  }
}

export class Client {
  readonly ctx: Ctx;
  readonly connector: Connector;
  private readonly origins = new Map<string, Origin>();
  /** Per-request contexts get pools of their own. */
  private readonly ctxIds = new WeakMap<Ctx, number>();
  private ctxCount = 0;
  private closed = false;

  constructor(private readonly opts: ClientOptions = {}) {
    this.ctx = opts.ctx ?? Ctx.empty.with(K.host_tcp, true);
    this.connector = opts.connector ?? defaultConnector();
  }

  /** Connections opened so far, per origin ("https://host:port"). */
  stats(): Record<string, { opened: number; mode: string }> {
    const out: Record<string, { opened: number; mode: string }> = {};
    for (const [k, o] of this.origins) out[k] = { opened: o.opened, mode: o.mode ?? (o.session ? "h2" : "h1") };
    return out;
  }

  /** Close every pooled connection and session. */
  close(): void {
    this.closed = true;
    for (const o of this.origins.values()) o.close();
    this.origins.clear();
  }

  async request(url: string | URL, opts: RequestOptions = {}): Promise<ClientResponse> {
    if (this.closed) throw new ClientError("connect", "the client is closed");
    let u = parseUrl(url);
    let method = (opts.method ?? "GET").toUpperCase();
    let body = opts.body;
    let headers = { ...(opts.headers ?? {}) };
    const redirects: string[] = [];
    const max = opts.maxRedirects ?? 5;
    for (;;) {
      const res = await this.once(u, method, headers, body, opts);
      const loc = res.headers.location;
      if (![301, 302, 303, 307, 308].includes(res.status) || typeof loc !== "string" || max === 0) return { ...res, url: u.href, redirects };
      if (redirects.length >= max) {
        res.body.resume();
        throw new ClientError("protocol", `too many redirects (more than ${max}) from ${redirects[0] ?? u.href}`, { code: "ERR_TOO_MANY_REDIRECTS" });
      }
      res.body.resume(); // drain so the connection is reused
      redirects.push(u.href);
      const next = new URL(loc, u);
      if (next.protocol !== "http:" && next.protocol !== "https:") throw new ClientError("protocol", `redirect to unsupported scheme ${next.protocol}`);
      if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === "POST")) {
        if (method !== "HEAD") method = "GET";
        body = undefined;
        headers = Object.fromEntries(Object.entries(headers).filter(([k]) => !/^content-/i.test(k)));
      } else if (body !== undefined && typeof body !== "string" && !(body instanceof Uint8Array)) {
        throw new ClientError("protocol", `cannot follow a ${res.status} redirect with a streamed request body (it cannot be sent twice)`);
      }
      if (next.origin !== u.origin) headers = Object.fromEntries(Object.entries(headers).filter(([k]) => !/^(authorization|cookie)$/i.test(k)));
      u = next;
    }
  }

  /** fetch-shaped: a WHATWG Response (with `protocol` added). */
  async fetch(url: string | URL, init: RequestOptions = {}): Promise<Response & { protocol: Protocol }> {
    const r = await this.request(url, init);
    const nullBody = r.status === 204 || r.status === 304 || (init.method ?? "GET").toUpperCase() === "HEAD";
    const h = new globalThis.Headers();
    for (const [k, v] of Object.entries(r.headers)) if (v !== undefined && !k.startsWith(":")) for (const x of Array.isArray(v) ? v : [v]) h.append(k, x);
    if (nullBody) r.body.resume();
    const resp = new Response(nullBody ? null : (Readable.toWeb(r.body) as ReadableStream), { status: r.status, headers: h });
    Object.defineProperty(resp, "url", { value: r.url });
    Object.defineProperty(resp, "redirected", { value: r.redirects.length > 0 });
    return Object.assign(resp, { protocol: r.protocol });
  }

  private origin(u: URL, opts: RequestOptions): Origin {
    const secure = u.protocol === "https:";
    const port = Number(u.port || (secure ? 443 : 80));
    const base = opts.ctx ?? this.ctx;
    let id = base === this.ctx ? 0 : this.ctxIds.get(base);
    if (id === undefined) this.ctxIds.set(base, (id = ++this.ctxCount));
    const key = `${u.protocol}//${u.host}${id ? `#${id}` : ""}`;
    let o = this.origins.get(key);
    if (!o) {
      o = new Origin(key, (alpn) => this.connector.open(withTarget(base, u.hostname, port, secure ? (alpn ? { alpn } : {}) : undefined)), secure, this.opts);
      this.origins.set(key, o);
    }
    return o;
  }

  private async once(u: URL, method: string, headers: Headers, body: Body | undefined, opts: RequestOptions): Promise<Omit<ClientResponse, "url" | "redirects">> {
    const o = this.origin(u, opts);
    const h2 = opts.http2 ?? true;
    if (o.secure && h2 !== false) {
      // The first connection offers both in ALPN; the server's choice is remembered.
      await o.setUp(
        () => o.mode === undefined || (o.mode === "h2" && !o.liveSession),
        async () => {
          const r = await o.connect(["h2", "http/1.1"]);
          if (r.tls?.alpn === "h2") {
            o.mode = "h2";
            o.startSession(r, u.origin);
          } else {
            o.mode = "h1";
            o.spare.push(describe(r));
          }
        },
      );
      const s = o.mode === "h2" ? o.liveSession : undefined;
      if (s) return h2Request(s, o.sessionInfo, u, method, headers, body, opts);
    } else if (!o.secure && h2 === "prior-knowledge") {
      await o.setUp(
        () => !o.liveSession,
        async () => {
          o.mode = "h2";
          o.startSession(await o.connect(undefined), u.origin);
        },
      );
      return h2Request(o.liveSession!, o.sessionInfo, u, method, headers, body, opts);
    }
    return h1Request(o.agent, u, method, headers, body, opts);
  }
}

/** One request with a throwaway client (closed once the body has been read). */
export async function request(url: string | URL, opts: RequestOptions & { connector?: Connector } = {}): Promise<ClientResponse> {
  const c = new Client({ ctx: opts.ctx, connector: opts.connector });
  try {
    const r = await c.request(url, { ...opts, ctx: undefined });
    r.body.once("close", () => c.close());
    r.body.once("end", () => setImmediate(() => c.close()));
    return r;
  } catch (e) {
    c.close();
    throw e;
  }
}

function parseUrl(url: string | URL): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ClientError("resolve", `invalid URL: ${String(url)}`, { code: "ERR_INVALID_URL" });
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new ClientError("resolve", `unsupported scheme ${u.protocol} (http: and https: are)`, { code: "ERR_INVALID_URL" });
  return u;
}

function stageOf(e: Error & { code?: string }): ClientError {
  if (e instanceof ClientError) return e;
  return new ClientError("protocol", `${e.code ? e.code + " " : ""}${e.message}`, { cause: e, code: e.code });
}

function timeoutError(u: URL, ms: number): ClientError {
  return new ClientError("timeout", `no response from ${u.host} within ${ms} ms`, { code: "ETIMEDOUT" });
}

function sendBody(body: Body | undefined, w: NodeJS.WritableStream & { end(b?: Uint8Array | string): unknown; destroy(e?: Error): unknown }): void {
  if (body === undefined) return void w.end();
  if (typeof body === "string" || body instanceof Uint8Array) return void w.end(body);
  const r = body instanceof Readable ? body : Readable.from(body);
  r.on("error", (e) => w.destroy(e));
  r.pipe(w);
}

function withResponse(status: number, headers: ClientResponse["headers"], protocol: Protocol, connection: ConnectionInfo | undefined, body: Readable): Omit<ClientResponse, "url" | "redirects"> {
  const bytes = async () => {
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  };
  return { status, headers, protocol, connection, body, bytes, text: async () => (await bytes()).toString("utf8"), json: async () => JSON.parse((await bytes()).toString("utf8")) };
}

export function h1Request(agent: http.Agent, u: URL, method: string, headers: Headers, body: Body | undefined, opts: RequestOptions): Promise<Omit<ClientResponse, "url" | "redirects">> {
  return new Promise((resolve, reject) => {
    const ms = opts.timeout ?? 30_000;
    const hs: http.OutgoingHttpHeaders = { host: u.host };
    for (const [k, v] of Object.entries(headers)) if (v !== undefined) hs[k.toLowerCase()] = v;
    const req = http.request({ agent, host: u.hostname, port: u.port || (u.protocol === "https:" ? 443 : 80), method, path: u.pathname + u.search, headers: hs, setHost: false });
    const timer = setTimeout(() => {
      req.destroy(timeoutError(u, ms));
    }, ms);
    const onAbort = () => req.destroy(new ClientError("protocol", "aborted", { code: "ABORT_ERR" }));
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    req.once("error", (e) => {
      clearTimeout(timer);
      reject(stageOf(e));
    });
    req.once("response", (res) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      const protocol: Protocol = res.httpVersion === "1.0" ? "http/1.0" : "http/1.1";
      resolve(withResponse(res.statusCode ?? 0, res.headers, protocol, infoOf(res.socket), res));
    });
    sendBody(body, req);
  });
}

export function h2Request(
  session: http2.ClientHttp2Session,
  info: ConnectionInfo | undefined,
  u: URL,
  method: string,
  headers: Headers,
  body: Body | undefined,
  opts: RequestOptions,
): Promise<Omit<ClientResponse, "url" | "redirects">> {
  return new Promise((resolve, reject) => {
    const ms = opts.timeout ?? 30_000;
    const hs: http2.OutgoingHttpHeaders = { ":method": method, ":path": u.pathname + u.search, ":scheme": u.protocol.slice(0, -1), ":authority": u.host };
    for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP_BY_HOP.has(k.toLowerCase())) hs[k.toLowerCase()] = v;
    let st: http2.ClientHttp2Stream;
    try {
      st = session.request(hs, { endStream: body === undefined });
    } catch (e) {
      return reject(stageOf(e as Error));
    }
    const timer = setTimeout(() => {
      st.close(http2.constants.NGHTTP2_CANCEL);
      reject(timeoutError(u, ms));
    }, ms);
    const onAbort = () => st.destroy(new ClientError("protocol", "aborted", { code: "ABORT_ERR" }));
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    st.once("error", (e) => {
      clearTimeout(timer);
      reject(stageOf(e));
    });
    st.once("response", (h) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      const { ":status": status, ...rest } = h;
      resolve(withResponse(Number(status), rest as ClientResponse["headers"], "h2", info, st));
    });
    if (body !== undefined) sendBody(body, st);
  });
}
