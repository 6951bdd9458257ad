// IPv6, NDP, SLAAC/DAD and ICMPv6 behaviour, on the virtual clock, frame by frame.
import { describe, expect, it } from "vitest";
import { Stack } from "../../stack/stack.js";
import { VirtualClock } from "../../stack/core/clock.js";
import { SeededRandom } from "../../stack/core/random.js";
import { VirtualSwitch } from "../../stack/netif/vswitch.js";
import { CaptureNetif } from "../helpers/capture.js";
import { PEER6, PEER6_LL, PEER6_MAC, STACK6, decode6, fragments6, icmp6Frame, ipv6Frame, routerAdvert } from "../helpers/frames6.js";
import { STACK_MAC } from "../helpers/frames.js";
import { emitLladdrOption } from "../../stack/wire/ndp.js";
import { emitUdp } from "../../stack/wire/udp.js";
import { formatIPv6, ipv6MulticastMac, linkLocalFromMac, parseIPv6, solicitedNode } from "../../stack/wire/addr.js";

const tick = () => new Promise<void>((r) => setImmediate(r));

/** A stack on a capture netif with 2001:db8::2/64, DAD finished, peer 2001:db8::1 resolved. */
async function setup(extra: Partial<Parameters<typeof Stack.create>[0]> = {}) {
  const netif = new CaptureNetif();
  const clock = new VirtualClock();
  const stack = Stack.create({ netif, mac: STACK_MAC, ipv6: { address: "2001:db8::2/64" }, clock, random: new SeededRandom(3), ...extra });
  clock.advance(1000); // DAD: one NS, then RetransTimer
  await stack.ready();
  netif.take();
  return { netif, clock, stack };
}

/**
 * Make the stack learn the peer. With an entry pending (INCOMPLETE) a solicited NA resolves it;
 * otherwise the peer solicits us first (§7.2.3: its source link-layer option creates a STALE
 * entry), and the stack's answer is discarded.
 */
function resolvePeer(netif: CaptureNetif, target = PEER6) {
  const body = new Uint8Array(16 + 8);
  body.set(target, 0);
  emitLladdrOption(body, 16, 2, PEER6_MAC);
  netif.inject(icmp6Frame(136, 0, (0x60 << 24) >>> 0, body, { src: target, hopLimit: 255, dstMac: STACK_MAC }));
  const ns = new Uint8Array(24);
  ns.set(STACK6, 0);
  emitLladdrOption(ns, 16, 1, PEER6_MAC);
  netif.inject(icmp6Frame(135, 0, 0, ns, { src: target, hopLimit: 255, dstMac: STACK_MAC }));
  const sent = netif.take();
  netif.sent.push(...sent.filter((f) => decode6(f).icmp?.type !== 136));
}

describe("RFC 4862 DAD and addresses", () => {
  it("sends a DAD NS from :: to the solicited-node group, then the address becomes usable", async () => {
    const netif = new CaptureNetif();
    const clock = new VirtualClock();
    const stack = Stack.create({ netif, mac: STACK_MAC, ipv6: { address: "2001:db8::2/64" }, clock, random: new SeededRandom(3) });
    clock.advance(0);
    const ns = netif
      .take()
      .map(decode6)
      .filter((d) => d.icmp?.type === 135);
    const targets = ns.map((d) => formatIPv6(d.icmp!.body.subarray(0, 16)));
    expect(targets.sort()).toEqual(["2001:db8::2", formatIPv6(linkLocalFromMac(STACK_MAC))].sort());
    for (const d of ns) {
      expect(formatIPv6(d.ip.src)).toBe("::");
      expect(d.ip.hopLimit).toBe(255);
      expect(formatIPv6(d.ip.dst)).toBe(formatIPv6(solicitedNode(d.icmp!.body.subarray(0, 16))));
    }
    expect(stack.ipv6!.isLocal(STACK6)).toBe(false); // still tentative
    clock.advance(1000);
    await stack.ready();
    expect(stack.ipv6!.isLocal(STACK6)).toBe(true);
  });

  it("detects a duplicate when another node defends the address; ready() names it", async () => {
    const netif = new CaptureNetif();
    const clock = new VirtualClock();
    const stack = Stack.create({ netif, mac: STACK_MAC, ipv6: { address: "2001:db8::2/64" }, clock, random: new SeededRandom(3) });
    clock.advance(0);
    // Another node answers for 2001:db8::2 (unsolicited NA to all-nodes).
    const body = new Uint8Array(24);
    body.set(STACK6, 0);
    emitLladdrOption(body, 16, 2, PEER6_MAC);
    const allNodes = parseIPv6("ff02::1");
    netif.inject(icmp6Frame(136, 0, (0x20 << 24) >>> 0, body, { src: STACK6, dst: allNodes, hopLimit: 255, dstMac: ipv6MulticastMac(allNodes) }));
    await expect(stack.ready()).rejects.toThrow(/2001:db8::2 is already in use/);
    expect(stack.ipv6!.isLocal(STACK6)).toBe(false);
  });

  it("two stacks given the same address on one switch: the second detects the duplicate", async () => {
    const sw = new VirtualSwitch();
    const a = Stack.create({ netif: sw.port(), ipv6: { address: "2001:db8::5/64" } });
    await a.ready();
    const b = Stack.create({ netif: sw.port(), ipv6: { address: "2001:db8::5/64" } });
    await expect(b.ready()).rejects.toMatchObject({ code: "EADDRINUSE" });
    await a.close();
    await b.close();
  });
});

