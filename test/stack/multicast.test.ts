// UDP broadcast and multicast shaped like node:dgram, IGMPv2 (RFC 2236) and MLDv2 (RFC 3810)
// reports, frame by frame on a capture netif with a virtual clock, and between stacks on the
// virtual switch.
import { afterEach, describe, expect, it } from "vitest";
import { Stack } from "../../stack/stack.js";
import { VirtualClock } from "../../stack/core/clock.js";
import { SeededRandom } from "../../stack/core/random.js";
import { VirtualSwitch } from "../../stack/netif/vswitch.js";
import { CaptureNetif } from "../helpers/capture.js";
import { STACK_MAC, ipv4Frame } from "../helpers/frames.js";
import { PEER6_LL, icmp6Frame } from "../helpers/frames6.js";
import { emitIgmp, parseIgmp } from "../../stack/wire/igmp.js";
import { parseIpv4 } from "../../stack/wire/ipv4.js";
import { parseIpv6 } from "../../stack/wire/ipv6.js";
import { formatIP, formatMac, ipv4MulticastMac, ipv6MulticastMac, parseIP, solicitedNode } from "../../stack/wire/addr.js";
import type { UdpSocket } from "../../stack/udp.js";

const tick = () => new Promise<void>((r) => setImmediate(r));

let stacks: Stack[] = [];
afterEach(async () => {
  await Promise.all(stacks.map((s) => s.close()));
  stacks = [];
});

/** A stack on a capture netif with a virtual clock (the peer is the test). */
function captured(o: { v4?: boolean; v6?: boolean } = { v4: true }) {
  const netif = new CaptureNetif();
  const clock = new VirtualClock();
  const stack = Stack.create({
    netif,
    mac: STACK_MAC,
    clock,
    random: new SeededRandom(7),
    ...(o.v4 ? { ipv4: { address: "198.18.0.2/24" } } : {}),
    ...(o.v6 ? { ipv6: { address: "2001:db8::2/64", dad: false } } : {}),
  });
  stacks.push(stack);
  return { netif, clock, stack };
}

function bound(stack: Stack, type: "udp4" | "udp6", port = 5000, reuseAddr = false): UdpSocket {
  const s = stack.udp.createSocket({ type, reuseAddr });
  s.bind(port);
  return s;
}

/** IGMP messages in the frames the stack sent: type, group, and the IP header's facts. */
function igmpOut(frames: Uint8Array[]) {
  const out: Array<{ type: number; group: string; dst: string; ttl: number; headerLen: number; routerAlert: boolean; dstMac: string }> = [];
  for (const f of frames) {
    if (f[12] !== 0x08 || f[13] !== 0x00) continue;
    const ip = parseIpv4(f.subarray(14));
    if (typeof ip === "string" || ip.protocol !== 2) continue;
    const m = parseIgmp(ip.payload);
    if (typeof m === "string") throw new Error(`bad IGMP from the stack: ${m}`);
    out.push({ type: m.type, group: formatIP(m.group), dst: formatIP(ip.dst), ttl: ip.ttl, headerLen: ip.headerLen, routerAlert: f[14 + 20] === 0x94, dstMac: formatMac(f) });
  }
  return out;
}

/** MLD messages the stack sent: type, records (type + group) or the v1 group, and the header facts. */
function mldOut(frames: Uint8Array[]) {
  const out: Array<{ type: number; records: string[]; dst: string; src: string; hopLimit: number; routerAlert: boolean }> = [];
  for (const f of frames) {
    if (f[12] !== 0x86 || f[13] !== 0xdd) continue;
    const ip = parseIpv6(f.subarray(14));
    if (typeof ip === "string" || ip.nextHeader !== 0 || ip.payload[0] !== 58) continue;
    const m = ip.payload.subarray(8);
    const records: string[] = [];
    if (m[0] === 143) for (let i = 0, o = 8; i < ((m[6]! << 8) | m[7]!); i++, o += 20) records.push(`${m[o]} ${formatIP(m.subarray(o + 4, o + 20))}`);
    else records.push(formatIP(m.subarray(8, 24)));
    out.push({ type: m[0]!, records, dst: formatIP(ip.dst), src: formatIP(ip.src), hopLimit: ip.hopLimit, routerAlert: ip.payload[2] === 5 && ip.payload[3] === 2 });
  }
  return out;
}

function igmpQuery(group: string, maxResp: number, length = 8): Uint8Array {
  const m = new Uint8Array(length);
  emitIgmp(m, 0, 0x11, maxResp, parseIP(group));
  const dst = group === "0.0.0.0" ? "224.0.0.1" : group;
  return ipv4Frame(2, m, { src: parseIP("198.18.0.1"), dst: parseIP(dst), ttl: 1, dstMac: ipv4MulticastMac(parseIP(dst)) });
}

