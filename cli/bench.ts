/**
 * `paf bench URL`: a load generator and stress test. N clients (one connection each, HTTP/1.1
 * keep-alive or HTTP/2 with K streams), over the kernel's sockets or over a paf stack of its own
 * on a TAP; prints a latency histogram, percentiles, rates and errors by kind, optionally writes
 * JSON (schema "paf-bench/1", http/bench/schema.ts) and an SVG plot. Exits 1 if any request failed.
 */
import { writeFileSync } from "node:fs";
import { parse, intOption, positiveNumberOption, UsageError } from "./args.js";
import { outputFileOption } from "./files.js";
import type { Stack, StackOptions } from "../stack/stack.js";
import { runLoad, type LoadOptions, type LoadRun } from "../http/bench/load.js";
import { Ctx } from "../http/client/context.js";
import { K } from "../http/client/resolve.js";
import { buildReport, formatText } from "../http/bench/report.js";
import { renderSvg } from "../http/bench/svg.js";
import { checkTapName, openTapStack, parseStackOptions } from "./tapstack.js";

export const BENCH_USAGE = `usage: paf bench URL [--clients N] [--requests M] [--duration S] [--rate R] [--warmup S] [--method M] [--body-size BYTES]
                 [--h2 [--streams K]] [--insecure] [--timeout MS] [--json FILE] [--plot FILE]
                 [--tap NAME (--ipv4 CIDR | --ipv6 CIDR)... [--gateway IP]... [--dns IP]... [--tap-netns NAME]]

  URL               http:// or https:// (TLS; ALPN h2 with --h2, http/1.1 otherwise)
  --clients N       concurrent connections (default 16); one is reopened after an error
  --requests M      requests in total (default 10000; with --duration alone: no count limit)
  --duration S      stop starting requests after S seconds (with --requests: whichever first)
  --rate R          open loop: R requests per second in all, each due at its time whatever
                    the server does, its latency counted from then (as wrk2; enough --clients
                    for R x the latency); default: closed loop, the next when one is done
  --warmup S        first S seconds on the same connections, counted apart (the report's
                    figures, --requests and --duration are of what comes after)
  --method M        request method (default GET, or POST with --body-size)
  --body-size BYTES request body of BYTES bytes (default 0: none)
  --h2              HTTP/2 (h2c by prior knowledge for http://) with --streams K concurrent
                    streams per connection (default 10)
  --insecure        accept any server certificate
  --timeout MS      time limit of one request, connecting included (default 10000)
  --json FILE       write the results as JSON (schema "paf-bench/1")
  --plot FILE       write the latency distribution as an SVG plot
  --tap NAME        run the clients over a paf userspace stack on TAP device NAME, not the
                    kernel's sockets; --ipv4/--ipv6 CIDR, --gateway IP, --dns IP (names in the URL
                    are resolved by the stack's own resolver) and --tap-netns NAME as for paf serve
Exit status: 0 if every request completed with a 2xx/3xx status and a whole body, 1 if any
failed (connect, reset, timeout, bad status, short body), 2 for bad arguments.`;

