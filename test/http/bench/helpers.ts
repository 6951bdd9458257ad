/** Running `paf bench` with --json and reading the report back. */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli, type RunResult } from "../../helpers/cli.js";
import type { BenchReport } from "../../../http/bench/schema.js";

export const dir = mkdtempSync(join(tmpdir(), "paf-bench-"));
let n = 0;

export interface BenchRun extends RunResult {
  report: BenchReport;
  jsonPath: string;
}

/** Run `paf bench ARGS --json F` (time-bounded) and parse F. */
export async function bench(args: string[], timeoutMs = 60_000, via?: (args: string[]) => Promise<RunResult>): Promise<BenchRun> {
  const jsonPath = join(dir, `run${n++}.json`);
  const full = ["bench", ...args, "--json", jsonPath];
  const r = via ? await via(full) : await runCli(full, timeoutMs);
  let report: BenchReport;
  try {
    report = JSON.parse(readFileSync(jsonPath, "utf8")) as BenchReport;
  } catch {
    throw new Error(`paf ${full.join(" ")} wrote no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  return { ...r, report, jsonPath };
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/**
 * An --app module with injected faults: /reset resets (HTTP/1.1: the connection; h2: the stream),
 * /stall never answers, /short promises 1000 bytes and sends 10, /status answers 503, /flaky
 * resets every 4th request it sees and answers "ok" otherwise; /bytes/N sends N bytes, /echo
 * the request body; anything else says hello (without reading a request body).
 */
export function faultApp(): string {
  const path = join(dir, `faults${n++}.mjs`);
  writeFileSync(
    path,
    `let seen = 0;
const kill = (req, res) => (res.stream ? res.stream.close(2 /* NGHTTP2_INTERNAL_ERROR */) : req.socket.destroy());
export default (req, res) => {
  const p = new URL(req.url, "http://x").pathname;
  if (p === "/reset") return kill(req, res);
  if (p === "/stall") return;
  if (p === "/slow") return void setTimeout(() => res.end("slow\\n"), 50);
  if (p === "/short") {
    res.setHeader("content-length", "1000");
    res.write("x".repeat(10));
    return void setTimeout(() => kill(req, res), 20);
  }
  if (p === "/status") {
    res.statusCode = 503;
    return res.end("busy\\n");
  }
  if (p === "/flaky") return ++seen % 4 === 0 ? kill(req, res) : res.end("ok\\n");
  if (p === "/echo") return req.pipe(res);
  const m = /^\\/bytes\\/(\\d+)$/.exec(p);
  if (m) {
    res.setHeader("content-length", m[1]);
    return res.end(Buffer.alloc(Number(m[1]), 0x61));
  }
  res.end("hello\\n");
};
`,
  );
  return path;
}

/** The checks every clean run must pass: exact counts, no errors, bytes as expected. */
export function expectClean(r: BenchRun, requests: number, bodyBytes: { sent: number; received: number }): string[] {
  const p = r.report;
  const problems: string[] = [];
  const check = (ok: boolean, what: string) => ok || problems.push(what);
  check(r.code === 0, `exit code ${r.code} (stderr: ${r.stderr.trim()})`);
  check(p.schema === "paf-bench/1", `schema ${p.schema}`);
  check(p.requests === requests, `requests ${p.requests} != ${requests}`);
  check(p.completed === requests, `completed ${p.completed} != ${requests}`);
  check(p.failed === 0, `failed ${p.failed}: ${JSON.stringify(p.errorSamples)}`);
  check(
    Object.values(p.errors).every((x) => x === 0),
    `errors ${JSON.stringify(p.errors)}`,
  );
  check(p.statusCodes["200"] === requests, `status codes ${JSON.stringify(p.statusCodes)}`);
  check(p.bytes.received === requests * bodyBytes.received, `bytes received ${p.bytes.received} != ${requests * bodyBytes.received}`);
  check(p.bytes.sent === requests * bodyBytes.sent, `bytes sent ${p.bytes.sent} != ${requests * bodyBytes.sent}`);
  check(p.histogram.reduce((a, b) => a + b.count, 0) === requests, `histogram holds ${p.histogram.reduce((a, b) => a + b.count, 0)} requests`);
  const l = p.latencyMs;
  check(0 < l.min && l.min <= l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max, `latencies out of order ${JSON.stringify(l)}`);
  check(p.throughput.requestsPerSecond > 0, "no requests/s");
  return problems;
}
