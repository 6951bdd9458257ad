// The DNS stub resolver against DNS servers written on other paf stacks, over the virtual switch
// on a virtual clock: answers, retries and timeouts, TC -> TCP (RFC 7766), anti-spoofing checks
// (RFC 5452 §9.1), the TTL cache and its bounds, negative caching (RFC 2308), CNAME chains.
import { afterEach, describe, expect, it } from "vitest";
import { net, a, aaaa, cname, response, soa, zone, TestDnsServer, type Net } from "./net.js";
import { emitDns, emitQuery, parseDns, type DnsMessage } from "../../../stack/wire/dns.js";
import { SeededRandom } from "../../../stack/core/random.js";
import { Stack } from "../../../stack/stack.js";
import { VirtualSwitch } from "../../../stack/netif/vswitch.js";
import { VirtualClock } from "../../../stack/core/clock.js";
import type { DnsOptions } from "../../../stack/dns.js";

const ZONE = zone([
  a("host.test", "198.18.1.1", 300),
  aaaa("host.test", "2001:db8::1:1", 300),
  a("v4only.test", "198.18.1.2"),
  cname("www.test", "alias.test", 600),
  cname("alias.test", "host.test", 100),
]);

let n: Net | undefined;
afterEach(async () => {
  await n?.close();
  n = undefined;
});

async function setup(dns: Partial<DnsOptions> = {}) {
  n = await net(dns);
  const s1 = new TestDnsServer(n.ns1, ZONE);
  const s2 = new TestDnsServer(n.ns2, ZONE);
  return { ...n, s1, s2, dns: n.client.dns, stats: () => n!.client.stats()["dns"]! };
}

async function failure(p: Promise<unknown>, settle: Net["settle"]): Promise<Error & { code: string; hostname: string; syscall: string }> {
  try {
    await settle(p);
  } catch (e) {
    return e as Error & { code: string; hostname: string; syscall: string };
  }
  throw new Error("expected a failure");
}

