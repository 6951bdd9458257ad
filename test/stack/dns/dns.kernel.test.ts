// The DNS stub resolver against a real resolver: dnsmasq on the kernel side of a TAP, inside a
// namespace this file creates, serving fixed A/AAAA/CNAME records. A and AAAA over IPv4 and IPv6
// transport, NXDOMAIN, and a name with 100 A records that dnsmasq truncates over UDP, so the
// answer comes over TCP (RFC 7766). Needs root and /dev/net/tun (CI has both).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChildProcess } from "node:child_process";
import { dnsServer, ifname, requirePrivileged, useNetns } from "../../helpers/netns.js";
import { TapNetif } from "../../../stack/netif/tap.js";
import { Stack } from "../../../stack/stack.js";
import { DnsResolver } from "../../../stack/dns.js";

const run = requirePrivileged();
const BIG = 100;

describe.skipIf(!run)("DNS over TAP with dnsmasq as the server", () => {
  const ctx = useNetns("dns");
  let stack: Stack;
  let dnsmasq: ChildProcess | undefined;
  let log = "";

  beforeAll(async () => {
    const tap = TapNetif.open(ifname("pd"), { netns: ctx.ns.path, up: true });
    stack = Stack.create({
      netif: tap,
      ipv4: { address: "198.18.0.2/24" },
      ipv6: { address: "2001:db8::2/64", dad: false },
      dns: { servers: ["198.18.0.1"], timeoutMs: 2000, attempts: 2 },
    });
    await ctx.ns.kernelSide(tap.name);
    await stack.ready();
    const big = Array.from({ length: BIG }, (_, i) => `--host-record=big.test,198.18.2.${i + 1},120`);
    dnsmasq = await dnsServer(
      ctx.ns,
      ["198.18.0.1", "2001:db8::1"],
      ["--host-record=host.test,198.18.1.1,2001:db8::1:1,300", "--host-record=v4only.test,198.18.1.2,60", "--cname=www.test,host.test", ...big],
      {
        logQueries: true,
      },
    );
    dnsmasq.stdout?.on("data", (d: Buffer) => (log += d.toString()));
    dnsmasq.stderr?.on("data", (d: Buffer) => (log += d.toString()));
  });

  afterAll(async () => {
    // Killed here, and by the namespace's destroy() whatever happened before.
    if (dnsmasq && dnsmasq.exitCode === null && dnsmasq.signalCode === null) {
      const gone = new Promise((r) => dnsmasq!.once("exit", r));
      dnsmasq.kill("SIGTERM");
      await Promise.race([gone, new Promise((r) => setTimeout(r, 2000))]);
    }
    await stack?.close();
  });

  it("resolves A and AAAA records (resolve4 / resolve6 with TTLs, lookup with all)", async () => {
    expect(await stack.dns.resolve4("host.test")).toEqual([{ address: "198.18.1.1", ttl: 300 }]);
    expect(await stack.dns.resolve6("host.test")).toEqual([{ address: "2001:db8::1:1", ttl: 300 }]);
    expect(await stack.dns.lookup("host.test", { all: true })).toEqual([
      { address: "198.18.1.1", family: 4 },
      { address: "2001:db8::1:1", family: 6 },
    ]);
    expect(await stack.dns.lookup("v4only.test")).toEqual({ address: "198.18.1.2", family: 4 });
    expect(log).toMatch(/query\[A\] host\.test from 198\.18\.0\.2/);
    expect(log).toMatch(/query\[AAAA\] host\.test from 198\.18\.0\.2/);
  });

  it("follows dnsmasq's CNAME to the address", async () => {
    const r = await stack.dns.lookup("www.test", { family: 4 });
    expect(r).toEqual({ address: "198.18.1.1", family: 4 });
  });

  it("NXDOMAIN is ENOTFOUND naming the name", async () => {
    const e = (await stack.dns.lookup("nope.test").catch((x: unknown) => x)) as Error & { code: string; hostname: string };
    expect(e.code).toBe("ENOTFOUND");
    expect(e.hostname).toBe("nope.test");
    const n = (await stack.dns.resolve6("v4only.test").catch((x: unknown) => x)) as Error & { code: string };
    expect(n.code).toBe("ENODATA");
  });

  it(`a ${BIG}-record answer is truncated over UDP and fetched over TCP`, async () => {
    const before = stack.stats()["dns"]!;
    const got = await stack.dns.resolve4("big.test");
    expect(got).toHaveLength(BIG);
    expect(new Set(got.map((r) => r.address))).toEqual(new Set(Array.from({ length: BIG }, (_, i) => `198.18.2.${i + 1}`)));
    const after = stack.stats()["dns"]!;
    expect((after["truncated"] ?? 0) - (before["truncated"] ?? 0)).toBe(1);
    expect((after["tcp_queries"] ?? 0) - (before["tcp_queries"] ?? 0)).toBe(1);
    // Without EDNS (512-byte UDP answers) the same happens for a smaller name.
    const plain = new DnsResolver(stack, { servers: ["198.18.0.1"], ednsUdpSize: 0, cacheSize: 0 });
    expect(await plain.resolve4("big.test")).toHaveLength(BIG);
    expect(plain.counters.get("truncated")).toBe(1);
    plain.close();
  });

  it("asks dnsmasq over IPv6 transport", async () => {
    const v6 = new DnsResolver(stack, { servers: ["2001:db8::1"] });
    expect(await v6.resolve6("host.test")).toEqual([{ address: "2001:db8::1:1", ttl: 300 }]);
    expect(await v6.resolve4("host.test")).toEqual([{ address: "198.18.1.1", ttl: 300 }]);
    expect(log).toMatch(/query\[AAAA\] host\.test from 2001:db8::2/);
    v6.close();
  });

  it("counted no drops, and served repeats from the cache", async () => {
    const q = stack.stats()["dns"]!["udp_queries"];
    await stack.dns.resolve4("host.test");
    const s = stack.stats()["dns"]!;
    expect(s["udp_queries"]).toBe(q);
    expect(s["cache_hits"]).toBeGreaterThanOrEqual(1);
    expect(s["dropped"] ?? 0).toBe(0);
  });
});
