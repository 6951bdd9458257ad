/**
 * Run an HTTP client connection over one resolved flow (the counterpart of the seed's `run`):
 * HTTP/2 when TLS negotiated "h2" in ALPN (or `http2: true` is asked for cleartext, prior
 * knowledge), HTTP/1.1 otherwise. The connection serves requests until closed: HTTP/1.1 one at a
 * time with keep-alive, HTTP/2 multiplexed.
 */
import http from "node:http";
import http2 from "node:http2";
import type { Duplex } from "node:stream";
import { ClientError } from "./errors.js";
import { h1Request, h2Request, type ClientResponse, type RequestOptions } from "./client.js";
import type { Resolved } from "./resolve.js";

export interface HttpConnection {
  readonly protocol: "http/1.1" | "h2";
  /** One request on this connection (`url` gives the scheme and authority; no redirects are followed). */
  request(url: string | URL, opts?: Omit<RequestOptions, "ctx" | "maxRedirects" | "http2">): Promise<Omit<ClientResponse, "url" | "redirects">>;
  close(): void;
}

export function runHttp(r: Resolved | Duplex, opts: { http2?: boolean; authority?: string } = {}): HttpConnection {
  const resolved = "flow" in r && "protocol" in r ? (r as Resolved) : undefined;
  const flow = resolved ? resolved.flow : (r as Duplex);
  const useH2 = resolved?.tls ? resolved.tls.alpn === "h2" : (opts.http2 ?? false);
  if (useH2) {
    const session = http2.connect(opts.authority ?? "http://localhost", { createConnection: () => flow as never });
    session.on("error", () => {});
    return {
      protocol: "h2",
      request: (url, o = {}) => h2Request(session, undefined, new URL(url), (o.method ?? "GET").toUpperCase(), o.headers ?? {}, o.body, o),
      close: () => session.close(),
    };
  }
  // One connection: an agent that hands out this flow and nothing else.
  let given = false;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1 });
  (agent as unknown as { createConnection: unknown }).createConnection = (_o: unknown, cb: (e: Error | null, s?: Duplex) => void) => {
    if (given || flow.destroyed) return void cb(new ClientError("connect", "the connection is closed (runHttp drives one flow)", { code: "ECONNRESET" }));
    given = true;
    cb(null, flow);
    return undefined;
  };
  return {
    protocol: "http/1.1",
    request: (url, o = {}) => h1Request(agent, new URL(url), (o.method ?? "GET").toUpperCase(), o.headers ?? {}, o.body, o),
    close: () => {
      agent.destroy();
      flow.destroy();
    },
  };
}