describe("RFC 4861 neighbour discovery", () => {
  it("answers an NS for our address with a solicited NA carrying our MAC", async () => {
    const { netif } = await setup();
    const body = new Uint8Array(24);
    body.set(STACK6, 0);
    emitLladdrOption(body, 16, 1, PEER6_MAC);
    const sn = solicitedNode(STACK6);
    netif.inject(icmp6Frame(135, 0, 0, body, { dst: sn, hopLimit: 255, dstMac: ipv6MulticastMac(sn) }));
    const [na] = netif.take().map(decode6);
    expect(na!.icmp!.type).toBe(136);
    expect(na!.icmp!.rest >>> 24).toBe(0x60); // solicited + override
    expect(na!.dstMac).toEqual(PEER6_MAC);
    expect(na!.icmp!.body.subarray(18, 24)).toEqual(STACK_MAC);
  });

  it("drops NDP messages whose hop limit is not 255 (§7.1.1)", async () => {
    const { netif, stack } = await setup();
    const body = new Uint8Array(24);
    body.set(STACK6, 0);
    netif.inject(icmp6Frame(135, 0, 0, body, { hopLimit: 64, dstMac: STACK_MAC }));
    expect(netif.take()).toHaveLength(0);
    expect(stack.stats().ndp!["drop_hop_limit_not_255"]).toBe(1);
  });

  it("walks INCOMPLETE -> REACHABLE -> STALE -> DELAY -> PROBE -> gone (§7.3.2)", async () => {
    const { netif, clock, stack } = await setup({ limits: { ndp: { baseReachableTimeMs: 10_000 } } });
    const s = stack.udp.createSocket("udp6");
    s.on("error", () => {});
    s.send("x", 9, "2001:db8::1");
    await tick();
    expect(stack.ndp!.neighbour(PEER6)!.state).toBe("INCOMPLETE");
    const [ns] = netif.take().map(decode6);
    expect(ns!.icmp!.type).toBe(135);
    resolvePeer(netif);
    expect(stack.ndp!.neighbour(PEER6)!.state).toBe("REACHABLE");
    expect(
      netif
        .take()
        .map(decode6)
        .some((d) => d.ip.nextHeader === 17),
    ).toBe(true); // the queued datagram
    clock.advance(16_000); // beyond 1.5 x BaseReachableTime
    s.send("y", 9, "2001:db8::1");
    await tick();
    expect(stack.ndp!.neighbour(PEER6)!.state).toBe("DELAY");
    netif.take();
    clock.advance(5000);
    expect(stack.ndp!.neighbour(PEER6)!.state).toBe("PROBE");
    const probe = netif.take().map(decode6)[0]!;
    expect(formatIPv6(probe.ip.dst)).toBe("2001:db8::1"); // unicast probe
    expect(probe.dstMac).toEqual(PEER6_MAC);
    clock.advance(3000);
    expect(stack.ndp!.neighbour(PEER6)).toBeUndefined();
    expect(stack.stats().ndp!["unreachable"]).toBe(1);
  });

  it("bounds the neighbour cache", async () => {
    const { stack } = await setup({ limits: { ndp: { cacheSize: 4 } } });
    const s = stack.udp.createSocket("udp6");
    s.on("error", () => {});
    for (let i = 10; i < 30; i++) s.send("x", 9, `2001:db8::${i.toString(16)}`);
    await tick();
    expect(stack.ndp!.neighbours().length).toBeLessThanOrEqual(4);
    expect(stack.stats().ndp!["drop_cache_full"]).toBeGreaterThan(0);
  });
});

