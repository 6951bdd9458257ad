// Routes and addresses changed at run time, with the Linux kernel as the router: the TAP's
// kernel side (namespace A, 198.18.0.1 / 2001:db8::1) forwards to a second subnet behind a veth
// (namespace B, 198.19.0.2 / 2001:db8:1::2). Without a route B is unreachable; a route via A
// reaches it (ping both ways, TCP to a listener in B); removing the route cuts it again. A
// secondary address answers the kernel and stops answering once removed. Needs root.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Netns, ifname, requirePrivileged, waitForOutput } from "../helpers/netns.js";
import { TapNetif } from "../../stack/netif/tap.js";
import { Stack } from "../../stack/stack.js";

const run = requirePrivileged();

const fails = (p: Promise<unknown>) =>
  p.then(
    () => false,
    () => true,
  );

describe.skipIf(!run)("routes via a kernel router", () => {
  let a: Netns;
  let b: Netns;
  let stack: Stack;

  beforeAll(async () => {
    a = await Netns.create("rta");
    b = await Netns.create("rtb");
    const netif = TapNetif.open(ifname("prt"), { netns: a.path, up: true });
    await a.kernelSide(netif.name);
    const va = ifname("vra");
    const vb = ifname("vrb");
    await a.ip("link", "add", va, "type", "veth", "peer", "name", vb, "netns", b.name);
    await a.kernelSide(va, "198.19.0.1/24", "2001:db8:1::1/64");
    await b.kernelSide(vb, "198.19.0.2/24", "2001:db8:1::2/64");
    await b.ip("route", "add", "default", "via", "198.19.0.1");
    await b.ip("-6", "route", "add", "default", "via", "2001:db8:1::1");
    a.execSync("sysctl", ["-qw", "net.ipv4.ip_forward=1"]);
    a.execSync("sysctl", ["-qw", "net.ipv6.conf.all.forwarding=1"]);
    // A new veth drops what it is given until the kernel's link watch activates it (up to a
    // second): wait until A reaches B over it, both families.
    await a.exec("ping", ["-c", "1", "-w", "5", "198.19.0.2"]);
    await a.exec("ping", ["-6", "-c", "1", "-w", "5", "2001:db8:1::2"]);
    stack = Stack.create({ netif, ipv4: { address: "198.18.0.2/24" }, ipv6: { address: "2001:db8::2/64", dad: false } });
    await stack.ready();
  });

  afterAll(async () => {
    await stack?.close();
    await b?.destroy();
    await a?.destroy();
  });

  it("a second subnet is reachable only through the route added to it, both families", async () => {
    expect(await fails(stack.ping("198.19.0.2", { timeoutMs: 500 }))).toBe(true);
    expect(await fails(stack.ping("2001:db8:1::2", { timeoutMs: 500 }))).toBe(true);
    stack.addRoute({ to: "198.19.0.0/24", via: "198.18.0.1" });
    stack.addRoute({ to: "2001:db8:1::/64", via: "2001:db8::1" });
    expect((await stack.ping("198.19.0.2", { timeoutMs: 2000 })).ttl).toBe(63); // one router on the way
    expect((await stack.ping("2001:db8:1::2", { timeoutMs: 2000 })).ttl).toBe(63);
    // And from B: the kernel routes to us, our answers go back through the route.
    expect((await b.exec("ping", ["-c", "1", "-W", "2", "198.18.0.2"])).stdout).toMatch(/1 received/);
    expect((await b.exec("ping", ["-6", "-c", "1", "-W", "2", "2001:db8::2"])).stdout).toMatch(/1 received/);
    // TCP over the route, to a kernel listener in B.
    const srv = b.spawn("socat", ["-u", "TCP-LISTEN:7070,reuseaddr", "STDOUT"], { timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 300));
    const got = waitForOutput(srv, /over-the-route/);
    const flow = await stack.tcp.connect({ host: "198.19.0.2", port: 7070, timeout: 3000 });
    flow.end("over-the-route\n");
    await got;
    expect(
      stack
        .routes()
        .filter((r) => r.origin === "static")
        .map((r) => `${r.to} via ${r.via}`),
    ).toEqual(["198.19.0.0/24 via 198.18.0.1", "2001:db8:1::/64 via 2001:db8::1"]);
    stack.removeRoute({ to: "198.19.0.0/24" });
    stack.removeRoute({ to: "2001:db8:1::/64" });
    expect(await fails(stack.ping("198.19.0.2", { timeoutMs: 500 }))).toBe(true);
    expect(await fails(stack.ping("2001:db8:1::2", { timeoutMs: 500 }))).toBe(true);
  }, 30_000);

  it("a secondary address answers the kernel (ARP, ping) until it is removed", async () => {
    await stack.addAddress("198.18.0.3/24");
    expect((await a.exec("ping", ["-c", "1", "-W", "2", "198.18.0.3"])).stdout).toMatch(/1 received/);
    expect((await a.exec("ip", ["neigh", "show", "198.18.0.3"])).stdout).toMatch(/lladdr/);
    stack.removeAddress("198.18.0.3");
    await a.ip("neigh", "flush", "198.18.0.3");
    expect(await fails(a.exec("ping", ["-c", "1", "-W", "1", "198.18.0.3"]))).toBe(true);
    expect((await a.exec("ping", ["-c", "1", "-W", "2", "198.18.0.2"])).stdout).toMatch(/1 received/);
  }, 30_000);
});