describe("answers (RFC 1035 §7)", () => {
  it("lookup and resolve4/resolve6 return the zone's addresses, like dns.promises", async () => {
    const { dns, settle, s1, stats } = await setup();
    expect(await settle(dns.lookup("host.test"))).toEqual({ address: "198.18.1.1", family: 4 });
    expect(await settle(dns.lookup("host.test", { family: 6 }))).toEqual({ address: "2001:db8::1:1", family: 6 });
    expect(await settle(dns.lookup("HOST.test.", { all: true, order: "ipv6first" }))).toEqual([
      { address: "2001:db8::1:1", family: 6 },
      { address: "198.18.1.1", family: 4 },
    ]);
    dns.clearCache();
    expect(await settle(dns.resolve4("host.test"))).toEqual([{ address: "198.18.1.1", ttl: 300 }]);
    expect(await settle(dns.resolve6("host.test"))).toEqual([{ address: "2001:db8::1:1", ttl: 300 }]);
    // Each query came from its own random ephemeral port (RFC 5452 §9.2) with its own ID.
    const ids = new Set(s1.queries.map((q) => q.id));
    expect(ids.size).toBe(s1.queries.length);
    expect(stats()["udp_queries"]).toBe(s1.queries.length);
    expect(stats()["responses"]).toBe(s1.queries.length);
  });

  it("family 0 returns the A answers when there is no AAAA; resolve6 then fails with ENODATA", async () => {
    const { dns, settle } = await setup();
    expect(await settle(dns.lookup("v4only.test", { all: true }))).toEqual([{ address: "198.18.1.2", family: 4 }]);
    const e = await failure(dns.resolve6("v4only.test"), settle);
    expect(e.code).toBe("ENODATA");
    expect(e.syscall).toBe("queryAaaa");
    const l = await failure(dns.lookup("v4only.test", { family: 6 }), settle);
    expect(l.code).toBe("ENOTFOUND");
  });

  it("IP literals and localhost are answered without a query (RFC 6761 §6.3)", async () => {
    const { dns, settle, s1, s2 } = await setup();
    expect(await settle(dns.lookup("198.18.5.5"))).toEqual({ address: "198.18.5.5", family: 4 });
    expect(await settle(dns.lookup("2001:db8::5", { all: true }))).toEqual([{ address: "2001:db8::5", family: 6 }]);
    expect(await settle(dns.lookup("localhost", { all: true }))).toEqual([
      { address: "127.0.0.1", family: 4 },
      { address: "::1", family: 6 },
    ]);
    expect(await settle(dns.resolve6("api.Localhost."))).toEqual([{ address: "::1", ttl: 0 }]);
    expect(s1.queries.length + s2.queries.length).toBe(0);
  });

  it("a resolver without servers fails with a clear error, but literals still work", async () => {
    const clock = new VirtualClock();
    const s = Stack.create({ netif: new VirtualSwitch().port(), clock, ipv4: { address: "198.18.0.9/24" } });
    const e = await s.dns.lookup("host.test").catch((x: Error & { code: string }) => x);
    expect((e as Error & { code: string }).code).toBe("ENOSERVERS");
    expect((e as Error).message).toMatch(/getaddrinfo ENOSERVERS host\.test .*no DNS servers configured.*StackOptions\.dns\.servers/);
    expect(await s.dns.lookup("198.18.0.1")).toEqual({ address: "198.18.0.1", family: 4 });
    await s.close();
  });

  it("names that cannot be sent fail with EBADNAME before any query; bad server strings at create", async () => {
    const { dns, settle, s1 } = await setup();
    expect((await failure(dns.lookup("a".repeat(64) + ".test"), settle)).code).toBe("EBADNAME");
    expect((await failure(dns.resolve4("a..test"), settle)).code).toBe("EBADNAME");
    expect((await failure(dns.resolve4(""), settle)).code).toBe("EBADNAME");
    expect(s1.queries).toHaveLength(0);
    expect(() => Stack.create({ netif: new VirtualSwitch().port(), clock: new VirtualClock(), ipv4: { address: "198.18.0.9/24" }, dns: { servers: ["ns.test"] } })).toThrow(
      /invalid DNS server "ns\.test"/,
    );
  });

  it("asks an IPv6 server over IPv6, and a server on another port", async () => {
    n = await net({ servers: ["[2001:db8::2]:5353"] });
    const srv = n.ns2.udp.createSocket("udp6");
    srv.bind(5353);
    srv.on("message", (m, r) => {
      const query = parseDns(m) as DnsMessage;
      srv.send(emitDns(response(query, { answers: [aaaa("six.test", "2001:db8::66", 60)] })), r.port, r.address);
    });
    expect(await n.settle(n.client.dns.resolve6("six.test"))).toEqual([{ address: "2001:db8::66", ttl: 60 }]);
  });
});

describe("timeouts and retries", () => {
  it("a silent first server times out after timeoutMs, the second one answers", async () => {
    const { dns, settle, s1, s2, clock, stats } = await setup();
    s1.udpHandler = () => {}; // drops every query
    const t0 = clock.now();
    expect(await settle(dns.resolve4("host.test"))).toEqual([{ address: "198.18.1.1", ttl: 300 }]);
    expect(clock.now() - t0).toBeGreaterThanOrEqual(1000);
    expect(clock.now() - t0).toBeLessThan(1100);
    expect(s1.queries).toHaveLength(1);
    expect(s2.queries).toHaveLength(1);
    expect(stats()["udp_queries"]).toBe(2);
  });

  it("all servers silent: ETIMEOUT naming the name after attempts x servers x timeoutMs", async () => {
    const { dns, settle, s1, s2, clock, stats } = await setup({ attempts: 3 });
    s1.udpHandler = () => {};
    s2.udpHandler = () => {};
    const t0 = clock.now();
    const e = await failure(dns.resolve4("host.test"), settle);
    expect(e.code).toBe("ETIMEOUT");
    expect(e.hostname).toBe("host.test");
    expect(e.message).toMatch(/^queryA ETIMEOUT host\.test/);
    expect(clock.now() - t0).toBeGreaterThanOrEqual(6000);
    expect(clock.now() - t0).toBeLessThan(6100);
    expect([s1.queries.length, s2.queries.length]).toEqual([3, 3]);
    expect(stats()["timeouts"]).toBe(1);
    // A timeout is not cached: the next lookup asks again.
    s2.udpHandler = (q, _r, send) => send(response(q, { answers: [a("host.test", "198.18.1.1")] }));
    expect(await settle(dns.lookup("host.test"))).toEqual({ address: "198.18.1.1", family: 4 });
  });

  it("SERVFAIL moves on to the next server; SERVFAIL everywhere is ESERVFAIL", async () => {
    const { dns, settle, s1, s2, stats } = await setup();
    s1.udpHandler = (q, _r, send) => send(response(q, { rcode: 2 }));
    expect(await settle(dns.lookup("host.test"))).toEqual({ address: "198.18.1.1", family: 4 });
    s2.udpHandler = (q, _r, send) => send(response(q, { rcode: 2 }));
    const e = await failure(dns.lookup("v4only.test", { family: 4 }), settle);
    expect(e.code).toBe("ESERVFAIL");
    expect(e.syscall).toBe("getaddrinfo");
    expect(e.message).toMatch(/^getaddrinfo ESERVFAIL v4only\.test/);
    expect(stats()["rcode_servfail"]).toBe(2 + 4); // A and AAAA from ns1, then 2 rounds x 2 servers
    const r = await failure(dns.resolve4("v4only.test"), settle);
    expect(r.code).toBe("ESERVFAIL"); // not cached as an answer: asked again
    expect(s1.queries.length).toBe(2 + 2 + 2);
  });
});

