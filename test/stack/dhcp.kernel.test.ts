// The DHCPv4 client against dnsmasq's DHCP server on the kernel side of a TAP, in a namespace
// each test creates: a lease, renewal at T1 by unicast (dnsmasq's T1/T2 options set to seconds),
// a NAK when dnsmasq comes back with another range, DECLINE when the kernel holds the offered
// address (RFC 5227 probe), expiry when dnsmasq is gone (its shortest lease is 2 minutes), and
// `paf serve --dhcp`. tcpdump in the namespace shows what went unicast and what broadcast.
// Needs root and /dev/net/tun (CI has both).
import { describe, expect, it, beforeAll } from "vitest";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { ifname, requirePrivileged, waitForOutput, withNetns, type Netns } from "../helpers/netns.js";
import { ensureBuilt, startCli } from "../helpers/cli.js";
import { TapNetif } from "../../stack/netif/tap.js";
import { Stack } from "../../stack/stack.js";
import type { DhcpClient, DhcpEvents, DhcpOptions } from "../../stack/dhcp.js";

const run = requirePrivileged();
const DNSMASQ = "/usr/sbin/dnsmasq";
/** RFC 5227 probing, shortened: the kernel answers a probe within a millisecond. */
const FAST_PROBE: DhcpOptions = { probes: 2, probeWaitMs: 100, probeMinMs: 200, probeMaxMs: 300, announceWaitMs: 500 };

interface Proc {
  p: ChildProcess;
  out: () => string;
  stop: () => Promise<void>;
}

function collect(p: ChildProcess): Proc {
  let out = "";
  p.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  p.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  return {
    p,
    out: () => out,
    stop: async () => {
      if (p.exitCode !== null || p.signalCode !== null) return;
      const gone = new Promise((r) => p.once("exit", r));
      p.kill("SIGTERM");
      await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
    },
  };
}

/** dnsmasq as a DHCP server only (no DNS), logging every exchange; extra arguments set the range and options. */
async function dnsmasq(ns: Netns, tap: string, leaseFile: string, extra: string[]): Promise<Proc> {
  const args = [
    "--no-daemon",
    "--conf-file=/dev/null",
    "--pid-file=",
    "--port=0",
    `--interface=${tap}`,
    "--bind-interfaces",
    "--log-facility=-",
    "--log-dhcp",
    "--no-ping",
    `--dhcp-leasefile=${leaseFile}`,
    "--dhcp-option=option:dns-server,198.18.0.1",
    ...extra,
  ];
  const p = ns.spawn(DNSMASQ, args, { timeoutMs: 300_000 });
  const proc = collect(p);
  await waitForOutput(p, /DHCP, IP range|DHCP, static leases/);
  return proc;
}

/** tcpdump of DHCP on the TAP, one line per message: "IP 198.18.0.52.68 > 198.18.0.1.67: BOOTP/DHCP, Request ...". */
async function dhcpDump(ns: Netns, tap: string): Promise<Proc> {
  const p = ns.spawn("tcpdump", ["-l", "-n", "-i", tap, "udp port 67 or udp port 68"], { timeoutMs: 300_000 });
  const proc = collect(p);
  await waitForOutput(p, /listening on/);
  return proc;
}

/** Wait for a line in a process's output (the log can lag behind the packets it describes). */
async function logged(p: Proc, re: RegExp, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!re.test(p.out())) {
    if (Date.now() > end) throw new Error(`no ${re} in the output within ${timeoutMs} ms:\n${p.out()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function next<E extends keyof DhcpEvents>(c: DhcpClient, event: E, timeoutMs: number): Promise<DhcpEvents[E]> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no '${event}' within ${timeoutMs} ms (state ${c.state})`)), timeoutMs);
    c.once(event, ((...args: DhcpEvents[E]) => {
      clearTimeout(t);
      resolve(args);
    }) as never);
  });
}