describe("RFC 4862 SLAAC from router advertisements", () => {
  it("forms prefix+EUI-64, uses the router as default gateway, and drops the address when its lifetime ends", async () => {
    const netif = new CaptureNetif();
    const clock = new VirtualClock();
    const stack = Stack.create({ netif, mac: STACK_MAC, ipv6: { slaac: true }, clock, random: new SeededRandom(3) });
    clock.advance(1000);
    await stack.ready();
    const rs = netif
      .take()
      .map(decode6)
      .filter((d) => d.icmp?.type === 133);
    expect(rs.length).toBe(1);
    netif.inject(routerAdvert(parseIPv6("2001:db8:1::"), 30, 20));
    clock.advance(1000); // DAD of the new address
    const expected = "2001:db8:1::ff:fe00:2"; // 02:00:00:00:00:02 -> 0000:00ff:fe00:0002
    expect(stack.addresses()).toContain(expected);
    // Off-link destination goes to the router's MAC.
    netif.take();
    stack.udp.createSocket("udp6").send("x", 53, "2001:db8:99::1");
    await tick();
    const [out] = netif.take().map(decode6);
    expect(out!.dstMac).toEqual(PEER6_MAC);
    expect(formatIPv6(out!.ip.src)).toBe(expected);
    clock.advance(20_000);
    expect(stack.ipv6!.findAddress(parseIPv6(expected))!.state).toBe("deprecated");
    clock.advance(10_000);
    expect(stack.addresses()).not.toContain(expected);
  });

  it("ignores RAs from non-link-local sources and with bad options", async () => {
    const { netif, stack } = await setup({ ipv6: { address: "2001:db8::2/64", slaac: true } });
    const ra = routerAdvert(parseIPv6("2001:db8:2::"), 100, 50);
    ra.set(PEER6, 14 + 8); // source = global address
    netif.inject(ra);
    expect(stack.stats().ndp!["drop_ra_not_link_local"] ?? stack.stats().icmpv6!["drop_bad_checksum"]).toBe(1);
  });
});

