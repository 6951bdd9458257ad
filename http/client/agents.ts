/**
 * Node's ecosystem over resolved flows: an `http.Agent` / `https.Agent` whose createConnection
 * resolves through a context (so `http.request`, axios, got ... run over the userspace stack
 * unchanged), and an undici Dispatcher (so undici's `fetch` / `request` do too).
 */
import http from "node:http";
import https from "node:https";
import type { Duplex } from "node:stream";
import { Agent as UndiciAgent } from "undici";
import type { Ctx } from "./context.js";
import { type Connector, defaultConnector, withTarget, type TlsConfig } from "./resolve.js";

type Cb = (err: Error | null, s?: Duplex) => void;

export interface PafAgentOptions extends http.AgentOptions {
  /** Where and how to connect (a stack, ...); host and port come from each request. */
  ctx: Ctx;
  connector?: Connector;
}

function createConnectionVia(ctx: Ctx, connector: Connector, tlsFrom?: (o: https.RequestOptions) => TlsConfig) {
  return (o: http.ClientRequestArgs & https.RequestOptions, cb: Cb): undefined => {
    const target = withTarget(ctx, String(o.host ?? o.hostname ?? "localhost"), Number(o.port ?? (tlsFrom ? 443 : 80)), tlsFrom?.(o));
    connector.open(target).then(
      (r) => cb(null, r.flow),
      (e: Error) => cb(e),
    );
    return undefined;
  };
}

/** An http.Agent whose connections come from the context (keep-alive pooling as usual). */
export class PafAgent extends http.Agent {
  constructor(opts: PafAgentOptions) {
    super({ keepAlive: true, ...opts });
    (this as unknown as { createConnection: unknown }).createConnection = createConnectionVia(opts.ctx, opts.connector ?? defaultConnector());
  }
}

/**
 * An https.Agent whose connections come from the context; TLS settings are the request's
 * (`ca`, `rejectUnauthorized`, `servername`, `cert`/`key`) over the context's K.tls.
 */
export class PafHttpsAgent extends https.Agent {
  constructor(opts: PafAgentOptions & https.AgentOptions) {
    super({ keepAlive: true, ...opts });
    (this as unknown as { createConnection: unknown }).createConnection = createConnectionVia(opts.ctx, opts.connector ?? defaultConnector(), (o) => ({
      alpn: ["http/1.1"],
      ...(o.servername ? { servername: o.servername } : {}),
      ...(o.ca ? { ca: o.ca as TlsConfig["ca"] } : {}),
      ...(o.cert ? { cert: o.cert as string } : {}),
      ...(o.key ? { key: o.key as string } : {}),
      ...(o.rejectUnauthorized !== undefined ? { rejectUnauthorized: o.rejectUnauthorized } : {}),
    }));
  }
}

/**
 * An undici Dispatcher whose connections come from the context: `fetch(url, { dispatcher })`.
 * `tls` adds to the context's K.tls (undici's own `tls`/`connect` options do not apply: paf connects).
 */
export function pafDispatcher(ctx: Ctx, opts: { connector?: Connector; tls?: TlsConfig } & Omit<NonNullable<ConstructorParameters<typeof UndiciAgent>[0]>, "tls" | "connect"> = {}): UndiciAgent {
  const connector = opts.connector ?? defaultConnector();
  const { connector: _c, tls: tlsOpts, ...agentOpts } = opts;
  return new UndiciAgent({
    ...agentOpts,
    connect: (o, cb) => {
      const secure = o.protocol === "https:";
      const tls = secure ? { ...(tlsOpts ?? {}), alpn: ["http/1.1"], ...(o.servername ? { servername: o.servername } : {}) } : undefined;
      connector.open(withTarget(ctx, o.hostname, Number(o.port || (secure ? 443 : 80)), tls)).then(
        (r) => cb(null, r.flow as never),
        (e: Error) => cb(e, null),
      );
    },
  });
}
