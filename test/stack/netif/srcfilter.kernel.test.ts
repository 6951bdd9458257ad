// The per-source rate limit a TAP enforces in the kernel (an eBPF filter, stack/netif/tap/srcfilter.c):
// a stack with limits.tenant.sourcePacketsPerSec hands it to its TAP; a UDP flood from one
// address is cut to that rate before the process reads a frame, while another address (and
// another protocol of the same address) still gets through; the drops are counted; and the TAP
// filters no more once the stack is closed.
import { describe, expect, it } from "vitest";
import { privileged, useNetns, ifname } from "../../helpers/netns.js";
import { udpbench } from "../../helpers/udpbench.js";
import { TapNetif } from "../../../stack/netif/tap.js";
import { Stack } from "../../../stack/stack.js";

const run = privileged();

describe.skipIf(!run)("the kernel's per-source limit on a TAP", () => {
  const ctx = useNetns("srcf");

  it("a flood from one source is cut to its rate in the kernel; another source, and ICMP from the same one, still pass", async () => {
    const tap = ifname("sfa");
    await ctx.ns.ip("tuntap", "add", tap, "mode", "tap");
    await ctx.ns.kernelSide(tap, "198.18.0.1/24", "");
    await ctx.ns.ip("addr", "add", "198.18.0.3/24", "dev", tap);
    const netif = TapNetif.open(tap, { netns: ctx.ns.path, up: true });
    const stack = Stack.create({ netif, ipv4: { address: "198.18.0.2/24" }, limits: { tenant: { sourcePacketsPerSec: 1000, burstMs: 100 } } });
    try {
      expect(stack.stats().tenant!["source_limit_in_kernel"]).toBe(1);
      await ctx.ns.exec("ping", ["-c", "1", "-W", "2", "198.18.0.2"]); // neighbours resolved both ways
      const rx0 = netif.stats().rxFrames;
      const t0 = Date.now();
      const [sent, pings, pingsSameSource] = await Promise.all([
        ctx.ns.exec(udpbench(), ["flood", "198.18.0.2", "9", "64", "2", "50000"], 30_000).then((r) => JSON.parse(r.stdout) as { sent: number }),
        ctx.ns.exec("ping", ["-c", "20", "-i", "0.05", "-W", "2", "-I", "198.18.0.3", "198.18.0.2"], 30_000),
        ctx.ns.exec("ping", ["-c", "20", "-i", "0.05", "-W", "2", "-I", "198.18.0.1", "198.18.0.2"], 30_000),
      ]);
      const seconds = (Date.now() - t0) / 1000;
      // What reached the stack: the flood's share, the 40 echo requests, a few ARP/NDP frames.
      const flood = netif.stats().rxFrames - rx0 - 40;
      expect(sent.sent).toBeGreaterThan(80_000);
      // At most the burst and 1000/s for as long as it ran (and a little for racing CPUs).
      expect(flood).toBeLessThanOrEqual(100 + 1000 * seconds * 1.1 + 20);
      expect(flood).toBeGreaterThan(500);
      expect(pings.stdout).toMatch(/20 received/);
      expect(pingsSameSource.stdout).toMatch(/20 received/);
      const t = stack.stats().tenant!;
      // What the kernel dropped is counted; the TAP's own queue may have dropped some more.
      expect(t["drop_source_rate"]).toBeGreaterThan(sent.sent - flood - 5_000);
      expect(t["drop_source_rate"]).toBeLessThanOrEqual(sent.sent - flood + 20);
      expect(t["drops_by_limit"]).toBeGreaterThanOrEqual(t["drop_source_rate"]!);
    } finally {
      await stack.close();
    }
    // The persistent TAP outlives the stack: it must not keep filtering for its next user.
    const again = TapNetif.open(tap, { netns: ctx.ns.path, up: true });
    again.start({ frame: () => {} });
    // Nobody answers ARP now: a permanent entry keeps the kernel sending.
    await ctx.ns.ip("neigh", "replace", "198.18.0.2", "lladdr", "02:00:00:00:00:02", "dev", tap, "nud", "permanent");
    try {
      await ctx.ns.exec(udpbench(), ["flood", "198.18.0.2", "9", "64", "1", "20000"], 30_000);
      await new Promise((r) => setTimeout(r, 100));
      expect(again.stats().rxFrames).toBeGreaterThan(5_000);
    } finally {
      await again.close();
    }
  });

  it("limitSources checks its arguments, and a closed TAP refuses", async () => {
    const netif = TapNetif.open(ifname("sfb"), { netns: ctx.ns.path, up: true });
    expect(() => netif.limitSources(0, 10, 10)).toThrow(expect.objectContaining({ code: "EINVAL", message: expect.stringContaining("perSec") }));
    expect(() => netif.limitSources(100, 2e7, 10)).toThrow(/burst/);
    netif.limitSources(100, 10, 10);
    netif.limitSources(200, 10, 10); // replaces the first
    expect(netif.sourceLimitDrops()).toBe(0);
    await netif.close();
    expect(() => netif.limitSources(100, 10, 10)).toThrow(expect.objectContaining({ code: "EBADF" }));
  });
});