function igmpReport(group: string): Uint8Array {
  const m = new Uint8Array(8);
  emitIgmp(m, 0, 0x16, 0, parseIP(group));
  return ipv4Frame(2, m, { src: parseIP("198.18.0.9"), dst: parseIP(group), ttl: 1, dstMac: ipv4MulticastMac(parseIP(group)) });
}

function mldQuery(group: string, maxRespMs: number, v1 = false, src = PEER6_LL): Uint8Array {
  const body = new Uint8Array(v1 ? 16 : 20);
  body.set(parseIP(group), 0);
  const dst = group === "::" ? parseIP("ff02::1") : parseIP(group);
  return icmp6Frame(130, 0, (maxRespMs << 16) >>> 0, body, { src, dst, hopLimit: 1, dstMac: ipv6MulticastMac(dst) });
}

describe("UDP broadcast (SO_BROADCAST)", () => {
  it("sending to a broadcast address needs setBroadcast(true): EACCES before, as Linux", async () => {
    const sw = new VirtualSwitch();
    const a = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" } });
    const b = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.3/24" } });
    stacks.push(a, b);
    const tx = a.udp.createSocket("udp4");
    expect(() => tx.setBroadcast(true)).toThrow(expect.objectContaining({ code: "EBADF", syscall: "setBroadcast" }));
    tx.bind(0);
    await tick();
    const got: string[] = [];
    const rx = bound(b, "udp4", 9);
    rx.on("message", (m, r) => got.push(`${m} from ${r.address}`));
    for (const dst of ["255.255.255.255", "198.18.0.255"]) {
      const e = await new Promise<Error | null>((r) => tx.send("no", 9, dst, r));
      expect(e).toMatchObject({ code: "EACCES", syscall: "send", message: `send EACCES ${dst}:9` });
    }
    expect(a.stats()["udp"]!["drop_broadcast_not_allowed"]).toBe(2);
    tx.setBroadcast(true);
    for (const dst of ["255.255.255.255", "198.18.0.255"]) await new Promise<Error | null>((r) => tx.send(dst, 9, dst, r));
    for (let i = 0; i < 5 && got.length < 2; i++) await tick();
    expect(got).toEqual(["255.255.255.255 from 198.18.0.2", "198.18.0.255 from 198.18.0.2"]);
  });

  it("a broadcast reaches every socket bound to the port (reuseAddr), ours included, and is never answered with an ICMP error", async () => {
    const { netif, stack } = captured();
    const heard: string[] = [];
    const s1 = bound(stack, "udp4", 67, true);
    const s2 = bound(stack, "udp4", 67, true);
    s1.on("message", (m) => heard.push(`s1 ${m}`));
    s2.on("message", (m) => heard.push(`s2 ${m}`));
    expect(() => bound(stack, "udp4", 67)).toThrow(expect.objectContaining({ code: "EADDRINUSE" })); // without reuseAddr
    await tick();
    const tx = bound(stack, "udp4", 68);
    await tick();
    tx.setBroadcast(true);
    tx.send("own", 67, "255.255.255.255");
    await tick();
    expect(heard.sort()).toEqual(["s1 own", "s2 own"]); // looped back like Linux's broadcast
    netif.take();
    const peer = new Uint8Array(8 + 4);
    peer.set([0x74, 0x68, 0x65, 0x6d], 8);
    const { emitUdp } = await import("../../stack/wire/udp.js");
    emitUdp(peer, 0, 1234, 99, 4, parseIP("198.18.0.1"), parseIP("255.255.255.255"));
    netif.inject(ipv4Frame(17, peer, { dst: parseIP("255.255.255.255"), dstMac: new Uint8Array(6).fill(0xff) }));
    expect(netif.take()).toHaveLength(0); // no port unreachable about a broadcast
  });
});

