// `paf bench` over TAP, in network namespaces this file creates (198.18.0.0/15, 2001:db8::/32):
//  - against `paf serve --tap` (the userspace stack serving), the clients on the kernel's TCP
//    inside the namespace: HTTP/1.1 and h2, cleartext and TLS, IPv4 and IPv6;
//  - with `paf bench --tap` (the clients on their own userspace stack) against `paf serve --host`
//    on the kernel's sockets in the namespace.
// Counts and bytes must be exact; injected faults must be counted by kind with exit status 1.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { CLI, ensureBuilt, runCli, startCli, type RunResult } from "../../helpers/cli.js";
import { Netns, dnsServer, ifname, requirePrivileged, waitForOutput } from "../../helpers/netns.js";
import { bench, expectClean, faultApp } from "./helpers.js";

beforeAll(() => ensureBuilt(), 120_000);

const run = requirePrivileged();

/** `paf ARGS` inside a namespace (the kernel's TCP there), killed after timeoutMs. */
function cliIn(ns: Netns, timeoutMs = 60_000): (args: string[]) => Promise<RunResult> {
  return (args) =>
    new Promise((resolve) => {
      const c = spawn("ip", ["netns", "exec", ns.name, process.execPath, CLI, ...args], { stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs, killSignal: "SIGKILL" });
      let stdout = "";
      let stderr = "";
      c.stdout.on("data", (d) => (stdout += d));
      c.stderr.on("data", (d) => (stderr += d));
      c.on("close", (code) => resolve({ code, stdout, stderr }));
    });
}

describe.skipIf(!run)("paf bench (kernel clients in a namespace) against paf serve --tap", () => {
  let ns: Netns;
  let server: ChildProcess;
  beforeAll(async () => {
    ns = await Netns.create("bench");
    const tap = ifname("pbs");
    server = (
      await startCli(["serve", "--tap", tap, "--tap-netns", ns.name, "--ipv4", "198.18.0.2/24", "--ipv6", "2001:db8::2/64", "--http", "80", "--https", "443", "--app", faultApp()], /^listening/)
    ).child;
    await ns.kernelSide(tap);
  });
  afterAll(async () => {
    server?.kill("SIGTERM");
    await ns?.destroy();
  });

  const cases: Array<[string, string, string[]]> = [
    ["HTTP/1.1 cleartext, IPv4", "http://198.18.0.2/bytes/20000", []],
    ["h2c, IPv6", "http://[2001:db8::2]/bytes/20000", ["--h2", "--streams", "4"]],
    ["HTTP/1.1 over TLS", "https://198.18.0.2/bytes/20000", ["--insecure"]],
    ["h2 over TLS", "https://198.18.0.2/bytes/20000", ["--h2", "--streams", "4", "--insecure"]],
  ];
  for (const [name, url, extra] of cases) {
    it(`${name}: exactly 300 requests of 20000 bytes on 4 connections, no errors`, async () => {
      const r = await bench([url, "--requests", "300", "--clients", "4", ...extra], 60_000, cliIn(ns));
      expect(expectClean(r, 300, { sent: 0, received: 20000 })).toEqual([]);
      expect(r.report.connections).toBe(4);
      expect(r.report.transport).toBe("kernel");
    });
  }

  it("faults on the userspace server: resets and stalls are counted, exit 1", async () => {
    const reset = await bench(["http://198.18.0.2/flaky", "--requests", "40", "--clients", "2"], 60_000, cliIn(ns));
    expect(reset.code).toBe(1);
    expect(reset.report.errors).toEqual({ connect: 0, reset: 10, timeout: 0, badStatus: 0, shortBody: 0, other: 0 });
    expect(reset.report.completed).toBe(30);
    const stall = await bench(["https://198.18.0.2/stall", "--h2", "--insecure", "--requests", "8", "--clients", "2", "--streams", "4", "--timeout", "400"], 60_000, cliIn(ns));
    expect(stall.code).toBe(1);
    expect(stall.report.errors.timeout).toBe(8);
    expect(stall.report.failed).toBe(8);
  });
});

