// An idle stack (one of thousands of tenants) holds no per-stack tables: the layers make their
// Maps, Sets, rate limiters and hash states at first use. These tests check that an idle stack
// has none, and that a stack which never used a table works once it does.
import { afterEach, describe, expect, it } from "vitest";
import { Stack } from "../../stack/stack.js";
import { VirtualSwitch } from "../../stack/netif/vswitch.js";
import { SeededRandom } from "../../stack/core/random.js";
import type { TcpFlow } from "../../stack/tcp/flow.js";
import { DnsResolver } from "../../stack/dns.js";
import { StackNet } from "../../stack/net.js";
import { PingTable } from "../../stack/ping.js";

const open: Stack[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

function pair(seed = 1) {
  const sw = new VirtualSwitch();
  const server = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" }, random: new SeededRandom(seed) });
  const client = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.1/24" }, random: new SeededRandom(seed + 1) });
  open.push(server, client);
  return { server, client };
}

/** A private field, read for the test's sake only. */
const field = (o: object, name: string): unknown => (o as Record<string, unknown>)[name];

describe("an idle stack holds no tables", () => {
  it("no Map, Set, rate limiter, hash state or connection environment until first use", () => {
    const { server } = pair();
    const tcp = server.tcp.layer;
    for (const name of ["connsMap", "listenersMap", "segScratch", "envObj", "rstBucketObj", "challengeBucketObj", "hashes", "synRateObj"]) expect(field(tcp, name), `tcp.${name}`).toBeUndefined();
    for (const name of ["reassemblerObj", "pmtuMap", "loopObj", "groupsMap"]) expect(field(server.ipv4, name), `ipv4.${name}`).toBeUndefined();
    expect(field(server.eth, "multicastMap")).toBeUndefined();
    expect(field(server.eth, "multicastKey")).toBeTypeOf("string"); // all-hosts' MAC
    expect(field(server.udp, "portsMap")).toBeUndefined();
    expect(field(server.igmp, "groupsMap")).toBeUndefined();
    expect(field(server.icmpv4, "bucketObj")).toBeUndefined();
    expect(field(field(server.arp, "cache") as object, "tableMap")).toBeUndefined();
    // Nor a DNS resolver (without StackOptions.dns), node:net's shape or a ping table.
    const held = (o: object) => Object.values(o) as unknown[];
    expect(held(server).filter((v) => v instanceof DnsResolver || v instanceof StackNet)).toEqual([]);
    expect(held(server.icmpv4).filter((v) => v instanceof PingTable)).toEqual([]);
    expect(server.stats().dns).toEqual({ cache_entries: 0 });
  });
});

describe("a stack that never used a table, then uses it", () => {
  it("DNS, node:net and ping: made at first use, and working; DNS made after close fails as it would have", async () => {
    const { server, client } = pair(3);
    expect(await client.dns.lookup("198.18.0.2")).toEqual({ address: "198.18.0.2", family: 4 });
    expect(field(client, "dnsObj")).toBeDefined();
    const srv = server.net.createServer((s) => s.end("net\n")).listen(81);
    const sock = client.net.connect(81, "198.18.0.2");
    let got = "";
    for await (const d of sock) got += d;
    expect(got).toBe("net\n");
    srv.close();
    expect((await client.ping("198.18.0.2")).from).toBe("198.18.0.2");
    expect(field(client.icmpv4, "pingsObj")).toBeDefined();
    // A resolver asked for only after the stack closed is closed too.
    await server.close();
    await expect(server.dns.lookup("example.test")).rejects.toEqual(expect.objectContaining({ code: "ERR_STACK_CLOSED" }));
  });

  it("TCP: the first listen and connect make the tables, a connection runs", async () => {
    const { server, client } = pair(7);
    server.tcp.listen({ port: 80 }, (f: TcpFlow) => f.end("hello\n"));
    const f = await client.tcp.connect({ host: "198.18.0.2", port: 80, timeout: 3000 });
    let s = "";
    for await (const d of f) s += d;
    expect(s).toBe("hello\n");
    for (const name of ["connsMap", "listenersMap", "segScratch", "envObj", "hashes"]) expect(field(server.tcp.layer, name), `tcp.${name}`).toBeDefined();
    expect(server.stats().tcp!["passive_opens"]).toBe(1);
  });

  it("multicast: all-hosts in the Ethernet layer's own slot, other groups in its Map, joins and leaves counted", () => {
    const { server } = pair();
    const eth = server.eth;
    const g1 = new Uint8Array([224, 1, 2, 3]);
    const allHosts = new Uint8Array([224, 0, 0, 1]);
    server.ipv4.joinGroup(g1);
    expect((field(eth, "multicastMap") as Map<string, number>).size).toBe(1);
    // A socket joining all-hosts too, then leaving: the stack's own membership stays.
    server.ipv4.joinGroup(allHosts);
    server.ipv4.leaveGroup(allHosts);
    expect(field(eth, "multicastRefs")).toBe(1);
    expect(field(server.ipv4, "allHostsRefs")).toBe(1);
    // The last leave frees the slot; a new group takes it, never one already in the Map.
    server.ipv4.leaveGroup(allHosts);
    expect(field(eth, "multicastKey")).toBeUndefined();
    server.ipv4.joinGroup(g1); // counted by the IP layer: the MAC is joined once
    expect(field(eth, "multicastKey")).toBeUndefined();
    expect((field(eth, "multicastMap") as Map<string, number>).get("\u0001\u0000\u005e\u0001\u0002\u0003")).toBe(1);
    server.ipv4.joinGroup(allHosts);
    expect(field(eth, "multicastRefs")).toBe(1);
    server.ipv4.leaveGroup(g1);
    server.ipv4.leaveGroup(g1);
    expect((field(eth, "multicastMap") as Map<string, number>).size).toBe(0);
  });

  it("UDP: the first bind makes the port table; datagrams arrive", async () => {
    const { server, client } = pair();
    const rx = server.udp.createSocket("udp4");
    const got = new Promise<string>((resolve) => rx.on("message", (m: Buffer) => resolve(m.toString())));
    await new Promise<void>((r) => rx.bind(5353, r));
    const tx = client.udp.createSocket("udp4");
    tx.send("ping", 5353, "198.18.0.2");
    expect(await got).toBe("ping");
    rx.close();
    tx.close();
  });
});