describe("RFC 7766 TCP fallback on truncation", () => {
  it("TC=1 over UDP: the same server is asked over TCP, answers reassembled from 1-byte writes", async () => {
    const many = Array.from({ length: 100 }, (_, i) => a("big.test", `198.18.2.${i + 1}`, 120));
    const { dns, settle, s1, stats } = await setup();
    s1.zone = zone([...many]);
    s1.tcpChunk = 1;
    s1.listenTcp();
    s1.udpHandler = (q, _r, send) => send(response(q, { tc: true, answers: many.slice(0, 10) }));
    const got = await settle(dns.resolve4("big.test"));
    expect(got).toHaveLength(100);
    expect(got[99]).toEqual({ address: "198.18.2.100", ttl: 120 });
    expect(s1.tcpQueries).toHaveLength(1);
    expect(s1.tcpQueries[0]!.questions[0]!.name).toBe("big.test");
    expect(stats()["truncated"]).toBe(1);
    expect(stats()["tcp_queries"]).toBe(1);
    // The client closed its side; the connection goes away.
    await n!.until(() => n!.client.tcp.layer.connectionCount === 0, "TCP connection gone");
  });

  it("TCP refused: the next server is tried", async () => {
    const { dns, settle, s1, s2 } = await setup();
    s1.udpHandler = (q, _r, send) => send(response(q, { tc: true }));
    expect(await settle(dns.resolve4("host.test"))).toEqual([{ address: "198.18.1.1", ttl: 300 }]);
    expect(s2.queries).toHaveLength(1);
  });

  it("a TCP answer with another ID is refused and counted; the next server is asked", async () => {
    const { dns, settle, s1, s2, stats } = await setup();
    s1.listenTcp();
    s1.tcpMangle = (m) => ({ ...m, id: (m.id + 1) & 0xffff, answers: [a("host.test", "198.18.66.6")] });
    s1.udpHandler = (q, _r, send) => send(response(q, { tc: true }));
    expect(await settle(dns.resolve4("host.test"))).toEqual([{ address: "198.18.1.1", ttl: 300 }]);
    expect(s1.tcpQueries).toHaveLength(1);
    expect(s2.queries).toHaveLength(1);
    expect(stats()["drop_bad_id"]).toBe(1);
  });

  it("a TCP length prefix above maxResponseSize is refused and counted", async () => {
    const { dns, settle, s1, stats } = await setup({ maxResponseSize: 600, servers: ["198.18.0.1"], attempts: 1 });
    s1.zone = zone(Array.from({ length: 60 }, (_, i) => a("big.test", `198.18.3.${i + 1}`)));
    s1.listenTcp();
    s1.udpHandler = (q, _r, send) => send(response(q, { tc: true }));
    const e = await failure(dns.resolve4("big.test"), settle);
    expect(e.code).toBe("EBADRESP");
    expect(stats()["drop_too_big"]).toBe(1);
  });
});

