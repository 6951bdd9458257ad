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

  it("IPv6 sources are told apart by their whole address: a UDP flood from one is cut, UDP from another gets through", async () => {
    const tap = ifname("sfc");
    await ctx.ns.ip("tuntap", "add", tap, "mode", "tap");
    await ctx.ns.kernelSide(tap, "", "2001:db8::1/64");
    // Deprecated (preferred_lft 0), so the kernel sends the flood from ::1 (RFC 6724 rule 3);
    // the calm sender binds ::3 itself.
    await ctx.ns.ip("-6", "addr", "add", "2001:db8::3/64", "dev", tap, "nodad", "preferred_lft", "0");
    const netif = TapNetif.open(tap, { netns: ctx.ns.path, up: true });
    const stack = Stack.create({ netif, ipv6: { address: "2001:db8::2/64" }, limits: { tenant: { sourcePacketsPerSec: 1000, burstMs: 100 } } });
    try {
      expect(stack.stats().tenant!["source_limit_in_kernel"]).toBe(1);
      await ctx.ns.exec("ping", ["-6", "-c", "1", "-W", "3", "2001:db8::2"], 30_000); // neighbours resolved
      // The other source sends UDP too (the same protocol: only the address tells them apart),
      // 40 datagrams at 50/s to a socket that counts them.
      let calm = 0;
      stack.udp.createSocket("udp6", () => calm++).bind(10);
      const sender = `import socket, time\ns = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\ns.bind(("2001:db8::3", 0))\nfor i in range(40):\n    s.sendto(b"calm", ("2001:db8::2", 10))\n    time.sleep(0.02)\n`;
      const rx0 = netif.stats().rxFrames;
      const t0 = Date.now();
      const [sent] = await Promise.all([
        ctx.ns.exec(udpbench(), ["flood", "2001:db8::2", "9", "64", "2", "50000"], 30_000).then((r) => JSON.parse(r.stdout) as { sent: number }),
        ctx.ns.exec("/usr/bin/python3", ["-c", sender], 30_000),
      ]);
      const seconds = (Date.now() - t0) / 1000;
      // The flood's share, the 40 calm datagrams, a few NDP frames.
      const flood = netif.stats().rxFrames - rx0 - 40;
      expect(sent.sent).toBeGreaterThan(80_000);
      expect(flood).toBeLessThanOrEqual(100 + 1000 * seconds * 1.1 + 20);
      expect(flood).toBeGreaterThan(500);
      expect(calm).toBe(40);
      expect(stack.stats().tenant!["drop_source_rate"]).toBeGreaterThan(sent.sent - flood - 5_000);
    } finally {
      await stack.close();
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
