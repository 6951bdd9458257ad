/**
 * How the ACME client reaches its server: HTTPS over flows resolved from a client context
 * (http/client), so the requests travel over whichever network the user chose: a paf stack's
 * TCP (names looked up by the stack's own resolver) or the host's sockets. A custom Connector
 * (e.g. one that counts or wraps connections) can be given too.
 */
import https from "node:https";
import { Ctx } from "../../http/client/context.js";
import { K, stackLookup, systemLookup, type Connector, type ConnectorStack, type Lookup } from "../../http/client/resolve.js";
import { PafHttpsAgent } from "../../http/client/agents.js";

export interface AcmeTransport {
  /** Where and how to connect (K.stack or K.host_tcp, a lookup, timeouts ...). */
  ctx: Ctx;
  connector?: Connector;
}

export interface HttpsOptions {
  /** Trusted roots for the ACME server's own certificate (PEM); default: Node's bundled roots. */
  ca?: string | Buffer | undefined;
  /** Per-request time limit (ms). Default 30000. */
  timeoutMs?: number;
  /** Largest response body accepted (bytes). Default 1 MiB (a certificate chain is a few KB). */
  maxResponseBytes?: number;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** The host kernel's TCP and the system resolver (for `paf serve --host` and `paf certify --host`). */
export function hostTransport(ctx: Ctx = Ctx.empty): AcmeTransport {
  return { ctx: ctx.with(K.host_tcp, true) };
}

/**
 * A paf stack's TCP (the userspace stack for `--tap`). Names are looked up with the stack's own
 * resolver (stack.dns, over the stack's UDP/TCP); only when the stack has no DNS servers
 * configured (ENOSERVERS) does the lookup fall back to the host's resolver.
 */
export function stackTransport(stack: ConnectorStack, connectTimeoutMs = 10_000, ctx: Ctx = Ctx.empty): AcmeTransport {
  const viaStack = stack.dns ? stackLookup(stack.dns) : undefined;
  const lookup: Lookup = async (name) => {
    if (!viaStack) return systemLookup(name);
    try {
      return await viaStack(name);
    } catch (e) {
      if ((e as { code?: string }).code === "ENOSERVERS") return systemLookup(name);
      throw e;
    }
  };
  return { ctx: ctx.with(K.stack, stack).with(K.lookup, lookup).with(K.connectTimeout, connectTimeoutMs) };
}

/** A small HTTPS client over the transport; one per ACME client, close() releases its connections. */
export class HttpsOverTransport {
  private readonly agent: PafHttpsAgent;
  private readonly timeoutMs: number;
  private readonly maxBytes: number;
  constructor(transport: AcmeTransport, opts: HttpsOptions = {}) {
    this.agent = new PafHttpsAgent({ ctx: transport.ctx, connector: transport.connector, maxSockets: 2, ...(opts.ca ? { ca: opts.ca } : {}) });
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.maxBytes = opts.maxResponseBytes ?? 1024 * 1024;
  }

  request(method: "GET" | "HEAD" | "POST", url: string, body?: string, headers: Record<string, string> = {}): Promise<HttpResponse> {
    const u = new URL(url);
    if (u.protocol !== "https:") return Promise.reject(new Error(`ACME URLs must be https:, got ${url}`));
    return new Promise((resolve, reject) => {
      const req = https.request(
        u,
        { method, agent: this.agent, headers: { "user-agent": "paf-acme/0.1", ...headers, ...(body !== undefined ? { "content-length": String(Buffer.byteLength(body)) } : {}) } },
        (res) => {
          const chunks: Buffer[] = [];
          let n = 0;
          res.on("data", (c: Buffer) => {
            n += c.length;
            if (n > this.maxBytes) {
              req.destroy(new Error(`response from ${u.origin}${u.pathname} exceeds ${this.maxBytes} bytes`));
              return;
            }
            chunks.push(c);
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on("error", reject);
        },
      );
      req.setTimeout(this.timeoutMs, () => req.destroy(Object.assign(new Error(`${method} ${u.origin}${u.pathname}: no answer within ${this.timeoutMs} ms`), { code: "ETIMEDOUT" })));
      req.on("error", reject);
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