describe("RFC 5452 §9.1 spoofing resistance", () => {
  it("answers from another address or port, with another ID or question, are dropped and counted", async () => {
    const { dns, settle, s1, attacker, ns1, stats } = await setup();
    const forger = attacker.udp.createSocket("udp4");
    forger.bind(53);
    const side = ns1.udp.createSocket("udp4");
    side.bind(5353);
    s1.udpHandler = (q, r, send) => {
      const evil = (over: Partial<DnsMessage>) => emitDns(response(q, { answers: [a(q.questions[0]!.name, "198.18.66.6")], ...over }));
      forger.send(evil({}), r.port, r.address); // right ID, wrong source address
      side.send(evil({}), r.port, r.address); // right address, wrong source port
      send(evil({ id: (q.id + 1) & 0xffff })); // wrong ID
      send(evil({ questions: [{ ...q.questions[0]!, name: "other.test" }] })); // question not echoed
      send(evil({ qr: false })); // not a response
      send(new Uint8Array([q.id >> 8, q.id & 0xff, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12])); // malformed, right ID
      send(response(q, { answers: [a(q.questions[0]!.name, "198.18.1.1")] }));
    };
    expect(await settle(dns.resolve4("host.test"))).toEqual([{ address: "198.18.1.1", ttl: 300 }]);
    const st = stats();
    expect(st["drop_bad_source"]).toBe(2);
    expect(st["drop_bad_id"]).toBe(1);
    expect(st["drop_bad_question"]).toBe(1);
    expect(st["drop_not_response"]).toBe(1);
    expect(st["drop_malformed_bad_pointer"]).toBe(1);
    expect(st["responses"]).toBe(1);
  });

  it("only garbage arrives: the lookup times out, nothing throws", async () => {
    const { dns, settle, s1, s2, stats } = await setup({ attempts: 1 });
    const junk = (q: DnsMessage) => {
      const b = new Uint8Array(40).fill(0xc0);
      b[0] = q.id >> 8;
      b[1] = q.id & 0xff;
      b[2] = 0x81;
      b[5] = 1;
      return b;
    };
    s1.udpHandler = s2.udpHandler = (q, _r, send) => send(junk(q));
    expect((await failure(dns.resolve4("host.test"), settle)).code).toBe("ETIMEOUT");
    expect(stats()["dropped"]).toBe(2);
  });

  it("random answers with our ID never throw out of the resolver: each lookup settles with an answer or a DNS error", async () => {
    const { dns, settle, s1 } = await setup({ servers: ["198.18.0.1"], attempts: 1, timeoutMs: 100, cacheSize: 0 });
    const rnd = new SeededRandom(5);
    const valid = emitDns(response(parseDns(emitQuery(0, "host.test", 1)) as DnsMessage, { answers: [a("host.test", "198.18.1.1"), cname("x.test", "host.test")], authorities: [soa("test", 5)] }));
    s1.udpHandler = (q, _r, send) => {
      const b = rnd.u32() % 2 ? rnd.fill(new Uint8Array(rnd.u32() % 80)) : Uint8Array.from(valid);
      for (let i = 0; i < 4; i++) b[rnd.u32() % Math.max(1, b.length)] = rnd.u32() & 0xff;
      if (b.length >= 2) {
        b[0] = q.id >> 8;
        b[1] = q.id & 0xff;
      }
      send(b);
    };
    const codes = new Set<string>();
    for (let i = 0; i < 200; i++) {
      try {
        const r = await settle(dns.resolve4("host.test"));
        codes.add(`ok:${r.length}`);
      } catch (e) {
        codes.add((e as { code: string }).code);
      }
    }
    for (const c of codes) expect(c).toMatch(/^(ok:\d+|ETIMEOUT|ENOTFOUND|ENODATA|ESERVFAIL|EREFUSED|EFORMERR|ENOTIMP|EBADRESP)$/);
    expect(codes.has("ETIMEOUT")).toBe(true);
    expect(codes.has("ok:1")).toBe(true);
  });

  it("records off the CNAME chain are ignored (no cache poisoning)", async () => {
    const { dns, settle, s1 } = await setup();
    s1.udpHandler = (q, _r, send) => send(response(q, { answers: [a("victim.test", "198.18.66.6"), a("host.test", "198.18.1.1")] }));
    expect(await settle(dns.resolve4("host.test"))).toEqual([{ address: "198.18.1.1", ttl: 300 }]);
    s1.udpHandler = () => {};
    n!.ns2.close();
    expect((await failure(dns.resolve4("victim.test"), settle)).code).toBe("ETIMEOUT");
  });
});

