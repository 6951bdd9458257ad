/**
 * How the ACME client reaches its server: HTTPS (node:https) over flows from an injected
 * `connect(host, port)`, so the requests travel over whichever network the user chose (a paf
 * stack's `tcp.connect`, or `net.connect` on the host). Names are turned into addresses by an
 * injected `resolve(host)` (literal IPs pass through), so a resolver running on the stack can be
 * plugged in.
 */
import https from "node:https";
import tls from "node:tls";
import net from "node:net";
import { lookup } from "node:dns/promises";
import type { Duplex } from "node:stream";

export interface AcmeTransport {
  /** Open a TCP connection to an IP address (the resolver has already run). */
  connect(host: string, port: number): Promise<Duplex>;
  /** Name to address. Default: literal IPs as they are, otherwise the host's resolver (node:dns). */
  resolve?(host: string): Promise<string>;
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

/** Literal IPs pass through; names go to the host's resolver. */
export async function defaultResolve(host: string): Promise<string> {
  const h = host.replace(/^\[|\]$/g, "");
  if (net.isIP(h)) return h;
  return (await lookup(h)).address;
}

/** The host kernel's TCP as a transport (for `paf serve --host` and `paf certify --host`). */
export function hostTransport(): AcmeTransport {
  return {
    connect: (host, port) =>
      new Promise((resolve, reject) => {
        const s = net.connect({ host, port });
        s.once("connect", () => {
          s.off("error", reject);
          resolve(s);
        });
        s.once("error", reject);
      }),
  };
}

/** The part of a paf Stack the transport needs (its DNS resolver is optional). */
export interface TcpConnector {
  tcp: { connect(opts: { host: string; port: number; timeout?: number }): Promise<Duplex> };
  dns?: { lookup(name: string): Promise<{ address: string }> };
}

/**
 * A paf stack's TCP as a transport (the userspace stack for `--tap`). Names are looked up with
 * the stack's own resolver (stack.dns, over the stack's UDP/TCP); only when the stack has no DNS
 * servers configured (ENOSERVERS) does the lookup fall back to the host's resolver.
 */
export function stackTransport(stack: TcpConnector, connectTimeoutMs = 10_000): AcmeTransport {
  return {
    connect: (host, port) => stack.tcp.connect({ host, port, timeout: connectTimeoutMs }),
    async resolve(host) {
      const h = host.replace(/^\[|\]$/g, "");
      if (net.isIP(h) || !stack.dns) return defaultResolve(h);
      try {
        return (await stack.dns.lookup(h)).address;
      } catch (e) {
        if ((e as { code?: string }).code === "ENOSERVERS") return defaultResolve(h);
        throw e;
      }
    },
  };
}

/** An https.Agent whose connections are TLS over the transport's flows. */
class FlowAgent extends https.Agent {
  constructor(
    private readonly transport: AcmeTransport,
    private readonly ca: string | Buffer | undefined,
  ) {
    super({ keepAlive: true, maxSockets: 2 });
  }

  // node's http.Agent calls createConnection(options, oncreate); returning nothing and calling
  // oncreate later is the documented asynchronous form.
  override createConnection(options: { host?: string; hostname?: string; port?: number | string }, oncreate: (err: Error | null, socket?: Duplex) => void): undefined {
    const host = (options.hostname ?? options.host ?? "localhost").replace(/^\[|\]$/g, "");
    const port = Number(options.port ?? 443);
    const resolve = this.transport.resolve ?? defaultResolve;
    resolve(host)
      .then((addr) => this.transport.connect(addr, port))
      .then(
        (socket) => {
          const t = tls.connect({
            socket,
            host,
            ...(net.isIP(host) ? {} : { servername: host }),
            ...(this.ca ? { ca: this.ca } : {}),
            ALPNProtocols: ["http/1.1"],
            minVersion: "TLSv1.2",
          });
          oncreate(null, t);
        },
        (err: Error) => oncreate(err),
      );
    return undefined;
  }
}

/** A small HTTPS client over the transport; one per ACME client, close() releases its connections. */
export class HttpsOverTransport {
  private readonly agent: FlowAgent;
  private readonly timeoutMs: number;
  private readonly maxBytes: number;
  constructor(transport: AcmeTransport, opts: HttpsOptions = {}) {
    this.agent = new FlowAgent(transport, opts.ca);
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
