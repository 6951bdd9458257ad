// Addresses and routes changed at run time, on the virtual switch: the longest prefix wins, then
// the lowest metric; secondary addresses answer ARP and are used as the source on their subnet;
// removing an address takes its routes along and fails the TCP connections that used it.
import { afterEach, describe, expect, it } from "vitest";
import { Stack, type StackOptions } from "../../stack/stack.js";
import { VirtualSwitch } from "../../stack/netif/vswitch.js";
import { SeededRandom } from "../../stack/core/random.js";
import { VirtualClock } from "../../stack/core/clock.js";
import { routerAdvert } from "../helpers/frames6.js";
import { runUntil } from "../helpers/virtual.js";
import { parseIPv6 } from "../../stack/wire/addr.js";
import { formatIP, formatMac } from "../../stack/wire/addr.js";
import type { TcpFlow } from "../../stack/tcp/index.js";

interface Sent {
  dstMac: string;
  src: string;
  dst: string;
}

let stacks: Stack[] = [];
afterEach(async () => {
  await Promise.all(stacks.map((s) => s.close()));
  stacks = [];
});

/** A switch recording the UDP datagrams to port 9 it carries (IPv4 and IPv6), and a stack factory. */
function lan() {
  const sent: Sent[] = [];
  const sw = new VirtualSwitch({
    onFrame: (f) => {
      const type = (f[12]! << 8) | f[13]!;
      if (type === 0x0800 && f[23] === 17 && ((f[36]! << 8) | f[37]!) === 9) sent.push({ dstMac: formatMac(f), src: formatIP(f.subarray(26, 30)), dst: formatIP(f.subarray(30, 34)) });
      if (type === 0x86dd && f[20] === 17 && ((f[56]! << 8) | f[57]!) === 9) sent.push({ dstMac: formatMac(f), src: formatIP(f.subarray(22, 38)), dst: formatIP(f.subarray(38, 54)) });
    },
  });
  let seed = 1;
  const stack = (o: Omit<StackOptions, "netif">) => {
    const s = Stack.create({ netif: sw.port(), random: new SeededRandom(seed++), ...o });
    stacks.push(s);
    return s;
  };
  return { sw, sent, stack };
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Send one datagram to `dst` port 9 and return which MAC (next hop) and source it left with. */
async function via(s: Stack, sent: Sent[], dst: string): Promise<Sent> {
  const sock = s.udp.createSocket(dst.includes(":") ? "udp6" : "udp4");
  const n = sent.length;
  await new Promise<void>((resolve, reject) => sock.send("x", 9, dst, (e: Error | null) => (e ? reject(e) : resolve())));
  await until(() => sent.length > n, `a datagram to ${dst}`);
  sock.close();
  return sent[sent.length - 1]!;
}

const mac = (s: Stack) => formatMac(s.mac);

describe("IPv4 routing table", () => {
  it("longest prefix wins, then the lowest metric; removing a route falls back to the next match", async () => {
    const { sent, stack } = lan();
    const a = stack({ ipv4: { address: "198.18.0.2/24", gateway: "198.18.0.1" } });
    const r1 = stack({ ipv4: { address: "198.18.0.1/24" } });
    const r2 = stack({ ipv4: { address: "198.18.0.3/24" } });
    const r3 = stack({ ipv4: { address: "198.18.0.4/24" } });
    a.addRoute({ to: "198.19.0.0/16", via: "198.18.0.3" });
    a.addRoute({ to: "198.19.5.0/24", via: "198.18.0.1", metric: 10 });
    a.addRoute({ to: "198.19.5.0/24", via: "198.18.0.4", metric: 5 });
    expect((await via(a, sent, "198.19.5.9")).dstMac).toBe(mac(r3)); // /24, metric 5
    expect((await via(a, sent, "198.19.1.1")).dstMac).toBe(mac(r2)); // /16
    expect((await via(a, sent, "198.20.0.1")).dstMac).toBe(mac(r1)); // default
    expect((await via(a, sent, "198.18.0.4")).dstMac).toBe(mac(r3)); // connected /24, on-link
    a.removeRoute({ to: "198.19.5.0/24", via: "198.18.0.4" });
    expect((await via(a, sent, "198.19.5.9")).dstMac).toBe(mac(r1)); // the metric-10 /24 now
    a.removeRoute({ to: "198.19.5.0/24" });
    expect((await via(a, sent, "198.19.5.9")).dstMac).toBe(mac(r2)); // the /16
    a.removeRoute({ to: "default", via: "198.18.0.1" });
    const sock = a.udp.createSocket("udp4");
    const err = await new Promise<Error | null>((r) => sock.send("x", 9, "198.20.0.1", r));
    expect(err).toMatchObject({ code: "EHOSTUNREACH" });
    sock.close();
  });

  it("lists the table longest prefix first, with origins", () => {
    const { stack } = lan();
    const a = stack({ ipv4: { address: "198.18.0.2/24", gateway: "198.18.0.1" } });
    a.addRoute({ to: "198.19.0.0/16", via: "198.18.0.3", metric: 7 });
    a.addRoute({ to: "198.20.0.0/16" }); // on-link
    expect(a.routes()).toEqual([
      { family: 4, to: "198.18.0.0/24", metric: 0, origin: "connected", src: "198.18.0.2" },
      { family: 4, to: "198.20.0.0/16", metric: 0, origin: "static" },
      { family: 4, to: "198.19.0.0/16", via: "198.18.0.3", metric: 7, origin: "static" },
      { family: 4, to: "0.0.0.0/0", via: "198.18.0.1", metric: 0, origin: "static" },
    ]);
  });

  it("refuses what `ip route` refuses, with the same codes", async () => {
    const { stack } = lan();
    const a = stack({ ipv4: { address: "198.18.0.2/24" } });
    a.addRoute({ to: "198.19.0.0/16", via: "198.18.0.3" });
    expect(() => a.addRoute({ to: "198.19.0.0/16", via: "198.18.0.3" })).toThrow(expect.objectContaining({ code: "EEXIST" }));
    expect(() => a.addRoute({ to: "198.21.0.0/16", via: "198.30.0.1" })).toThrow(expect.objectContaining({ code: "ENETUNREACH" }));
    expect(() => a.removeRoute({ to: "198.22.0.0/16" })).toThrow(expect.objectContaining({ code: "ESRCH" }));
    expect(() => a.addRoute({ to: "198.19.0.0/16", via: "2001:db8::1" })).toThrow(expect.objectContaining({ code: "ERR_INVALID_ARG_VALUE" }));
    expect(() => a.addRoute({ to: "default" })).toThrow(expect.objectContaining({ code: "ERR_INVALID_ARG_VALUE" }));
    expect(() => a.addRoute({ to: "198.19.0.0/16", via: "198.18.0.3", metric: -1 })).toThrow(expect.objectContaining({ code: "ERR_OUT_OF_RANGE" }));
    expect(() => a.addRoute({ to: "2001:db8:1::/48" })).toThrow(expect.objectContaining({ code: "EAFNOSUPPORT" }));
    expect(() => a.removeAddress("198.18.0.9")).toThrow(expect.objectContaining({ code: "EADDRNOTAVAIL" }));
    await expect(a.addAddress("198.18.0.2/24")).rejects.toMatchObject({ code: "EEXIST" });
  });

  it("a secondary address answers ARP and ping, is the source on its subnet, and takes its routes and connections when removed", async () => {
    const { sent, stack } = lan();
    const a = stack({ ipv4: { address: "198.18.0.2/24" } });
    const b = stack({ ipv4: { address: "198.18.1.7/24" } });
    await a.addAddress("198.18.1.2/24");
    expect(a.addresses()).toEqual(["198.18.0.2", "198.18.1.2"]);
    expect((await b.ping("198.18.1.2", { timeoutMs: 2000 })).from).toBe("198.18.1.2");
    expect(await via(a, sent, "198.18.1.7")).toEqual({ dstMac: mac(b), src: "198.18.1.2", dst: "198.18.1.7" });
    a.addRoute({ to: "198.19.0.0/16", via: "198.18.1.7" });

    // A TCP connection to the secondary address, open when the address goes.
    let accepted: TcpFlow | undefined;
    const server = a.tcp.listen({ port: 80 }, (f) => (accepted = f));
    const client = await b.tcp.connect({ host: "198.18.1.2", port: 80, timeout: 2000 });
    await until(() => accepted !== undefined, "accept");
    const aborted = new Promise<Error>((r) => accepted!.once("error", r));
    client.on("error", () => {});

    a.removeAddress("198.18.1.2");
    expect(await aborted).toMatchObject({ code: "ECONNABORTED" });
    expect(a.addresses()).toEqual(["198.18.0.2"]);
    expect(a.routes().map((r) => r.to)).toEqual(["198.18.0.0/24"]); // connected /24 and the route via .7 gone
    await expect(b.ping("198.18.1.2", { timeoutMs: 500 })).rejects.toThrow();
    server.close();
    client.destroy();
  });
});

describe("IPv6 static routes", () => {
  it("the longest match among on-link prefixes and static routes wins; a static default beats nothing", async () => {
    const { sent, stack } = lan();
    const v6 = (addr: string) => ({ ipv6: { address: addr, dad: false } });
    const a = stack({ ipv6: { address: "2001:db8::2/64", dad: false, gateway: "2001:db8::1" } });
    const r1 = stack(v6("2001:db8::1/64"));
    const r2 = stack(v6("2001:db8::3/64"));
    const r3 = stack(v6("2001:db8::4/64"));
    await Promise.all([a, r1, r2, r3].map((s) => s.ready()));
    a.addRoute({ to: "2001:db8:1::/48", via: "2001:db8::3" });
    a.addRoute({ to: "2001:db8::99/128", via: "2001:db8::4" }); // inside the on-link /64, but longer
    expect((await via(a, sent, "2001:db8:1::9")).dstMac).toBe(mac(r2));
    expect((await via(a, sent, "2001:db8:2::9")).dstMac).toBe(mac(r1)); // the static default
    expect((await via(a, sent, "2001:db8::99")).dstMac).toBe(mac(r3));
    expect((await via(a, sent, "2001:db8::4")).dstMac).toBe(mac(r3)); // on-link
    expect(a.routes().filter((r) => r.family === 6)).toEqual([
      { family: 6, to: "2001:db8::99/128", via: "2001:db8::4", metric: 0, origin: "static" },
      { family: 6, to: "2001:db8::/64", metric: 0, origin: "connected" },
      { family: 6, to: "2001:db8:1::/48", via: "2001:db8::3", metric: 0, origin: "static" },
      { family: 6, to: "::/0", via: "2001:db8::1", metric: 0, origin: "static" },
    ]);
    a.removeRoute({ to: "2001:db8:1::/48" });
    expect((await via(a, sent, "2001:db8:1::9")).dstMac).toBe(mac(r1));
  });

  it("adds and removes an IPv6 address at run time (after DAD), its on-link prefix with it", async () => {
    const { stack } = lan();
    const a = stack({ ipv6: { dad: false } });
    const b = stack({ ipv6: { address: "2001:db8:5::7/64", dad: false } });
    await Promise.all([a.ready(), b.ready()]);
    await a.addAddress("2001:db8:5::2/64");
    expect(a.addresses()).toContain("2001:db8:5::2");
    expect((await b.ping("2001:db8:5::2", { timeoutMs: 2000 })).from).toBe("2001:db8:5::2");
    a.removeAddress("2001:db8:5::2");
    expect(a.addresses()).not.toContain("2001:db8:5::2");
    expect(a.routes().some((r) => r.to === "2001:db8:5::/64")).toBe(false);
  });
});

describe("addresses that run out", () => {
  it("a SLAAC address whose valid lifetime ends fails the TCP connections that use it", async () => {
    const clock = new VirtualClock();
    const sw = new VirtualSwitch();
    const a = Stack.create({ netif: sw.port(), clock, random: new SeededRandom(5), ipv6: { slaac: true } });
    const b = Stack.create({ netif: sw.port(), clock, random: new SeededRandom(6), ipv6: { address: "2001:db8:7::9/64" } });
    stacks.push(a, b);
    const until = (cond: () => boolean, what: string) => runUntil(sw, clock, cond, what, 120_000, 200);
    await until(() => a.ipv6!.linkLocal() !== undefined && b.ipv6!.isLocal(parseIPv6("2001:db8:7::9")), "DAD");
    // A router's advertisement (injected from a port of the switch): prefix 2001:db8:7::/64, valid 30 s.
    const router = sw.port();
    router.start({ frame: () => {} });
    router.send(routerAdvert(parseIPv6("2001:db8:7::"), 30, 20));
    const slaac = () => a.ipv6!.addresses.find((x) => x.origin === "slaac" && x.state === "preferred");
    await until(() => slaac() !== undefined, "a SLAAC address");
    const addr = formatIP(slaac()!.address);
    let accepted: TcpFlow | undefined;
    a.tcp.listen({ port: 80 }, (f) => (accepted = f));
    let client: TcpFlow | undefined;
    b.tcp.connect({ host: addr, port: 80 }).then((f) => (client = f));
    await until(() => accepted !== undefined && client !== undefined, "a connection to the SLAAC address");
    let err: (Error & { code?: string }) | undefined;
    accepted!.on("error", (e) => (err = e));
    client!.on("error", () => {});
    await until(() => err !== undefined, "the address to expire");
    expect(err!.code).toBe("ECONNABORTED");
    expect(a.addresses()).not.toContain(addr);
  });
});