describe("cache (positive TTLs, RFC 2308 negative caching, bounds)", () => {
  it("a second lookup within the TTL is served from the cache with the TTL counting down; after it, asked again", async () => {
    const { dns, settle, s1, clock, stats } = await setup();
    expect(await settle(dns.resolve4("host.test"))).toEqual([{ address: "198.18.1.1", ttl: 300 }]);
    clock.advance(100_000);
    expect(await settle(dns.resolve4("Host.Test"))).toEqual([{ address: "198.18.1.1", ttl: 200 }]);
    expect(s1.queries).toHaveLength(1);
    expect(stats()["cache_hits"]).toBe(1);
    clock.advance(200_001);
    expect(await settle(dns.resolve4("host.test"))).toEqual([{ address: "198.18.1.1", ttl: 300 }]);
    expect(s1.queries).toHaveLength(2);
  });

  it("the TTL of a chain is its smallest, capped at maxTtlSec; TTL 0 is not cached", async () => {
    const { dns, settle, s1, clock } = await setup({ maxTtlSec: 50 });
    expect(await settle(dns.resolve4("www.test"))).toEqual([{ address: "198.18.1.1", ttl: 50 }]);
    s1.zone = zone([a("zero.test", "198.18.1.9", 0), a("long.test", "198.18.1.8", 86400 * 7)]);
    expect(await settle(dns.resolve4("long.test"))).toEqual([{ address: "198.18.1.8", ttl: 50 }]);
    clock.advance(51_000);
    await settle(dns.resolve4("long.test"));
    await settle(dns.resolve4("zero.test"));
    await settle(dns.resolve4("zero.test"));
    expect(s1.queries.map((q) => q.questions[0]!.name)).toEqual(["www.test", "long.test", "long.test", "zero.test", "zero.test"]);
  });

  it("NXDOMAIN is ENOTFOUND naming the name, cached for the SOA's negative TTL (capped)", async () => {
    const { dns, settle, s1, clock, stats } = await setup({ negativeTtlSec: 20 });
    const e = await failure(dns.lookup("nope.test"), settle);
    expect(e.code).toBe("ENOTFOUND");
    expect(e.hostname).toBe("nope.test");
    expect(e.message).toMatch(/^getaddrinfo ENOTFOUND nope\.test/);
    expect(s1.queries).toHaveLength(2); // A and AAAA
    clock.advance(19_000);
    expect((await failure(dns.resolve4("nope.test"), settle)).code).toBe("ENOTFOUND");
    expect(s1.queries).toHaveLength(2);
    clock.advance(1_001); // SOA minimum 30, capped at 20
    expect((await failure(dns.resolve4("nope.test"), settle)).code).toBe("ENOTFOUND");
    expect(s1.queries).toHaveLength(3);
    expect(stats()["cache_hits"]).toBe(1);
  });

  it("no data (NOERROR, empty answer) is cached too; negatives without a SOA are not (RFC 2308 §5)", async () => {
    const { dns, settle, s1 } = await setup();
    await failure(dns.resolve6("v4only.test"), settle);
    await failure(dns.resolve6("v4only.test"), settle);
    expect(s1.queries).toHaveLength(1);
    s1.udpHandler = (q, _r, send) => send(response(q, { rcode: 3 }));
    await failure(dns.resolve4("gone.test"), settle);
    await failure(dns.resolve4("gone.test"), settle);
    expect(s1.queries).toHaveLength(3);
  });

  it("the cache holds at most cacheSize entries, least recently used evicted", async () => {
    const { dns, settle, s1, stats } = await setup({ cacheSize: 2 });
    s1.zone = zone([a("a.test", "198.18.4.1"), a("b.test", "198.18.4.2"), a("c.test", "198.18.4.3")]);
    await settle(dns.resolve4("a.test"));
    await settle(dns.resolve4("b.test"));
    await settle(dns.resolve4("a.test")); // hit: a is now the most recent
    await settle(dns.resolve4("c.test")); // evicts b
    expect(dns.cacheEntries).toBe(2);
    await settle(dns.resolve4("a.test"));
    await settle(dns.resolve4("b.test"));
    expect(s1.queries.map((q) => q.questions[0]!.name)).toEqual(["a.test", "b.test", "c.test", "b.test"]);
    expect(stats()["cache_evictions"]).toBe(2);
    expect(stats()["cache_entries"]).toBe(2);
  });

  it("identical queries in flight are coalesced into one", async () => {
    const { dns, settle, s1, stats } = await setup();
    const all = Promise.all([dns.resolve4("host.test"), dns.resolve4("host.test"), dns.lookup("host.test", { family: 4 })]);
    const [x, y, z] = await settle(all);
    expect(x).toEqual([{ address: "198.18.1.1", ttl: 300 }]);
    expect(y).toEqual(x);
    expect(z).toEqual({ address: "198.18.1.1", family: 4 });
    expect(s1.queries).toHaveLength(1);
    expect(stats()["coalesced"]).toBe(2);
  });

  it("at most maxPending distinct queries in flight: beyond, ENOBUFS and a drop counted", async () => {
    const { dns, settle, stats } = await setup({ maxPending: 1 });
    const first = dns.resolve4("host.test");
    const e = await failure(dns.resolve4("v4only.test"), settle);
    expect(e.code).toBe("ENOBUFS");
    expect(stats()["drop_pending_full"]).toBe(1);
    expect(await settle(first)).toHaveLength(1);
  });
});