/** A namespace with a TAP whose kernel side is 198.18.0.1/24, dnsmasq on it, tcpdump, and a stack asking for a lease. */
async function withDhcp(
  tag: string,
  dnsmasqArgs: string[],
  dhcp: DhcpOptions,
  fn: (x: { ns: Netns; tap: string; leases: string; server: Proc; dump: Proc; stack: Stack; restart: (args: string[]) => Promise<Proc> }) => Promise<void>,
  mac?: string,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "paf-dhcp-"));
  const leases = join(dir, "leases");
  try {
    await withNetns(tag, async (ns) => {
      const netif = TapNetif.open(ifname("pdh"), { netns: ns.path, up: true });
      await ns.kernelSide(netif.name, "198.18.0.1/24", "");
      let server = await dnsmasq(ns, netif.name, leases, dnsmasqArgs);
      const dump = await dhcpDump(ns, netif.name);
      const stack = Stack.create({ netif, ...(mac ? { mac } : {}), ipv4: { dhcp: { hostname: "paf-tap", ...FAST_PROBE, ...dhcp } } });
      const restart = async (args: string[]) => {
        await server.stop();
        server = await dnsmasq(ns, netif.name, leases, args);
        return server;
      };
      try {
        await fn({ ns, tap: netif.name, leases, server, dump, stack, restart });
      } finally {
        await stack.close();
        await server.stop();
        await dump.stop();
      }
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const RANGE = ["--dhcp-range=198.18.0.50,198.18.0.60,2m", "--dhcp-option=option:T1,3", "--dhcp-option=option:T2,6"];

describe.skipIf(!run)("DHCPv4 client against dnsmasq over a TAP", () => {
  it("gets a lease (address, router, DNS server) and renews it at T1 by unicast to dnsmasq", async () => {
    await withDhcp("dhcpa", RANGE, {}, async ({ ns, leases, server, dump, stack }) => {
      await stack.ready();
      const lease = stack.dhcp!.lease!;
      expect(lease).toMatchObject({ prefixLength: 24, router: "198.18.0.1", dns: ["198.18.0.1"], server: "198.18.0.1", leaseSec: 120, renewSec: 3, rebindSec: 6 });
      const addr = lease.address;
      expect(addr).toMatch(/^198\.18\.0\.(5\d|60)$/);
      expect(stack.addresses()).toEqual([addr]);
      expect(stack.dns.getServers()).toEqual(["198.18.0.1"]);
      await logged(server, new RegExp(`DHCPACK\\(\\S+\\) ${addr.replace(/\./g, "\\.")} \\S+ paf-tap`));
      expect(readFileSync(leases, "utf8")).toMatch(new RegExp(`${addr.replace(/\./g, "\\.")} paf-tap`));
      // The kernel reaches the leased address.
      expect((await ns.exec("ping", ["-c", "1", "-W", "2", addr])).stdout).toMatch(/1 received/);
      // DISCOVER and REQUEST were broadcasts from 0.0.0.0.
      await logged(dump, /IP 0\.0\.0\.0\.68 > 255\.255\.255\.255\.67: BOOTP\/DHCP, Request/);

      const [renewed] = await next(stack.dhcp!, "renewed", 10_000);
      expect(renewed.address).toBe(addr);
      expect(renewed.expiresAt).toBeGreaterThan(lease.expiresAt);
      expect(renewed.obtainedAt - lease.obtainedAt).toBeGreaterThanOrEqual(2900);
      expect(renewed.obtainedAt - lease.obtainedAt).toBeLessThan(4500);
      // The renewal went unicast from the leased address to the server (RENEWING, §4.4.5).
      await logged(dump, new RegExp(`IP ${addr.replace(/\./g, "\\.")}\\.68 > 198\\.18\\.0\\.1\\.67: BOOTP/DHCP, Request`));
      expect(stack.dhcp!.state).toBe("BOUND");
    });
  }, 60_000);

  it("a NAK to the renewal after dnsmasq restarts with another range: back to INIT, a lease from the new range", async () => {
    await withDhcp("dhcpn", RANGE, {}, async ({ stack, restart }) => {
      await stack.ready();
      const first = stack.dhcp!.lease!.address;
      const server = await restart(["--dhcp-range=198.18.0.100,198.18.0.110,2m", "--dhcp-option=option:T1,3", "--dhcp-option=option:T2,6"]);
      const [message, lost] = await next(stack.dhcp!, "nak", 10_000);
      expect(lost?.address).toBe(first);
      expect(message).toBe("address not available");
      await logged(server, new RegExp(`DHCPNAK\\(\\S+\\) ${first.replace(/\./g, "\\.")} \\S+ address not available`));
      const [lease] = await next(stack.dhcp!, "bound", 15_000);
      expect(lease.address).toMatch(/^198\.18\.0\.1(0\d|10)$/);
      expect(stack.addresses()).toEqual([lease.address]);
    });
  }, 60_000);

  it("declines an address the kernel side already holds (RFC 5227 probe answered), then takes one from the range", async () => {
    const mac = "02:00:00:00:17:01";
    const args = [...RANGE, `--dhcp-host=${mac},198.18.0.55`];
    await withDhcp(
      "dhcpd",
      args,
      { declineWaitMs: 1000 },
      async ({ ns, tap, server, stack }) => {
        await ns.ip("addr", "add", "198.18.0.55/24", "dev", tap);
        const [declined] = await next(stack.dhcp!, "declined", 15_000);
        expect(declined).toBe("198.18.0.55");
        await logged(server, /DHCPDECLINE\(\S+\) 198\.18\.0\.55 02:00:00:00:17:01/);
        const [lease] = await next(stack.dhcp!, "bound", 20_000);
        expect(lease.address).not.toBe("198.18.0.55");
        expect(lease.address).toMatch(/^198\.18\.0\.(5\d|60)$/);
        expect(stack.stats()["arp"]!["probe_conflicts"]).toBe(1);
        expect(stack.stats()["dhcp"]!["decline_sent"]).toBe(1);
      },
      mac,
    );
  }, 60_000);

  it("when dnsmasq is gone the lease runs out (2 minutes): rebinding broadcasts, then the address and its route go", async () => {
    await withDhcp("dhcpx", RANGE, {}, async ({ ns, server, dump, stack }) => {
      await stack.ready();
      await next(stack.dhcp!, "renewed", 10_000);
      await server.stop();
      const last = stack.dhcp!.lease!;
      const [expired] = await next(stack.dhcp!, "expired", 150_000);
      expect(expired.address).toBe(last.address);
      expect(performance.now() - last.expiresAt).toBeLessThan(1000);
      expect(stack.addresses()).toEqual([]);
      expect(stack.routes()).toEqual([]);
      const a = last.address.replace(/\./g, "\\.");
      // REBINDING: broadcast REQUESTs from the leased address (T2, then >= 60 s later), then DISCOVER from 0.0.0.0.
      expect(dump.out().match(new RegExp(`IP ${a}\\.68 > 255\\.255\\.255\\.255\\.67`, "g"))?.length).toBe(2);
      // DISCOVER and REQUEST at the start, a DISCOVER again now.
      await logged(dump, /(0\.0\.0\.0\.68 > 255\.255\.255\.255\.67[\s\S]*){3}/);
      expect((await ns.exec("ping", ["-c", "1", "-W", "1", last.address]).catch((e: Error) => e)) instanceof Error).toBe(true);
    });
  }, 200_000);
});

describe.skipIf(!run)("paf serve --dhcp", () => {
  beforeAll(() => ensureBuilt(), 120_000);

  it("takes its address from dnsmasq, prints it on the listening line, and serves HTTP there", async () => {
    const dir = mkdtempSync(join(tmpdir(), "paf-dhcp-"));
    try {
      await withNetns("dhcpcli", async (ns) => {
        const tap = ifname("pdc");
        await ns.ip("tuntap", "add", tap, "mode", "tap");
        await ns.kernelSide(tap, "198.18.0.1/24", "");
        const server = await dnsmasq(ns, tap, join(dir, "leases"), RANGE);
        const { child, line } = await startCli(["serve", "--tap", tap, "--tap-netns", ns.name, "--dhcp", "--http", "8080"], /^listening/, 30_000);
        try {
          const m = new RegExp(`^listening on ${tap} mac [0-9a-f:]{17} (198\\.18\\.0\\.\\d+) http 8080$`).exec(line);
          expect(m, line).not.toBeNull();
          await logged(server, new RegExp(`DHCPACK\\(${tap}\\) ${m![1]!.replace(/\./g, "\\.")}`));
          const body = await ns.exec("curl", ["-sS", "--max-time", "5", `http://${m![1]}:8080/`]);
          expect(body.stdout.length).toBeGreaterThan(0);
        } finally {
          const exited = new Promise((r) => child.once("exit", r));
          child.kill("SIGTERM");
          await exited;
          await server.stop();
        }
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