describe.skipIf(!run)("paf bench --tap (clients on a userspace stack) against paf serve --host in a namespace", () => {
  let ns: Netns;
  const tap = ifname("pbc");
  const onTap = ["--tap", tap, "--tap-netns", "", "--ipv4", "198.18.2.2/24", "--ipv6", "2001:db8:2::2/64"];
  beforeAll(async () => {
    ns = await Netns.create("benchc");
    onTap[3] = ns.name;
    // The TAP exists before paf bench attaches to it, so the kernel side is ready from the start.
    await ns.ip("tuntap", "add", "dev", tap, "mode", "tap");
    await ns.kernelSide(tap, "198.18.2.1/24", "2001:db8:2::1/64");
    const app = faultApp();
    for (const host of ["198.18.2.1", "2001:db8:2::1"]) {
      const c = ns.spawn(process.execPath, [CLI, "serve", "--host", host, "--http", "8080", "--https", "8443", "--app", app], { timeoutMs: 300_000 });
      await waitForOutput(c, /^listening/m, 15_000);
    }
  });
  afterAll(async () => ns?.destroy());

  const cases: Array<[string, string, string[]]> = [
    ["HTTP/1.1 cleartext, IPv4", "http://198.18.2.1:8080/bytes/20000", []],
    ["HTTP/1.1 cleartext, IPv6", "http://[2001:db8:2::1]:8080/bytes/20000", []],
    ["h2 over TLS", "https://198.18.2.1:8443/bytes/20000", ["--h2", "--streams", "4", "--insecure"]],
    ["HTTP/1.1 over TLS", "https://198.18.2.1:8443/bytes/20000", ["--insecure"]],
  ];
  for (const [name, url, extra] of cases) {
    it(`${name}: exactly 300 requests of 20000 bytes, no errors, over paf's TCP`, async () => {
      const r = await bench([url, "--requests", "300", "--clients", "4", ...onTap, ...extra]);
      expect(expectClean(r, 300, { sent: 0, received: 20000 })).toEqual([]);
      expect(r.report.transport).toBe("paf");
      expect(r.report.connections).toBe(4);
      expect(r.stdout).toMatch(/via a paf userspace stack/);
    });
  }

  it("POST bodies over paf's TCP, echoed, are counted both ways (h2c and HTTP/1.1)", async () => {
    for (const extra of [["--h2"], []]) {
      const r = await bench(["http://198.18.2.1:8080/echo", "--body-size", "5000", "--requests", "100", "--clients", "2", ...onTap, ...extra]);
      expect(expectClean(r, 100, { sent: 5000, received: 5000 })).toEqual([]);
    }
  });

  it("faults seen through paf's TCP: short bodies and 503s are counted, exit 1", async () => {
    const short = await bench(["http://198.18.2.1:8080/short", "--requests", "10", "--clients", "2", ...onTap]);
    expect(short.code).toBe(1);
    expect(short.report.errors.shortBody).toBe(10);
    const bad = await bench(["https://198.18.2.1:8443/status", "--h2", "--insecure", "--requests", "10", "--clients", "2", ...onTap]);
    expect(bad.code).toBe(1);
    expect(bad.report.errors.badStatus).toBe(10);
    expect(bad.report.statusCodes).toEqual({ "503": 10 });
  });

  it("a host name, resolved by the clients' stack through its own DNS (dnsmasq in the namespace)", async () => {
    const dnsmasq = await dnsServer(ns, ["198.18.2.1"], ["--host-record=web.test,198.18.2.1,2001:db8:2::1,60"], { timeoutMs: 60_000 });
    try {
      for (const extra of [[], ["--h2", "--streams", "2", "--insecure"]]) {
        const url = extra.length ? "https://web.test:8443/bytes/1000" : "http://web.test:8080/bytes/1000";
        const r = await bench([url, "--requests", "40", "--clients", "2", "--dns", "198.18.2.1", ...onTap, ...extra]);
        expect(expectClean(r, 40, { sent: 0, received: 1000 })).toEqual([]);
        expect(r.report.transport).toBe("paf");
      }
      // A name the server does not know: every request fails at connect, naming the resolver's answer.
      const r = await bench(["http://nope.test:8080/", "--requests", "2", "--clients", "1", "--dns", "198.18.2.1", ...onTap]);
      expect(r.code).toBe(1);
      expect(r.report.errors.connect).toBe(2);
      expect(r.report.errorSamples.connect?.[0]).toMatch(/resolve: .*nope\.test.*ENOTFOUND/);
    } finally {
      dnsmasq.kill("SIGKILL");
    }
  });

  it("a port nobody listens on: every request is a connect error (RST from the kernel)", async () => {
    const r = await bench(["http://198.18.2.1:9999/", "--requests", "4", "--clients", "2", ...onTap]);
    expect(r.code).toBe(1);
    expect(r.report.errors.connect).toBe(4);
    expect(r.report.errorSamples.connect?.[0]).toMatch(/ECONNREFUSED/);
  });

  it("bad --tap-netns is an error, not a hang", async () => {
    const r = await runCli(["bench", "http://198.18.2.1:8080/", "--tap", ifname("pbx"), "--tap-netns", "paf-no-such-ns", "--ipv4", "198.18.2.3/24", "--requests", "1"], 20_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/paf: /);
  });
});