describe("RFC 4443 ICMPv6 and RFC 8200 processing", () => {
  it("answers echo to ff02::1 from its link-local address", async () => {
    const { netif } = await setup();
    const all = parseIPv6("ff02::1");
    netif.inject(icmp6Frame(128, 0, 0x00010001, new Uint8Array(8), { src: PEER6_LL, dst: all, dstMac: ipv6MulticastMac(all) }));
    // The reply needs the peer's MAC first: answer the stack's NS.
    const ns = netif.take().map(decode6);
    expect(ns[0]!.icmp!.type).toBe(135);
    resolvePeer(netif, PEER6_LL);
    const [rep] = netif.take().map(decode6);
    expect(rep!.icmp!.type).toBe(129);
    expect(formatIPv6(rep!.ip.src)).toBe(formatIPv6(linkLocalFromMac(STACK_MAC)));
  });

  it("reassembles a fragmented echo request (out of order) and fragments the reply", async () => {
    const { netif } = await setup();
    resolvePeer(netif);
    const data = new Uint8Array(4000).map((_, i) => i & 0xff);
    const msg = new Uint8Array(8 + 4000);
    msg.set(data, 8);
    const { emitIcmp } = await import("../../stack/wire/icmp.js");
    emitIcmp(msg, 0, msg.length, 128, 0, 0x00070001, PEER6, STACK6);
    const frags = fragments6(58, msg, 1448, 99, STACK_MAC);
    for (const f of [frags[1]!, frags[2]!, frags[0]!]) netif.inject(f);
    const out = netif.take().map(decode6);
    expect(out.length).toBe(3);
    expect(out.every((o) => o.ip.nextHeader === 44 && o.ip.payloadLen + 40 <= 1500)).toBe(true);
  });

  it("200 spoofed first fragments that never complete do not lock out a real fragmented echo: the oldest are evicted", async () => {
    const { netif, stack } = await setup({ limits: { ipv6: { reassembly: { maxDatagrams: 64 } } } });
    resolvePeer(netif);
    const { emitFragmentHeader } = await import("../../stack/wire/ipv6.js");
    for (let i = 0; i < 200; i++) {
      const p = new Uint8Array(8 + 1448);
      emitFragmentHeader(p, 0, 17, 0, true, 1000 + i);
      netif.inject(ipv6Frame(44, p, { src: parseIPv6(`2001:db8:1::${(i + 1).toString(16)}`), dstMac: STACK_MAC }));
    }
    netif.take();
    const msg = new Uint8Array(8 + 4000);
    const { emitIcmp } = await import("../../stack/wire/icmp.js");
    emitIcmp(msg, 0, msg.length, 128, 0, 0x00070001, PEER6, STACK6);
    for (const f of fragments6(58, msg, 1448, 99, STACK_MAC)) netif.inject(f);
    const out = netif.take().map(decode6);
    expect(out.length).toBe(3);
    expect(stack.stats().ipv6!["drop_reassembly_evicted"]).toBe(200 - 64 + 1);
  });

  it("drops a datagram with overlapping fragments (RFC 5722)", async () => {
    const { netif, stack } = await setup();
    const msg = new Uint8Array(3000);
    for (const f of fragments6(17, msg, 1448, 5, STACK_MAC, [0, 1440, 2888])) netif.inject(f);
    expect(stack.stats().ipv6!["drop_frag_overlap"]).toBe(1);
    expect(stack.stats().udp!["rx_datagrams"] ?? 0).toBe(0);
  });

  it("answers an unknown next header with parameter problem code 1 pointing at it", async () => {
    const { netif } = await setup();
    resolvePeer(netif);
    netif.inject(ipv6Frame(253, new Uint8Array(16), { dstMac: STACK_MAC }));
    const [pp] = netif.take().map(decode6);
    expect(pp!.icmp!.type).toBe(4);
    expect(pp!.icmp!.code).toBe(1);
    expect(pp!.icmp!.rest).toBe(6);
  });

  it("answers a routing header with segments left with parameter problem (§4.4)", async () => {
    const { netif } = await setup();
    resolvePeer(netif);
    const rh = new Uint8Array(24 + 8);
    rh[0] = 59; // next header: none
    rh[1] = 2; // (2+1)*8 = 24 bytes
    rh[2] = 0; // type 0
    rh[3] = 1; // segments left
    netif.inject(ipv6Frame(43, rh, { dstMac: STACK_MAC }));
    const [pp] = netif.take().map(decode6);
    expect(pp!.icmp!.type).toBe(4);
    expect(pp!.icmp!.code).toBe(0);
    expect(pp!.icmp!.rest).toBe(40 + 3);
  });

  it("Packet Too Big lowers the path MTU (never below 1280) and later sends fragment to it (RFC 8201)", async () => {
    const { netif, stack } = await setup();
    resolvePeer(netif);
    const s = stack.udp.createSocket("udp6");
    s.send(new Uint8Array(1400), 9, "2001:db8::1");
    await tick();
    const [sent] = netif.take();
    const quote = sent!.subarray(14);
    netif.inject(icmp6Frame(2, 0, 1000, quote.subarray(0, 1232), { dstMac: STACK_MAC }));
    expect(stack.ipv6!.pathMtu(PEER6)).toBe(1280);
    s.send(new Uint8Array(1400), 9, "2001:db8::1");
    await tick();
    const out = netif.take().map(decode6);
    expect(out.length).toBe(2);
    expect(out.every((o) => o.ip.payloadLen + 40 <= 1280)).toBe(true);
  });

  it("drops UDP with a zero checksum over IPv6 (RFC 8200 §8.1)", async () => {
    const { netif, stack } = await setup();
    const s = stack.udp.createSocket("udp6");
    let got = 0;
    s.on("message", () => got++);
    s.bind(7);
    const u = new Uint8Array(8 + 4);
    emitUdp(u, 0, 1000, 7, 4, PEER6, STACK6);
    netif.inject(ipv6Frame(17, u, { dstMac: STACK_MAC }));
    expect(got).toBe(1);
    u[6] = 0;
    u[7] = 0;
    netif.inject(ipv6Frame(17, u, { dstMac: STACK_MAC }));
    expect(got).toBe(1);
    expect(stack.stats().udp!["drop_zero_checksum_ipv6"]).toBe(1);
  });

  it("two stacks on the switch ping each other over IPv6, global and link-local, and with 4000 bytes", async () => {
    const sw = new VirtualSwitch();
    const a = Stack.create({ netif: sw.port(), ipv6: { address: "2001:db8::a/64" } });
    const b = Stack.create({ netif: sw.port(), ipv6: { address: "2001:db8::b/64" } });
    await Promise.all([a.ready(), b.ready()]);
    expect((await a.ping("2001:db8::b")).from).toBe("2001:db8::b");
    const bll = b.addresses().find((x) => x.startsWith("fe80"))!;
    expect((await a.ping(bll)).from).toBe(bll);
    expect((await b.ping("2001:db8::a", { size: 4000 })).bytes).toBe(4000);
    await a.close();
    await b.close();
  });
});