describe("CNAME chains (RFC 1034 §3.6.2)", () => {
  it("are followed inside the answer", async () => {
    const { dns, settle } = await setup();
    expect(await settle(dns.lookup("www.test", { all: true }))).toEqual([
      { address: "198.18.1.1", family: 4 },
      { address: "2001:db8::1:1", family: 6 },
    ]);
  });

  it("a loop or a chain longer than maxCnameDepth is EBADRESP, not cached", async () => {
    const { dns, settle, s1, stats } = await setup({ maxCnameDepth: 2 });
    s1.zone = zone([
      cname("l1.test", "l2.test"),
      cname("l2.test", "l1.test"),
      cname("d1.test", "d2.test"),
      cname("d2.test", "d3.test"),
      cname("d3.test", "d4.test"),
      a("d4.test", "198.18.1.4"),
      cname("d3ok.test", "d3.test"),
    ]);
    s1.udpHandler = (q, _r, send) => {
      // The server's own chase stops at 16 links; send the loop explicitly.
      const name = q.questions[0]!.name;
      if (name === "l1.test") return send(response(q, { answers: [cname("l1.test", "l2.test"), cname("l2.test", "L1.test")] }));
      const answers = [...s1.zone.values()].flat().filter((r) => r.type === 5 || r.data.kind === "A");
      send(response(q, { answers }));
    };
    expect((await failure(dns.resolve4("l1.test"), settle)).code).toBe("EBADRESP");
    expect(stats()["drop_cname_loop"]).toBe(1);
    expect((await failure(dns.resolve4("d1.test"), settle)).code).toBe("EBADRESP");
    expect(stats()["drop_cname_too_deep"]).toBe(1);
    expect(await settle(dns.resolve4("d3ok.test"))).toEqual([{ address: "198.18.1.4", ttl: 300 }]);
    await failure(dns.resolve4("d1.test"), settle);
    expect(s1.queries.filter((q) => q.questions[0]!.name === "d1.test")).toHaveLength(2);
  });
});

describe("lifecycle", () => {
  it("close() fails queries in flight with ECANCELED and leaves no timer armed", async () => {
    const { dns, settle, s1, s2, client } = await setup();
    s1.udpHandler = s2.udpHandler = () => {};
    const before = client.timers.size;
    const p = dns.resolve4("host.test");
    await n!.until(() => s1.queries.length === 1, "query sent");
    expect(client.timers.size).toBe(before + 1);
    dns.close();
    const e = await failure(p, settle);
    expect(e.code).toBe("ECANCELED");
    expect(client.timers.size).toBe(before);
    expect((await failure(dns.resolve4("host.test"), settle)).code).toBe("ECANCELED");
  });
});
