/**
 * redirectToHttps(): the request handler of an HTTP port whose site lives on HTTPS. Every request
 * (HTTP/1.x or h2c) is answered with a redirect to the same URL on https://: the host the client
 * asked for without its port, then `port` unless it is 443, then the path and query as received.
 *
 * 308 Permanent Redirect (RFC 9110 §15.4.9) by default rather than 301: after a 301 a client may
 * repeat a POST as a GET (§15.4.2), after a 308 it repeats the same method with the same body, so
 * a form or an API call sent to http:// arrives intact at https://.
 *
 * The ACME HTTP-01 path is never redirected: wrapped in an Http01Responder
 * (`responder.wrap(redirectToHttps(...))`) the challenges are answered over HTTP, and a request
 * for a token the responder does not hold gets 404 here, like nginx's usual
 * `location /.well-known/acme-challenge/` in front of `return 301 https://$host$request_uri`.
 */
import type { Handler } from "./services.js";

/** RFC 8555 §8.3's path; the same as tls/acme/challenge.ts's CHALLENGE_PREFIX (http/ does not import tls/). */
export const ACME_CHALLENGE_PATH = "/.well-known/acme-challenge/";

export interface RedirectOptions {
  /** The HTTPS port the redirect points to. Default 443 (left out of the URL). */
  port?: number;
  /** 308 (default) or 307 keep the method; 301 or 302 let clients turn a POST into a GET. */
  status?: 301 | 302 | 307 | 308;
  /** Path prefixes answered 404 here instead of redirected. Default: the ACME challenge path. */
  keep?: readonly string[];
}

export function redirectToHttps(opts: RedirectOptions = {}): Handler {
  const port = opts.port ?? 443;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`redirectToHttps: port must be 1-65535, got ${port}`);
  const status = opts.status ?? 308;
  const keep = opts.keep ?? [ACME_CHALLENGE_PATH];
  const suffix = port === 443 ? "" : `:${port}`;
  return (req, res) => {
    const answer = (code: number, body: string, location?: string) => {
      res.statusCode = code;
      if (location !== undefined) res.setHeader("location", location);
      res.setHeader("content-type", "text/plain");
      res.setHeader("content-length", String(Buffer.byteLength(body)));
      res.end(body);
    };
    const target = requestTarget(req.url ?? "", (req.headers[":authority"] as string | undefined) ?? req.headers.host, req.socket?.localAddress);
    if (!target) return answer(400, "bad request: no host to redirect to\n");
    if (keep.some((p) => target.path.startsWith(p))) return answer(404, "not found\n");
    const location = `https://${target.host}${suffix}${target.path}`;
    answer(status, `moved to ${location}\n`, location);
  };
}

/**
 * The host (without port; IPv6 in brackets, lower case) and path+query a request was sent to. The
 * absolute form of the request target wins over Host (RFC 9112 §3.2.2); without either (HTTP/1.0)
 * the local address the request arrived on stands in. Undefined when there is no usable host.
 */
function requestTarget(url: string, authority: string | undefined, localAddress: string | undefined): { host: string; path: string } | undefined {
  if (!url.startsWith("/")) {
    // absolute-form (a proxy-style request) or "*" (OPTIONS *, which has no URL to move to)
    const u = parseUrl(url);
    if (!u || (u.protocol !== "http:" && u.protocol !== "https:") || u.username || u.password) return undefined;
    return { host: u.hostname, path: u.pathname + u.search };
  }
  if (authority === undefined || authority === "") {
    if (!localAddress) return undefined;
    return { host: localAddress.includes(":") ? `[${localAddress}]` : localAddress, path: url };
  }
  // Host is uri-host [ ":" port ] (RFC 9110 §7.2): an IP literal or a DNS name. Anything else
  // (user info, a path, stray characters) is refused rather than copied into the Location.
  const m = HOST.exec(authority);
  if (!m) return undefined;
  return { host: m[1]!.toLowerCase(), path: url };
}

const HOST = /^(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(?::\d*)?$/i;

function parseUrl(s: string): URL | undefined {
  try {
    return new URL(s);
  } catch {
    return undefined;
  }
}