describe("IPv4 multicast and IGMPv2 (RFC 2236)", () => {
  it("addMembership sends a v2 report (TTL 1, Router Alert) and repeats it once; dropMembership sends a Leave to 224.0.0.2", async () => {
    const { netif, clock, stack } = captured();
    const s = bound(stack, "udp4");
    await tick();
    netif.take();
    s.addMembership("239.1.2.3");
    const [r] = igmpOut(netif.take());
    expect(r).toEqual({ type: 0x16, group: "239.1.2.3", dst: "239.1.2.3", ttl: 1, headerLen: 24, routerAlert: true, dstMac: "01:00:5e:01:02:03" });
    clock.advance(10_000); // Unsolicited Report Interval: the repeat
    expect(igmpOut(netif.take()).map((x) => x.type)).toEqual([0x16]);
    clock.advance(60_000);
    expect(igmpOut(netif.take())).toEqual([]);
    expect(() => s.addMembership("239.1.2.3")).toThrow(expect.objectContaining({ code: "EADDRINUSE", syscall: "addMembership" }));
    s.dropMembership("239.1.2.3");
    expect(igmpOut(netif.take()).map((x) => [x.type, x.group, x.dst])).toEqual([[0x17, "239.1.2.3", "224.0.0.2"]]);
    expect(() => s.dropMembership("239.1.2.3")).toThrow(expect.objectContaining({ code: "EADDRNOTAVAIL" }));
    expect(() => s.addMembership("198.18.0.7")).toThrow(expect.objectContaining({ code: "EINVAL" }));
    expect(() => s.addMembership("239.1.2.3", "198.18.0.99")).toThrow(expect.objectContaining({ code: "ENODEV" }));
    expect(() => s.addMembership("ff02::1")).toThrow(expect.objectContaining({ code: "EINVAL" }));
  });

  it("answers a general query within Max Response Time, a group query for its group, and stays quiet when another host reported", async () => {
    const { netif, clock, stack } = captured();
    const s = bound(stack, "udp4");
    await tick();
    s.addMembership("239.1.2.3");
    s.addMembership("239.4.5.6");
    clock.advance(20_000);
    netif.take();
    netif.inject(igmpQuery("0.0.0.0", 50)); // 5 s
    expect(igmpOut(netif.take())).toEqual([]); // delayed, never at once
    clock.advance(5000);
    expect(
      igmpOut(netif.take())
        .map((x) => x.group)
        .sort(),
    ).toEqual(["239.1.2.3", "239.4.5.6"]);
    netif.inject(igmpQuery("239.4.5.6", 20));
    clock.advance(2000);
    expect(igmpOut(netif.take()).map((x) => x.group)).toEqual(["239.4.5.6"]);
    // Another member's report while our timer runs: ours is suppressed, and the Leave is theirs.
    netif.inject(igmpQuery("0.0.0.0", 100));
    netif.inject(igmpReport("239.1.2.3"));
    clock.advance(10_000);
    expect(igmpOut(netif.take()).map((x) => x.group)).toEqual(["239.4.5.6"]);
    expect(stack.stats()["igmp"]!["reports_suppressed"]).toBe(1);
    s.dropMembership("239.1.2.3");
    expect(igmpOut(netif.take())).toEqual([]);
  });

  it("a version 1 query (Max Response Time 0) switches to v1 reports and no Leave for 400 s", async () => {
    const { netif, clock, stack } = captured();
    const s = bound(stack, "udp4");
    await tick();
    s.addMembership("239.1.2.3");
    clock.advance(20_000);
    netif.take();
    netif.inject(igmpQuery("0.0.0.0", 0));
    clock.advance(10_000);
    expect(igmpOut(netif.take()).map((x) => x.type)).toEqual([0x12]);
    s.dropMembership("239.1.2.3");
    expect(igmpOut(netif.take())).toEqual([]);
    clock.advance(400_000);
    s.addMembership("239.1.2.3");
    expect(igmpOut(netif.take()).map((x) => x.type)).toEqual([0x16]);
  });

  it("delivers to members on other stacks, TTL 1 by default, loops back to our own members unless turned off", async () => {
    const sent: Array<{ ttl: number; dst: string }> = [];
    const sw = new VirtualSwitch({
      onFrame: (f) => {
        const ip = parseIpv4(f.subarray(14));
        if (f[13] === 0 && typeof ip !== "string" && ip.protocol === 17) sent.push({ ttl: ip.ttl, dst: formatIP(ip.dst) });
      },
    });
    const a = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" } });
    const b = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.3/24" } });
    const c = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.4/24" } });
    stacks.push(a, b, c);
    const got: string[] = [];
    const rb = bound(b, "udp4");
    rb.on("message", (m, r) => got.push(`b ${m} from ${r.address}`));
    rb.addMembership("239.1.2.3");
    const rc = bound(c, "udp4");
    rc.on("message", (m) => got.push(`c ${m}`)); // bound, not a member: its stack never joined
    const ra = bound(a, "udp4");
    ra.on("message", (m) => got.push(`a ${m}`));
    ra.addMembership("239.1.2.3");
    const tx = bound(a, "udp4", 6000);
    await tick();
    tx.send("one", 5000, "239.1.2.3");
    for (let i = 0; i < 5; i++) await tick();
    tx.setMulticastTTL(5);
    tx.setMulticastLoopback(false);
    tx.send("two", 5000, "239.1.2.3");
    for (let i = 0; i < 5; i++) await tick();
    expect(got.sort()).toEqual(["a one", "b one from 198.18.0.2", "b two from 198.18.0.2"]);
    expect(sent).toEqual([
      { ttl: 1, dst: "239.1.2.3" },
      { ttl: 5, dst: "239.1.2.3" },
    ]);
    expect(c.stats()["ethernet"]!["drop_multicast_not_joined"]).toBeGreaterThanOrEqual(2);
    expect(() => tx.setMulticastTTL(256)).toThrow(expect.objectContaining({ code: "EINVAL" }));
    expect(() => tx.setTTL(0)).toThrow(expect.objectContaining({ code: "EINVAL" }));
    expect(() => tx.setMulticastInterface("198.18.0.9")).toThrow(expect.objectContaining({ code: "ENODEV" }));
    tx.setMulticastInterface("198.18.0.2");
  });
});

