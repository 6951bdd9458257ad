// `paf bench` against `paf serve --host` on loopback (kernel sockets): exact counts and bytes for
// HTTP/1.1 and h2, cleartext and TLS; injected server faults counted by kind with a non-zero exit;
// the SVG plot is well-formed XML and carries the JSON's numbers; bad arguments are named.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBuilt, runCli, startCli } from "../../helpers/cli.js";
import { bench, dir, expectClean, faultApp, freePort } from "./helpers.js";
import { texts, xmlProblem } from "./xml.js";

beforeAll(() => ensureBuilt(), 120_000);

describe("paf bench against paf serve --host 127.0.0.1", () => {
  let demo: ChildProcess;
  let faults: ChildProcess;
  let http = 0;
  let https = 0;
  let fhttp = 0;
  beforeAll(async () => {
    http = await freePort();
    https = await freePort();
    fhttp = await freePort();
    demo = (await startCli(["serve", "--host", "127.0.0.1", "--http", String(http), "--https", String(https)], /^listening/)).child;
    faults = (await startCli(["serve", "--host", "127.0.0.1", "--http", String(fhttp), "--app", faultApp()], /^listening/)).child;
  });
  afterAll(() => {
    demo?.kill("SIGTERM");
    faults?.kill("SIGTERM");
  });

  const cases: Array<[string, () => string, string[]]> = [
    ["HTTP/1.1 cleartext", () => `http://127.0.0.1:${http}/bytes/1000`, []],
    ["h2c (prior knowledge)", () => `http://127.0.0.1:${http}/bytes/1000`, ["--h2", "--streams", "5"]],
    ["HTTP/1.1 over TLS", () => `https://127.0.0.1:${https}/bytes/1000`, ["--insecure"]],
    ["h2 over TLS", () => `https://127.0.0.1:${https}/bytes/1000`, ["--h2", "--streams", "5", "--insecure"]],
  ];
  for (const [name, url, extra] of cases) {
    it(`${name}: exactly 400 requests on 4 connections, 1000 bytes each, no errors`, async () => {
      const r = await bench([url(), "--requests", "400", "--clients", "4", ...extra]);
      expect(expectClean(r, 400, { sent: 0, received: 1000 })).toEqual([]);
      expect(r.report.connections).toBe(4);
      expect(r.report.protocol).toBe(extra.includes("--h2") ? "h2" : "http/1.1");
      expect(r.report.tls).toBe(url().startsWith("https:"));
      expect(r.report.transport).toBe("kernel");
      expect(r.report.options.streams).toBe(extra.includes("--h2") ? 5 : 1);
      // The text report says the same as the JSON.
      expect(r.stdout).toContain(`400 requests in`);
      expect(r.stdout).toContain(`p50 ${r.report.latencyMs.p50.toFixed(3)}`);
      expect(r.stdout).toMatch(/errors: connect 0, reset 0, timeout 0, bad status 0, short body 0, other 0/);
    });
  }

  it("POST bodies: --body-size 3000 to /echo, HTTP/1.1 and h2, bytes counted both ways", async () => {
    for (const extra of [[], ["--h2"]]) {
      const r = await bench([`http://127.0.0.1:${http}/echo`, "--body-size", "3000", "--requests", "100", "--clients", "2", ...extra]);
      expect(expectClean(r, 100, { sent: 3000, received: 3000 })).toEqual([]);
      expect(r.report.method).toBe("POST");
    }
  });

  it("--duration bounds the run by time: every request started is accounted for", async () => {
    const r = await bench([`http://127.0.0.1:${http}/`, "--duration", "0.5", "--clients", "2"]);
    expect(r.code).toBe(0);
    expect(r.report.options.requests).toBeNull();
    expect(r.report.requests).toBeGreaterThan(10);
    expect(r.report.completed).toBe(r.report.requests);
    expect(r.report.durationSeconds).toBeGreaterThanOrEqual(0.5);
    expect(r.report.durationSeconds).toBeLessThan(5);
  });

  it("--rate: open loop, exactly rate x duration requests, spread over the duration", async () => {
    const r = await bench([`http://127.0.0.1:${http}/`, "--rate", "200", "--duration", "1", "--clients", "4"]);
    expect(r.code).toBe(0);
    expect(r.report.options.rate).toBe(200);
    // Request i is due at i / 200 s: 200 of them fall within the second, none after it.
    expect(r.report.requests).toBe(200);
    expect(r.report.completed).toBe(200);
    // Not a burst: the last was due 0.995 s in.
    expect(r.report.durationSeconds).toBeGreaterThanOrEqual(0.99);
    expect(r.report.durationSeconds).toBeLessThan(3);
    expect(r.stdout).toMatch(/open loop at 200 req\/s/);
  });

  it("--warmup: a first phase on the same connections counted apart, open and closed loop", async () => {
    const open = await bench([`http://127.0.0.1:${http}/`, "--rate", "200", "--warmup", "0.5", "--duration", "1", "--clients", "4"]);
    expect(open.code).toBe(0);
    // Due every 5 ms from the start: 100 in the half-second of warm-up, 200 in the second after.
    expect(open.report.warmup).toEqual({ requests: 100, completed: 100, failed: 0 });
    expect(open.report.requests).toBe(200);
    expect(open.report.completed).toBe(200);
    expect(open.report.options.warmupSeconds).toBe(0.5);
    expect(open.report.durationSeconds).toBeGreaterThanOrEqual(0.99);
    expect(open.report.durationSeconds).toBeLessThan(3);
    expect(open.report.connections).toBe(4); // the same connections throughout
    expect(open.stdout).toMatch(/warm-up: 0.5 s, 100 requests \(100 completed, 0 failed\), not counted below/);
    const closed = await bench([`http://127.0.0.1:${http}/`, "--warmup", "0.3", "--requests", "100", "--clients", "2"]);
    expect(closed.code).toBe(0);
    expect(closed.report.requests).toBe(100);
    expect(closed.report.completed).toBe(100);
    expect(closed.report.warmup!.requests).toBeGreaterThan(10);
    expect(closed.report.warmup!.completed).toBe(closed.report.warmup!.requests);
  });

  it("--rate counts latency from when a request was due: a server that falls behind is charged its queue", async () => {
    // /slow answers after 50 ms: one connection does 20 requests/s. Closed loop, that is what
    // the latencies show; asked for 100/s, every request waits for the ones before it.
    const closed = await bench([`http://127.0.0.1:${fhttp}/slow`, "--duration", "1", "--clients", "1"]);
    expect(closed.code).toBe(0);
    expect(closed.report.latencyMs.p99).toBeLessThan(200);
    const open = await bench([`http://127.0.0.1:${fhttp}/slow`, "--rate", "100", "--duration", "1", "--clients", "1", "--timeout", "1000"]);
    // All 100 due within the second are made: the k-th starts about k x 50 ms after its time
    // (k x 10 ms), so the latencies climb toward a second; a request still waiting 1 s after its
    // time is a timeout, not sent. The one client keeps doing 20/s until the last due one is
    // over a second late: ~40 done in ~2 s, the rest timeouts.
    expect(open.report.requests).toBe(100);
    expect(open.report.completed).toBeGreaterThanOrEqual(25);
    expect(open.report.completed).toBeLessThanOrEqual(50);
    expect(open.report.durationSeconds).toBeLessThan(3);
    expect(open.report.errors.timeout).toBe(100 - open.report.completed);
    expect(open.code).toBe(1);
    expect(open.report.latencyMs.max).toBeGreaterThan(500);
    expect(open.report.latencyMs.p50).toBeGreaterThan(3 * closed.report.latencyMs.p50);
  });

  const faultCases: Array<[string, string[], Partial<Record<string, number>>, number]> = [
    ["a route that resets the connection", ["/reset"], { reset: 20 }, 0],
    ["a route that stalls past --timeout", ["/stall", "--timeout", "300"], { timeout: 20 }, 0],
    ["a body shorter than its Content-Length", ["/short"], { shortBody: 20 }, 0],
    ["a 503", ["/status"], { badStatus: 20 }, 0],
    ["a route that resets every 4th request", ["/flaky"], { reset: 5 }, 15],
  ];
  for (const h2 of [false, true]) {
    for (const [name, [path, ...extra], want, completed] of faultCases) {
      it(`${h2 ? "h2" : "HTTP/1.1"}: ${name} is counted as ${Object.keys(want).join(", ")} and exits 1`, async () => {
        const r = await bench([`http://127.0.0.1:${fhttp}${path}`, "--requests", "20", "--clients", "2", ...(h2 ? ["--h2", "--streams", "1"] : []), ...extra]);
        expect(r.code).toBe(1);
        const p = r.report;
        expect(p.requests).toBe(20);
        expect(p.completed).toBe(completed);
        expect(p.failed).toBe(20 - completed);
        expect(p.errors).toEqual({ connect: 0, reset: 0, timeout: 0, badStatus: 0, shortBody: 0, other: 0, ...want });
        if (want.badStatus) expect(p.statusCodes).toEqual({ "503": 20 });
        expect(r.stdout).toMatch(new RegExp(`${20 - completed} failed`));
      });
    }
  }

  it("h2: an upload the server never reads (held by flow control) still ends at --timeout, counted", async () => {
    const t0 = Date.now();
    const r = await bench([`http://127.0.0.1:${fhttp}/stall`, "--h2", "--body-size", "300000", "--requests", "4", "--clients", "1", "--streams", "2", "--timeout", "400"], 20_000);
    expect(r.code).toBe(1);
    expect(r.report.errors.timeout).toBe(4);
    expect(r.report.bytes.sent).toBe(4 * 300_000);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it("a refused connection is a connect error, retried and counted per request", async () => {
    const dead = await freePort();
    const r = await bench([`http://127.0.0.1:${dead}/`, "--requests", "6", "--clients", "2"]);
    expect(r.code).toBe(1);
    expect(r.report.errors.connect).toBe(6);
    expect(r.report.connections).toBe(6);
    expect(r.report.errorSamples.connect?.[0]).toMatch(/ECONNREFUSED/);
  });

  it("TLS without --insecure rejects the self-signed certificate as a connect error", async () => {
    const r = await bench([`https://127.0.0.1:${https}/`, "--requests", "2", "--clients", "1"]);
    expect(r.code).toBe(1);
    expect(r.report.errors.connect).toBe(2);
    expect(r.report.errorSamples.connect?.[0]).toMatch(/self.signed|SELF_SIGNED/i);
  });

  it("--plot writes an SVG that is well-formed XML and shows the JSON's numbers", async () => {
    const svg = join(dir, "plot.svg");
    const r = await bench([`http://127.0.0.1:${http}/`, "--requests", "500", "--clients", "4", "--plot", svg]);
    expect(r.code).toBe(0);
    const doc = readFileSync(svg, "utf8");
    expect(xmlProblem(doc)).toBeUndefined();
    // The checker itself catches what it must.
    expect(xmlProblem(doc.replace("</svg>", ""))).toMatch(/unclosed <svg>/);
    expect(xmlProblem(doc.replace("<title>", "<title>&"))).toMatch(/entity/);
    // A real XML parser agrees (python3 is among the CI packages).
    expect(execFileSync("python3", ["-c", "import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); print(r.tag)", svg], { encoding: "utf8" }).trim()).toBe(
      "{http://www.w3.org/2000/svg}svg",
    );
    const t = texts(doc, "text");
    const l = r.report.latencyMs;
    for (const [name, v] of [
      ["p50", l.p50],
      ["p90", l.p90],
      ["p99", l.p99],
      ["p99.9", l.p999],
      ["max", l.max],
    ] as const) {
      expect(t).toContain(`${name} ${v} ms`);
    }
    expect(t.some((s) => s.includes(`500 requests`) && s.includes(`${r.report.throughput.requestsPerSecond} req/s`))).toBe(true);
    expect(t).toContain("latency (ms)");
    expect(texts(doc, "title")[0]).toContain(`http://127.0.0.1:${http}/`);
  });
});

describe("paf bench: bad arguments", () => {
  const cases: Array<[string[], RegExp]> = [
    [["bench"], /a URL is required/],
    [["bench", "ftp://x/"], /URL: "ftp:" is not supported/],
    [["bench", "not a url"], /URL: "not a url" is not a URL/],
    [["bench", "http://127.0.0.1/", "http://127.0.0.2/"], /one URL expected, got 2/],
    [["bench", "http://127.0.0.1/", "--clients", "0"], /--clients must be between 1 and 10000/],
    [["bench", "http://127.0.0.1/", "--requests", "many"], /--requests expects a whole number/],
    [["bench", "http://127.0.0.1/", "--duration", "0"], /--duration expects seconds/],
    [["bench", "http://127.0.0.1/", "--rate", "0"], /--rate expects requests per second/],
    [["bench", "http://127.0.0.1/", "--rate", "fast"], /--rate expects requests per second/],
    [["bench", "http://127.0.0.1/", "--warmup", "0"], /--warmup expects seconds/],
    [["bench", "http://127.0.0.1/", "--streams", "4"], /--streams needs --h2/],
    [["bench", "http://127.0.0.1/", "--h2", "--streams", "0"], /--streams must be between/],
    [["bench", "http://127.0.0.1/", "--body-size", "1k"], /--body-size expects a whole number/],
    [["bench", "http://127.0.0.1/", "--method", "GE T"], /--method: "GE T" is not a method name/],
    [["bench", "http://127.0.0.1/", "--timeout", "0"], /--timeout must be between/],
    [["bench", "http://127.0.0.1/", "--ipv4", "198.18.0.2/24"], /--ipv4 needs --tap/],
    [["bench", "http://127.0.0.1/", "--tap", "t0"], /--tap needs an address/],
    [["bench", "http://localhost/", "--tap", "t0", "--ipv4", "198.18.0.2/24", "--dns", "x"], /--dns: "x" is not an IP address/],
    [["bench", "http://localhost/", "--dns", "198.18.0.1"], /--dns needs --tap/],
    [["bench", "http://198.18.0.1/", "--tap", "t0", "--ipv4", "198.18.0.300/24"], /--ipv4: invalid IPv4 address/],
    [["bench", "http://198.18.0.1/", "--tap", "t0", "--ipv4", "198.18.0.2"], /--ipv4: .*needs a prefix length/],
    [["bench", "http://198.18.0.1/", "--tap", "t0", "--ipv4", "198.18.0.2/24", "--gateway", "x"], /--gateway: "x" is not an IP address/],
    [["bench", "http://127.0.0.1/", "--bogus"], /Unknown option '--bogus'/],
  ];
  for (const [args, msg] of cases) {
    it(`rejects: paf ${args.join(" ")}`, async () => {
      const r = await runCli(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(msg);
    });
  }

  it("--help prints the options", async () => {
    const r = await runCli(["bench", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/--streams K/);
    expect(r.stdout).toMatch(/--tap NAME/);
  });
});