export interface BenchConfig {
  load: Omit<LoadOptions, "ctx" | "connector">;
  json: string | undefined;
  plot: string | undefined;
  tap: { name: string; netns: string | undefined; stack: Omit<StackOptions, "netif"> } | undefined;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/; // RFC 9110 §5.6.2

export function parseBenchArgs(argv: string[]): BenchConfig {
  const { values, positionals } = parse(
    argv,
    {
      clients: { type: "string" },
      requests: { type: "string" },
      duration: { type: "string" },
      rate: { type: "string" },
      warmup: { type: "string" },
      method: { type: "string" },
      "body-size": { type: "string" },
      h2: { type: "boolean" },
      streams: { type: "string" },
      insecure: { type: "boolean" },
      timeout: { type: "string" },
      json: { type: "string" },
      plot: { type: "string" },
      tap: { type: "string" },
      "tap-netns": { type: "string" },
      ipv4: { type: "string" },
      ipv6: { type: "string" },
      gateway: { type: "string", multiple: true },
      dns: { type: "string", multiple: true },
      help: { type: "boolean", short: "h" },
    },
    true,
  );
  if (values.help) throw new UsageError(BENCH_USAGE);
  if (positionals.length !== 1)
    throw new UsageError(positionals.length ? `one URL expected, got ${positionals.length}: ${positionals.join(" ")}` : "a URL is required, e.g. paf bench http://198.18.0.2/");
  let url: URL;
  try {
    url = new URL(positionals[0]!);
  } catch {
    throw new UsageError(`URL: "${positionals[0]}" is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError(`URL: "${url.protocol}" is not supported (http: or https:)`);
  const clients = intOption("clients", values.clients, 1, 10_000, 16);
  const requests = values.requests !== undefined || values.duration === undefined ? intOption("requests", values.requests, 1, 1e12, 10_000) : undefined;
  const seconds = positiveNumberOption("duration", values.duration, 86_400, "seconds");
  const durationMs = seconds === undefined ? undefined : seconds * 1000;
  const rate = positiveNumberOption("rate", values.rate, 10_000_000, "requests per second");
  const warmup = positiveNumberOption("warmup", values.warmup, 3600, "seconds");
  const warmupMs = warmup === undefined ? undefined : warmup * 1000;
  if (values.streams !== undefined && !values.h2) throw new UsageError("--streams needs --h2 (HTTP/1.1 runs one request at a time per connection)");
  const streams = intOption("streams", values.streams, 1, 1000, 10);
  const bodySize = intOption("body-size", values["body-size"], 0, 1 << 30, 0);
  const method = values.method ?? (bodySize > 0 ? "POST" : "GET");
  if (!TOKEN.test(method)) throw new UsageError(`--method: "${method}" is not a method name`);
  const timeoutMs = intOption("timeout", values.timeout, 1, 3_600_000, 10_000);
  for (const f of ["json", "plot"] as const) if (values[f] === "") throw new UsageError(`--${f} expects a file name`);

  let tap: BenchConfig["tap"];
  if (values.tap !== undefined) {
    if (!values.ipv4 && !values.ipv6) throw new UsageError("--tap needs an address for the stack: --ipv4 CIDR and/or --ipv6 CIDR");
    // The same validation as paf serve, so the options read and fail the same way.
    checkTapName(values.tap);
    const stack = parseStackOptions(values);
    tap = { name: values.tap, netns: values["tap-netns"], stack };
  } else {
    for (const o of ["tap-netns", "ipv4", "ipv6", "gateway", "dns"] as const)
      if (values[o] !== undefined) throw new UsageError(`--${o} needs --tap (it configures the userspace stack the clients run on)`);
  }
  return {
    load: { url, method, clients, streams: values.h2 ? streams : 1, requests, durationMs, bodySize, h2: !!values.h2, insecure: !!values.insecure, timeoutMs, rate, warmupMs },
    // Checked now, not after the run: the report must have somewhere to go.
    json: values.json === undefined ? undefined : outputFileOption("--json", values.json),
    plot: values.plot === undefined ? undefined : outputFileOption("--plot", values.plot),
    tap,
  };
}

/** A one-line progress bar on stderr (only on a TTY). */
function progress(run: LoadRun, cfg: BenchConfig["load"]): () => void {
  if (!process.stderr.isTTY) return () => {};
  const t0 = performance.now();
  const width = 30;
  const timer = setInterval(() => {
    const c = run.counters;
    const elapsed = (performance.now() - t0) / 1000;
    const byCount = cfg.requests !== undefined ? c.started / cfg.requests : 0;
    const byTime = cfg.durationMs !== undefined ? (elapsed * 1000) / cfg.durationMs : 0;
    const frac = Math.min(1, Math.max(byCount, byTime));
    const bar = "#".repeat(Math.round(frac * width)).padEnd(width, ".");
    process.stderr.write(`\r[${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${c.completed} done, ${c.failed} failed, ${(c.completed / (elapsed || 1)).toFixed(0)} req/s `);
  }, 200);
  return () => {
    clearInterval(timer);
    process.stderr.write("\r\x1b[K");
  };
}

export async function bench(argv: string[]): Promise<number> {
  const cfg = parseBenchArgs(argv);
  let stack: Stack | undefined;
  if (cfg.tap) {
    stack = openTapStack({ tap: cfg.tap.name, tapNetns: cfg.tap.netns, stack: cfg.tap.stack });
    await stack.ready();
  }
  try {
    const run = runLoad({ ...cfg.load, ctx: stack ? Ctx.empty.with(K.stack, stack) : Ctx.empty.with(K.host_tcp, true) });
    const stopProgress = progress(run, cfg.load);
    // The first SIGINT/SIGTERM stops starting requests (the report still comes); a second one exits.
    let signals = 0;
    const onSignal = () => (signals++ ? process.exit(130) : run.stop());
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    const result = await run.result.finally(() => {
      stopProgress();
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    });
    const report = buildReport(cfg.load, result, stack ? "paf" : "kernel");
    process.stdout.write(formatText(report));
    if (cfg.json) {
      writeFileSync(cfg.json, JSON.stringify(report, null, 2) + "\n");
      console.log(`  wrote ${cfg.json}`);
    }
    if (cfg.plot) {
      writeFileSync(cfg.plot, renderSvg(report));
      console.log(`  wrote ${cfg.plot}`);
    }
    return report.failed > 0 ? 1 : 0;
  } finally {
    await stack?.close();
  }
}
