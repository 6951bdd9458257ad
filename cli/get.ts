/**
 * `paf get URL`: a curl-like client over a userspace stack on a TAP device (or the host's sockets
 * without --tap), through the client side's context resolution, with ALPN, redirects and -v.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import { parse, intOption, UsageError } from "./args.js";
import { certificatesOption, outputFileOption, regularFileOption } from "./files.js";
import type { Stack, StackOptions } from "../stack/stack.js";
import { checkTapName, openTapStack, parseStackOptions } from "./tapstack.js";
import { Client, Ctx, K, type Body, type TlsConfig } from "../http/client/index.js";

export const GET_USAGE = `usage: paf get URL [--tap NAME --ipv4 CIDR [--ipv6 CIDR] [--gateway IP]... [--dns IP]... [--tap-netns NAME]]
               [--http2 | --http1.1] [--insecure | --cacert FILE] [-X METHOD] [-H 'Name: value']...
               [-d DATA | -d @FILE] [-o FILE] [-L N] [--timeout MS] [-f] [-v]

  --tap NAME        connect over a userspace stack on this TAP device (default: the host's sockets)
  --ipv4/--ipv6     the stack's addresses (CIDR); --gateway and --dns may be repeated
  --tap-netns NAME  the TAP lives in network namespace NAME
  --http2           h2c by prior knowledge for http://; for https:// h2 is offered in ALPN anyway
  --http1.1         offer only http/1.1 in ALPN
  --insecure        do not verify the server's certificate
  --cacert FILE     trust the CA certificates in FILE (PEM)
  -X METHOD         request method (default GET, or POST with -d)
  -H HEADER         add a request header
  -d DATA           request body (@FILE reads it from FILE, streamed)
  -o FILE           write the body to FILE instead of stdout
  -L N              follow at most N redirects (default 5; 0 returns the 3xx)
  --timeout MS      time allowed for the response head (default 30000)
  -f                exit 22 on HTTP status >= 400, like curl --fail
  -v                print the connection, protocol, status and headers on stderr`;

export interface GetConfig {
  url: URL;
  stack: Omit<StackOptions, "netif"> | undefined;
  tap: string | undefined;
  tapNetns: string | undefined;
  http2: boolean | "prior-knowledge";
  tls: TlsConfig;
  method: string;
  headers: Record<string, string>;
  data: string | undefined;
  output: string | undefined;
  maxRedirects: number;
  timeout: number;
  fail: boolean;
  verbose: boolean;
}

export function parseGetArgs(argv: string[]): GetConfig {
  const { values: v, positionals } = parse(
    argv,
    {
      tap: { type: "string" },
      "tap-netns": { type: "string" },
      ipv4: { type: "string" },
      ipv6: { type: "string" },
      gateway: { type: "string", multiple: true },
      dns: { type: "string", multiple: true },
      http2: { type: "boolean" },
      "http1.1": { type: "boolean" },
      insecure: { type: "boolean", short: "k" },
      cacert: { type: "string" },
      request: { type: "string", short: "X" },
      header: { type: "string", short: "H", multiple: true },
      data: { type: "string", short: "d" },
      output: { type: "string", short: "o" },
      location: { type: "string", short: "L" },
      timeout: { type: "string" },
      fail: { type: "boolean", short: "f" },
      verbose: { type: "boolean", short: "v" },
      help: { type: "boolean", short: "h" },
    },
    true,
  );
  if (v.help) throw new UsageError(GET_USAGE);
  if (positionals.length !== 1) throw new UsageError(`get: expected exactly one URL, got ${positionals.length}\n${GET_USAGE}`);
  let url: URL;
  try {
    url = new URL(positionals[0]!);
  } catch {
    throw new UsageError(`get: "${positionals[0]}" is not a URL (e.g. https://198.18.0.2/)`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError(`get: unsupported scheme ${url.protocol} (http: and https:)`);
  if (v.http2 && v["http1.1"]) throw new UsageError("--http2 and --http1.1 exclude each other");
  if (v.insecure && v.cacert) throw new UsageError("--insecure and --cacert exclude each other");
  if (!v.tap && (v.ipv4 || v.ipv6 || v.gateway || v.dns || v["tap-netns"]))
    throw new UsageError("--ipv4, --ipv6, --gateway, --dns and --tap-netns need --tap (without it the host's sockets and resolver are used)");
  let stack: GetConfig["stack"];
  if (v.tap) {
    checkTapName(v.tap);
    if (!v.ipv4 && !v.ipv6) throw new UsageError("--tap needs --ipv4 CIDR and/or --ipv6 CIDR");
    // The same validation as paf serve, so the options read and fail the same way.
    stack = parseStackOptions(v);
    if (stack.ipv6) stack.ipv6.dad = false; // a client that lives for one request: no DAD wait
  }
  const headers: Record<string, string> = {};
  for (const h of v.header ?? []) {
    const i = h.indexOf(":");
    if (i <= 0) throw new UsageError(`-H expects "Name: value", got "${h}"`);
    headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  const tls: TlsConfig = {};
  if (v.insecure) tls.rejectUnauthorized = false;
  if (v.cacert) tls.ca = certificatesOption("--cacert", v.cacert);
  if (v.data?.startsWith("@")) regularFileOption("-d", v.data.slice(1));
  if (v.output !== undefined) outputFileOption("-o", v.output);
  return {
    url,
    stack,
    tap: v.tap,
    tapNetns: v["tap-netns"],
    http2: v.http2 ? (url.protocol === "http:" ? "prior-knowledge" : true) : !v["http1.1"],
    tls,
    method: (v.request ?? (v.data !== undefined ? "POST" : "GET")).toUpperCase(),
    headers,
    data: v.data,
    output: v.output,
    maxRedirects: intOption("L", v.location, 0, 50, 5),
    timeout: intOption("timeout", v.timeout, 1, 3_600_000, 30_000),
    fail: v.fail ?? false,
    verbose: v.verbose ?? false,
  };
}

export async function get(argv: string[]): Promise<number> {
  const cfg = parseGetArgs(argv);
  const log = (s: string) => cfg.verbose && process.stderr.write(s + "\n");
  let stack: Stack | undefined;
  let ctx = Ctx.empty.with(K.tls, cfg.tls);
  if (cfg.tap) {
    stack = openTapStack({ tap: cfg.tap, tapNetns: cfg.tapNetns, stack: cfg.stack ?? {} });
    await stack.ready();
    ctx = ctx.with(K.stack, stack);
    log(`* userspace stack on ${cfg.tap}: ${stack.addresses().join(", ")}`);
  } else ctx = ctx.with(K.host_tcp, true);
  const client = new Client({ ctx });
  try {
    let body: Body | undefined;
    if (cfg.data !== undefined) body = cfg.data.startsWith("@") ? createReadStream(cfg.data.slice(1)) : cfg.data;
    log(`> ${cfg.method} ${cfg.url.href}`);
    for (const [k, val] of Object.entries(cfg.headers)) log(`> ${k}: ${val}`);
    const t0 = performance.now();
    const res = await client.request(cfg.url, { method: cfg.method, headers: cfg.headers, body, http2: cfg.http2, maxRedirects: cfg.maxRedirects, timeout: cfg.timeout });
    for (const r of res.redirects) log(`* redirected from ${r}`);
    if (res.connection)
      log(
        `* connected to ${res.connection.remoteAddress ?? "?"} port ${res.connection.remotePort ?? "?"} via ${res.connection.via}${res.connection.tls ? ` (${res.connection.tls.version}, ALPN ${res.connection.tls.alpn || "none"})` : ""}`,
      );
    log(`< ${res.protocol} ${res.status}`);
    for (const [k, val] of Object.entries(res.headers)) log(`< ${k}: ${Array.isArray(val) ? val.join(", ") : val}`);
    await pipeline(res.body, cfg.output ? createWriteStream(cfg.output) : process.stdout);
    log(`* ${res.protocol} ${res.status} in ${(performance.now() - t0).toFixed(1)} ms`);
    return cfg.fail && res.status >= 400 ? 22 : 0;
  } finally {
    client.close();
    await stack?.close();
  }
}
