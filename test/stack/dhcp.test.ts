// The DHCPv4 client (RFC 2131) against a DHCP server written on another paf stack, over the
// virtual switch on a virtual clock, so leases of minutes run in milliseconds: DORA, renewal at
// T1 (unicast), rebinding at T2 (broadcast), expiry, NAK, DECLINE after an ARP conflict
// (RFC 5227), INIT-REBOOT, and the retransmission backoff of §4.1.
import { afterEach, describe, expect, it } from "vitest";
import { Stack } from "../../stack/stack.js";
import { VirtualSwitch } from "../../stack/netif/vswitch.js";
import { VirtualClock } from "../../stack/core/clock.js";
import { SeededRandom } from "../../stack/core/random.js";
import type { DhcpLease, DhcpOptions } from "../../stack/dhcp.js";
import { parseIpv4 } from "../../stack/wire/ipv4.js";
import { emitDhcp, optAddresses, optU32, parseDhcp, OPT } from "../../stack/wire/dhcp.js";
import { formatIP } from "../../stack/wire/addr.js";
import { runUntil } from "../helpers/virtual.js";
import { DhcpServer, type DhcpServerConfig } from "../helpers/dhcpserver.js";

/** A DHCP message the client put on the wire, with its IP addresses and the clock time. */
interface Wire {
  at: number;
  type: number;
  src: string;
  dst: string;
  ciaddr: string;
}

let closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers) await c();
  closers = [];
});

function lan(cfg: Partial<DhcpServerConfig> = {}, client: DhcpOptions = {}) {
  const clock = new VirtualClock();
  const wire: Wire[] = [];
  const sw = new VirtualSwitch({
    onFrame: (f) => {
      if (f[12] !== 0x08 || f[13] !== 0x00) return;
      const ip = parseIpv4(f.subarray(14));
      if (typeof ip === "string" || ip.protocol !== 17 || ((ip.payload[2]! << 8) | ip.payload[3]!) !== 67) return;
      const m = parseDhcp(ip.payload.subarray(8));
      if (typeof m === "string") throw new Error(`bad DHCP message on the wire: ${m}`);
      wire.push({ at: clock.now(), type: m.options.get(OPT.MESSAGE_TYPE)![0]!, src: formatIP(ip.src), dst: formatIP(ip.dst), ciaddr: formatIP(m.ciaddr) });
    },
  });
  const server = Stack.create({ netif: sw.port(), clock, random: new SeededRandom(1), ipv4: { address: "198.18.0.1/24" } });
  const dhcpd = new DhcpServer(server, { pool: ["198.18.0.50", "198.18.0.51"], router: "198.18.0.1", dns: ["198.18.0.1", "198.18.0.2"], leaseSec: 120, t1Sec: 60, ...cfg });
  const stack = Stack.create({ netif: sw.port(), clock, random: new SeededRandom(2), ipv4: { dhcp: { hostname: "paf-test", ...client } } });
  const dhcp = stack.dhcp!;
  const events: string[] = [];
  for (const e of ["bound", "renewed", "expired"] as const) dhcp.on(e, (l: DhcpLease) => events.push(`${e} ${l.address}`));
  dhcp.on("nak", (msg) => events.push(`nak ${msg}`));
  dhcp.on("declined", (a) => events.push(`declined ${a}`));
  const until = (cond: () => boolean, what: string, maxMs = 600_000) => runUntil(sw, clock, cond, what, maxMs, 200);
  closers.push(async () => void (await Promise.all([server.close(), stack.close()])));
  return { clock, sw, wire, server, dhcpd, stack, dhcp, events, until };
}

type Lan = ReturnType<typeof lan>;

async function bound(n: Lan): Promise<DhcpLease> {
  let lease: DhcpLease | undefined;
  n.stack.ready().then(() => (lease = n.dhcp.lease));
  await n.until(() => lease !== undefined, "a lease");
  return lease!;
}

const DISCOVER = 1;
const REQUEST = 3;
const DECLINE = 4;