describe("IPv6 multicast and MLDv2 (RFC 3810)", () => {
  it("reports joins and leaves as State Change Records to ff02::16, twice, with hop limit 1 and Router Alert", async () => {
    const { netif, clock, stack } = captured({ v6: true });
    const s = bound(stack, "udp6");
    await tick();
    clock.advance(5000);
    netif.take();
    s.addMembership("ff15::1234");
    const ll = formatIP(stack.ipv6!.linkLocal()!);
    expect(mldOut(netif.take())).toEqual([{ type: 143, records: ["4 ff15::1234"], dst: "ff02::16", src: ll, hopLimit: 1, routerAlert: true }]);
    clock.advance(1000);
    expect(mldOut(netif.take()).map((m) => m.records)).toEqual([["4 ff15::1234"]]);
    s.dropMembership("ff15::1234");
    clock.advance(1000);
    expect(mldOut(netif.take()).map((m) => m.records)).toEqual([["3 ff15::1234"], ["3 ff15::1234"]]);
  });

  it("reports the solicited-node groups of its addresses from :: while they are tentative (RFC 3590)", () => {
    const netif = new CaptureNetif();
    const stack = Stack.create({ netif, mac: STACK_MAC, clock: new VirtualClock(), random: new SeededRandom(7), ipv6: { address: "2001:db8::2/64" } });
    stacks.push(stack);
    const reports = mldOut(netif.take());
    expect(reports.every((r) => r.src === "::" && r.dst === "ff02::16")).toBe(true);
    // fe80::ff:fe00:2 and 2001:db8::2 share one solicited-node group: joined twice, reported once.
    expect(formatIP(solicitedNode(stack.ipv6!.addresses[0]!.address))).toBe("ff02::1:ff00:2");
    expect(reports.flatMap((r) => r.records)).toEqual([`4 ${formatIP(solicitedNode(parseIP("2001:db8::2")))}`]);
  });

  it("answers a general query with one Current State Report of every group, a v1 query with v1 reports", async () => {
    const { netif, clock, stack } = captured({ v6: true });
    const s = bound(stack, "udp6");
    await tick();
    s.addMembership("ff15::1234");
    clock.advance(5000);
    netif.take();
    netif.inject(mldQuery("::", 2000));
    expect(mldOut(netif.take())).toEqual([]);
    clock.advance(2000);
    const [cur, ...more] = mldOut(netif.take());
    expect(more).toEqual([]);
    expect(cur!.records.sort()).toEqual(["2 ff02::1:ff00:2", "2 ff15::1234"]);
    netif.inject(mldQuery("ff15::1234", 1000));
    clock.advance(1000);
    expect(mldOut(netif.take()).map((m) => m.records)).toEqual([["2 ff15::1234"]]);
    // A query from a global address is not from a router on this link (§5.1.14).
    netif.inject(mldQuery("::", 1000, false, parseIP("2001:db8::1")));
    expect(stack.stats()["mld"]!["drop_query_not_link_local"]).toBe(1);
    netif.inject(mldQuery("ff15::1234", 1000, true));
    clock.advance(1000);
    expect(mldOut(netif.take())).toEqual([{ type: 131, records: ["ff15::1234"], dst: "ff15::1234", src: formatIP(stack.ipv6!.linkLocal()!), hopLimit: 1, routerAlert: true }]);
    s.dropMembership("ff15::1234");
    expect(mldOut(netif.take()).map((m) => [m.type, m.dst])).toEqual([[132, "ff02::2"]]);
  });

  it("delivers to members on other stacks over the switch", async () => {
    const sw = new VirtualSwitch();
    const a = Stack.create({ netif: sw.port(), ipv6: { address: "2001:db8::2/64", dad: false } });
    const b = Stack.create({ netif: sw.port(), ipv6: { address: "2001:db8::3/64", dad: false } });
    stacks.push(a, b);
    await Promise.all([a.ready(), b.ready()]);
    const got: string[] = [];
    const rb = bound(b, "udp6");
    rb.on("message", (m, r) => got.push(`${m} from ${r.address}`));
    rb.addMembership("ff15::1234");
    const tx = bound(a, "udp6", 6000);
    await tick();
    tx.send("hello", 5000, "ff15::1234");
    for (let i = 0; i < 5 && got.length === 0; i++) await tick();
    expect(got).toEqual(["hello from 2001:db8::2"]);
  });
});