describe("DHCPv4 client (RFC 2131)", () => {
  it("DORA: DISCOVER and REQUEST by broadcast from 0.0.0.0, an ARP probe, then address, default route and DNS servers", async () => {
    const n = lan();
    const lease = await bound(n);
    expect(lease).toMatchObject({
      address: "198.18.0.50",
      prefixLength: 24,
      router: "198.18.0.1",
      dns: ["198.18.0.1", "198.18.0.2"],
      server: "198.18.0.1",
      leaseSec: 120,
      renewSec: 60,
      rebindSec: 105,
    });
    expect(n.wire.map((w) => [w.type, w.src, w.dst])).toEqual([
      [DISCOVER, "0.0.0.0", "255.255.255.255"],
      [REQUEST, "0.0.0.0", "255.255.255.255"],
    ]);
    expect(n.dhcpd.seen.map((s) => [s.type, s.requested, s.server, s.hostname, s.broadcastFlag])).toEqual([
      [DISCOVER, undefined, undefined, "paf-test", true],
      [REQUEST, "198.18.0.50", "198.18.0.1", "paf-test", true],
    ]);
    // RFC 5227: three probes and ANNOUNCE_WAIT before the address is used (at least 1 + 1 + 1 + 2 s).
    expect(n.stack.stats()["arp"]!["probes_sent"]).toBe(3);
    expect(n.clock.now() - lease.obtainedAt).toBeGreaterThanOrEqual(4000);
    expect(n.events).toEqual(["bound 198.18.0.50"]);
    expect(n.stack.addresses()).toEqual(["198.18.0.50"]);
    expect(n.stack.routes()).toEqual([
      { family: 4, to: "198.18.0.0/24", metric: 0, origin: "connected", src: "198.18.0.50" },
      { family: 4, to: "0.0.0.0/0", via: "198.18.0.1", metric: 100, origin: "dhcp" },
    ]);
    expect(n.stack.dns.getServers()).toEqual(["198.18.0.1", "198.18.0.2"]);
    let pinged = false;
    n.stack.ping("198.18.0.1").then(() => (pinged = true));
    await n.until(() => pinged, "a ping over the leased address");
  });

  it("renews at T1 by unicast to its server and keeps the address", async () => {
    const n = lan();
    const lease = await bound(n);
    await n.until(() => n.events.length === 2, "the renewal", 200_000);
    const renew = n.wire.at(-1)!;
    expect(renew).toMatchObject({ type: REQUEST, src: "198.18.0.50", dst: "198.18.0.1", ciaddr: "198.18.0.50" });
    expect(renew.at).toBe(lease.obtainedAt + 60_000);
    expect(n.dhcpd.seen.at(-1)).toMatchObject({ requested: undefined, server: undefined, broadcastFlag: false });
    expect(n.events).toEqual(["bound 198.18.0.50", "renewed 198.18.0.50"]);
    expect(n.dhcp.lease!.expiresAt).toBe(renew.at + 120_000);
    expect(n.dhcp.state).toBe("BOUND");
    expect(n.stack.addresses()).toEqual(["198.18.0.50"]);
  });

  it("rebinds at T2 by broadcast when its server is silent, and takes the answer of another", async () => {
    const n = lan();
    const other = Stack.create({ netif: n.sw.port(), clock: n.clock, random: new SeededRandom(3), ipv4: { address: "198.18.0.3/24" } });
    closers.push(() => other.close());
    const second = new DhcpServer(other, { pool: ["198.18.0.50"], router: "198.18.0.1", leaseSec: 300 });
    second.mode = "silent";
    const lease = await bound(n);
    n.dhcpd.mode = "silent";
    second.mode = "normal";
    await n.until(() => n.events.length === 2, "the rebinding", 200_000);
    const requests = n.wire.filter((w) => w.type === REQUEST && w.ciaddr === "198.18.0.50");
    expect(requests.map((w) => [w.dst, w.at - lease.obtainedAt])).toEqual([
      ["198.18.0.1", 60_000], // T1: unicast; the next try would be after T2
      ["255.255.255.255", 105_000], // T2
    ]);
    expect(n.events).toEqual(["bound 198.18.0.50", "renewed 198.18.0.50"]);
    expect(n.dhcp.lease).toMatchObject({ server: "198.18.0.3", leaseSec: 300 });
  });

  it("lease expiry removes the address, its route and DNS servers, fails its TCP connections, and starts over", async () => {
    const n = lan();
    const lease = await bound(n);
    const server = n.server.tcp.listen({ port: 80 }, () => {});
    let conn: Awaited<ReturnType<typeof n.stack.tcp.connect>> | undefined;
    n.stack.tcp.connect({ host: "198.18.0.1", port: 80 }).then((f) => (conn = f));
    await n.until(() => conn !== undefined, "a TCP connection");
    let err: (Error & { code?: string }) | undefined;
    conn!.on("error", (e) => (err = e));
    n.dhcpd.mode = "silent";
    await n.until(() => n.events.length === 2, "the expiry", 200_000);
    expect(n.events).toEqual(["bound 198.18.0.50", "expired 198.18.0.50"]);
    expect(n.clock.now()).toBe(lease.expiresAt);
    expect(n.stack.addresses()).toEqual([]);
    expect(n.stack.routes()).toEqual([]);
    expect(n.stack.dns.getServers()).toEqual([]);
    await n.until(() => err !== undefined, "the connection's error", 1);
    expect(err!.code).toBe("ECONNABORTED");
    // Renewing: unicast at T1; rebinding: broadcast at T2 and again halfway to expiry (>= 60 s later: none);
    // then a DISCOVER at once.
    expect(n.wire.filter((w) => w.at > lease.obtainedAt).map((w) => [w.type, w.dst, w.at - lease.obtainedAt])).toEqual([
      [REQUEST, "198.18.0.1", 60_000],
      [REQUEST, "255.255.255.255", 105_000],
      [DISCOVER, "255.255.255.255", 120_000],
    ]);
    expect(n.dhcp.state).toBe("SELECTING");
    server.close();
  });

  it("a NAK to the renewal removes the address and goes back to INIT: a new lease from the new range", async () => {
    const n = lan();
    await bound(n);
    n.dhcpd.cfg.pool = ["198.18.0.60"]; // the server's range changed: .50 is no longer its to give
    await n.until(() => n.events.length === 3, "NAK and a new lease", 200_000);
    expect(n.events).toEqual(["bound 198.18.0.50", "nak no such lease", "bound 198.18.0.60"]);
    expect(n.stack.addresses()).toEqual(["198.18.0.60"]);
    expect(n.stack.routes().map((r) => r.to)).toEqual(["198.18.0.0/24", "0.0.0.0/0"]);
  });

  it("declines an offered address that answers ARP (RFC 5227), waits 10 s, and takes another", async () => {
    const n = lan();
    const squatter = Stack.create({ netif: n.sw.port(), clock: n.clock, random: new SeededRandom(4), ipv4: { address: "198.18.0.50/24" } });
    closers.push(() => squatter.close());
    const lease = await bound(n);
    expect(lease.address).toBe("198.18.0.51");
    expect(n.events).toEqual(["declined 198.18.0.50", "bound 198.18.0.51"]);
    const decline = n.dhcpd.seen.find((s) => s.type === DECLINE)!;
    expect(decline).toMatchObject({ from: "0.0.0.0", requested: "198.18.0.50", server: "198.18.0.1" });
    const declinedAt = n.wire.find((w) => w.type === DECLINE)!.at;
    const nextDiscover = n.wire.find((w) => w.type === DISCOVER && w.at > declinedAt)!;
    expect(nextDiscover.at - declinedAt).toBe(10_000);
    expect(n.stack.stats()["arp"]!["probe_conflicts"]).toBe(1);
    expect(n.stack.stats()["arp"]!["address_conflict"] ?? 0).toBe(0);
  });

  it("retransmits DISCOVER after 4, 8, 16, 32, 64, 64 s, each within 1 s of it (§4.1); ready() fails with ETIMEDOUT", async () => {
    const n = lan({}, { timeoutMs: 30_000 });
    n.dhcpd.mode = "silent";
    let err: (Error & { code?: string }) | undefined;
    n.stack.ready().catch((e) => (err = e));
    await n.until(() => err !== undefined, "ready() to give up");
    expect(err!.code).toBe("ETIMEDOUT");
    expect(n.clock.now()).toBe(30_000);
    await n.until(() => n.wire.length >= 7, "seven DISCOVERs");
    const gaps = n.wire.slice(1, 7).map((w, i) => w.at - n.wire[i]!.at);
    for (const [i, base] of [4000, 8000, 16000, 32000, 64000, 64000].entries()) {
      expect(gaps[i]).toBeGreaterThanOrEqual(base - 1000);
      expect(gaps[i]).toBeLessThanOrEqual(base + 1000);
    }
    expect(new Set(gaps.map((g, i) => g - [4000, 8000, 16000, 32000, 64000, 64000][i]!)).size).toBeGreaterThan(1); // jittered
    expect(n.wire.every((w) => w.type === DISCOVER)).toBe(true);
  });

  it("INIT-REBOOT: asks for the remembered address first, without a DISCOVER", async () => {
    const n = lan({}, { requestAddress: "198.18.0.51" });
    const lease = await bound(n);
    expect(lease.address).toBe("198.18.0.51");
    expect(n.dhcpd.seen.map((s) => [s.type, s.requested, s.server])).toEqual([[REQUEST, "198.18.0.51", undefined]]);
  });

  it("rejects bad options at Stack.create, naming them", () => {
    const netif = new VirtualSwitch().port();
    expect(() => Stack.create({ netif, ipv4: { dhcp: { probes: -1 } } })).toThrow(expect.objectContaining({ code: "ERR_OUT_OF_RANGE", message: expect.stringContaining("ipv4.dhcp.probes") }));
    expect(() => Stack.create({ netif, ipv4: { dhcp: { hostname: "no spaces" } } })).toThrow(expect.objectContaining({ code: "ERR_INVALID_ARG_VALUE" }));
    expect(() => Stack.create({ netif, ipv4: { address: "198.18.0.2/24", dhcp: true } })).toThrow(expect.objectContaining({ code: "ERR_INVALID_ARG_VALUE" }));
  });
});

describe("DHCP messages (RFC 2131 §2, RFC 2132, RFC 3396)", () => {
  const u32 = (v: number) => Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  const chaddr = Uint8Array.of(2, 0, 0, 0, 0, 1);

  it("round-trips header and options, pads to 300 bytes, splits and rejoins a value over 255 bytes", () => {
    const long = new Uint8Array(600).map((_, i) => i & 0xff);
    const m = emitDhcp({
      op: 1,
      xid: 0x12345678,
      secs: 3,
      flags: 0x8000,
      chaddr,
      options: [
        [OPT.MESSAGE_TYPE, Uint8Array.of(1)],
        [OPT.DNS, long],
      ],
    });
    expect(m.length).toBeGreaterThanOrEqual(300);
    const p = parseDhcp(m);
    if (typeof p === "string") throw new Error(p);
    expect([p.op, p.xid, p.secs, p.flags]).toEqual([1, 0x12345678, 3, 0x8000]);
    expect(p.chaddr).toEqual(chaddr);
    expect(p.options.get(OPT.DNS)).toEqual(long);
    expect(optAddresses(p.options.get(OPT.DNS))).toHaveLength(150);
  });

  it("a lease time sent twice (dnsmasq adds its own to one set with --dhcp-option=51) is read as the shorter", () => {
    const m = emitDhcp({
      op: 2,
      xid: 1,
      secs: 0,
      flags: 0,
      chaddr,
      options: [
        [OPT.LEASE_TIME, u32(120)],
        [OPT.LEASE_TIME, u32(20)],
      ],
    });
    const p = parseDhcp(m);
    if (typeof p === "string") throw new Error(p);
    expect(optU32(p.options.get(OPT.LEASE_TIME))).toBe(20);
    expect(optU32(Uint8Array.of(1, 2, 3))).toBeUndefined();
  });

  it("reads options continued in the file field (option overload, RFC 2132 §9.3) and refuses a bad cookie or a truncated option", () => {
    const m = emitDhcp({ op: 2, xid: 1, secs: 0, flags: 0, chaddr, options: [[OPT.OVERLOAD, Uint8Array.of(1)]] });
    m.set([OPT.LEASE_TIME, 4, 0, 0, 0, 60, OPT.END], 108);
    const p = parseDhcp(m);
    if (typeof p === "string") throw new Error(p);
    expect(optU32(p.options.get(OPT.LEASE_TIME))).toBe(60);
    const bad = Uint8Array.from(m);
    bad[236] = 0;
    expect(parseDhcp(bad)).toBe("bad_cookie");
    const cut = emitDhcp({ op: 2, xid: 1, secs: 0, flags: 0, chaddr, options: [] });
    cut.set([OPT.DNS, 200], 240);
    expect(parseDhcp(cut)).toBe("bad_option");
  });
});
