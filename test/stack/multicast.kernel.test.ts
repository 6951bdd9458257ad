// UDP broadcast and IPv4/IPv6 multicast with the Linux kernel as the peer: the TAP is a port of
// a bridge in a namespace, with multicast snooping and the bridge's own IGMP/MLD querier, so the
// kernel learns our groups from our IGMPv2 and MLDv2 reports (`bridge mdb show`), queries us,
// forgets a group when we leave, and Python sockets in the namespace join groups, send to ours
// and receive what we send (with the TTL / hop limit it arrived with). Needs root and /dev/net/tun.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ifname, requirePrivileged, useNetns, waitForOutput } from "../helpers/netns.js";
import { TapNetif } from "../../stack/netif/tap.js";
import { Stack } from "../../stack/stack.js";
import type { UdpSocket } from "../../stack/udp.js";

const run = requirePrivileged();
const PY = "/usr/bin/python3";

/** A Python receiver joined to `group` on the bridge, printing "ready", then "<data> <from> <ttl>" per datagram. */
function receiver(family: 4 | 6, port: number, group: string | undefined): string {
  return family === 4
    ? `
import socket,struct
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind(("0.0.0.0",${port}))
${group ? `s.setsockopt(socket.IPPROTO_IP,socket.IP_ADD_MEMBERSHIP,socket.inet_aton("${group}")+socket.inet_aton("198.18.0.1"))` : ""}
s.setsockopt(socket.IPPROTO_IP,12,1)  # IP_RECVTTL (Linux)
print("ready",flush=True)
while True:
    d,anc,_,a=s.recvmsg(2000,64)
    ttl=[struct.unpack("i",x)[0] for (_,t,x) in anc if t==socket.IP_TTL]
    print(d.decode(),a[0],ttl[0] if ttl else -1,flush=True)
`
    : `
import socket,struct
s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind(("::",${port}))
s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_JOIN_GROUP,socket.inet_pton(socket.AF_INET6,"${group}")+struct.pack("I",socket.if_nametoindex("br0")))
s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_RECVHOPLIMIT,1)
print("ready",flush=True)
while True:
    d,anc,_,a=s.recvmsg(2000,64)
    hl=[struct.unpack("i",x)[0] for (_,t,x) in anc if t==socket.IPV6_HOPLIMIT]
    print(d.decode(),a[0],hl[0] if hl else -1,flush=True)
`;
}

/** Python sending one datagram to `dst` from the bridge (multicast interface br0, broadcast allowed). */
function sender(family: 4 | 6, dst: string, port: number, text: string): string {
  return family === 4
    ? `import socket
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET,socket.SO_BROADCAST,1)
s.setsockopt(socket.IPPROTO_IP,socket.IP_MULTICAST_IF,socket.inet_aton("198.18.0.1"))
s.sendto(b"${text}",("${dst}",${port}))`
    : `import socket
s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_MULTICAST_IF,socket.if_nametoindex("br0"))
s.sendto(b"${text}",("${dst}",${port}))`;
}

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(!run)("multicast and broadcast with the kernel over a TAP", () => {
  const ctx = useNetns("mcast");
  let stack: Stack;
  const sockets: UdpSocket[] = [];
  const mdb = async () => (await ctx.ns.exec("bridge", ["mdb", "show"])).stdout;
  const udp = (type: "udp4" | "udp6", port: number) => {
    const s = stack.udp.createSocket(type);
    s.bind(port);
    sockets.push(s);
    return s;
  };
  let tap: string;

  beforeAll(async () => {
    const ns = ctx.ns;
    const netif = TapNetif.open(ifname("pmc"), { netns: ns.path, up: true });
    tap = netif.name;
    // Snooping on, querier off until br0's link-local address is usable (MLD queries from :: are
    // invalid, RFC 3810 §5.1.14, and a host drops them).
    await ns.ip(
      "link",
      "add",
      "br0",
      "type",
      "bridge",
      "mcast_snooping",
      "1",
      "mcast_querier",
      "0",
      "mcast_mld_version",
      "2",
      "mcast_igmp_version",
      "2",
      "mcast_startup_query_interval",
      "100",
      "mcast_query_response_interval",
      "100",
      "mcast_last_member_interval",
      "50",
    );
    await ns.ip("link", "set", tap, "master", "br0");
    await ns.ip("link", "set", tap, "up");
    await ns.ip("link", "set", "br0", "up");
    await ns.ip("addr", "add", "198.18.0.1/24", "dev", "br0");
    await ns.ip("-6", "addr", "add", "2001:db8::1/64", "dev", "br0", "nodad");
    stack = Stack.create({ netif, ipv4: { address: "198.18.0.2/24" }, ipv6: { address: "2001:db8::2/64" } });
    await stack.ready();
    await until(async () => /inet6 fe80::\S+ scope link\s*\n/.test((await ns.ip("-6", "addr", "show", "dev", "br0")).stdout), "br0's link-local address");
  });

  afterAll(async () => {
    for (const s of sockets) s.close();
    await stack?.close();
  });

  it("the kernel's snooping bridge learns our IPv4 and IPv6 groups from IGMPv2 and MLDv2 reports, and its queries are answered", async () => {
    const s4 = udp("udp4", 5000);
    const s6 = udp("udp6", 5000);
    s4.addMembership("239.1.2.3");
    s6.addMembership("ff15::1234");
    const port = new RegExp(`port ${tap} grp`);
    await until(async () => {
      const m = await mdb();
      return new RegExp(`${port.source} 239\\.1\\.2\\.3`).test(m) && new RegExp(`${port.source} ff15::1234`).test(m);
    }, "the bridge to learn 239.1.2.3 and ff15::1234 on our port");
    // Our solicited-node group, so the snooping bridge forwards neighbour solicitations to us.
    expect(await mdb()).toMatch(new RegExp(`${port.source} ff02::1:ff00:2`));
    await ctx.ns.ip("link", "set", "br0", "type", "bridge", "mcast_querier", "1");
    await until(() => (stack.stats()["igmp"]!["queries_received"] ?? 0) > 0 && (stack.stats()["mld"]!["queries_received"] ?? 0) > 0, "the bridge's IGMP and MLD queries");
    await until(() => (stack.stats()["igmp"]!["reports_sent"] ?? 0) >= 2 && (stack.stats()["mld"]!["reports_sent"] ?? 0) >= 1, "our answers to them");
    expect(stack.stats()["mld"]!["drop_query_not_link_local"] ?? 0).toBe(0);
  }, 30_000);

  it("datagrams the kernel sends to our groups arrive; after dropMembership the bridge forgets us (Leave, CHANGE_TO_INCLUDE)", async () => {
    const s4 = udp("udp4", 5010);
    const s6 = udp("udp6", 5010);
    s4.addMembership("239.1.2.5");
    s6.addMembership("ff15::5");
    const got: string[] = [];
    s4.on("message", (m, r) => got.push(`${m} ${r.address}`));
    s6.on("message", (m, r) => got.push(`${m} ${r.address}`));
    await until(async () => /grp 239\.1\.2\.5/.test(await mdb()) && /grp ff15::5/.test(await mdb()), "the bridge to learn the groups");
    await ctx.ns.exec(PY, ["-c", sender(4, "239.1.2.5", 5010, "to-group-4")]);
    await ctx.ns.exec(PY, ["-c", sender(6, "ff15::5", 5010, "to-group-6")]);
    await until(() => got.length === 2, "both datagrams");
    expect(got.sort()).toEqual(["to-group-4 198.18.0.1", "to-group-6 2001:db8::1"]);
    s4.dropMembership("239.1.2.5");
    s6.dropMembership("ff15::5");
    await until(async () => !new RegExp(`port ${tap} grp (239\\.1\\.2\\.5|ff15::5)`).test(await mdb()), "the bridge to forget our groups", 15_000);
    expect(stack.stats()["igmp"]!["leaves_sent"]).toBeGreaterThanOrEqual(1);
  }, 30_000);

  it("the kernel as a member hears what we send to its group, with TTL / hop limit 1 by default", async () => {
    const r4 = ctx.ns.spawn(PY, ["-c", receiver(4, 5020, "239.1.2.9")], { timeoutMs: 60_000 });
    const r6 = ctx.ns.spawn(PY, ["-c", receiver(6, 5020, "ff15::9")], { timeoutMs: 60_000 });
    await Promise.all([waitForOutput(r4, /ready/), waitForOutput(r6, /ready/)]);
    // The snooping bridge delivers a group's traffic to the host once it knows the host joined.
    await until(async () => /port br0 grp 239\.1\.2\.9/.test(await mdb()) && /port br0 grp ff15::9/.test(await mdb()), "the bridge to register the kernel's joins");
    const tx4 = udp("udp4", 6020);
    const tx6 = udp("udp6", 6020);
    const seen4 = waitForOutput(r4, /from-paf-4 (\S+) (\d+)/);
    const seen6 = waitForOutput(r6, /from-paf-6 (\S+) (\d+)/);
    tx4.send("from-paf-4", 5020, "239.1.2.9");
    tx6.send("from-paf-6", 5020, "ff15::9");
    const [m4, m6] = await Promise.all([seen4, seen6]);
    expect([m4[1], m4[2]]).toEqual(["198.18.0.2", "1"]);
    expect([m6[1], m6[2]]).toEqual(["2001:db8::2", "1"]);
    tx4.setMulticastTTL(7);
    const again = waitForOutput(r4, /again (\S+) (\d+)/);
    tx4.send("again", 5020, "239.1.2.9");
    expect((await again)[2]).toBe("7");
    r4.kill();
    r6.kill();
  }, 30_000);

  it("broadcast both ways: ours needs setBroadcast (EACCES before), the kernel's reaches a socket on the port", async () => {
    const r = ctx.ns.spawn(PY, ["-c", receiver(4, 5030, undefined)], { timeoutMs: 60_000 });
    await waitForOutput(r, /ready/);
    const tx = udp("udp4", 6030);
    const denied = await new Promise<Error | null>((res) => tx.send("x", 5030, "198.18.0.255", res));
    expect(denied).toMatchObject({ code: "EACCES" });
    tx.setBroadcast(true);
    const seen = waitForOutput(r, /bcast-(\d) 198\.18\.0\.2[\s\S]*bcast-(\d) 198\.18\.0\.2/);
    tx.send("bcast-1", 5030, "198.18.0.255");
    tx.send("bcast-2", 5030, "255.255.255.255");
    await seen;
    r.kill();
    const rx = udp("udp4", 5031);
    const got: string[] = [];
    rx.on("message", (m, ri) => got.push(`${m} ${ri.address}`));
    await ctx.ns.exec(PY, ["-c", sender(4, "198.18.0.255", 5031, "kernel-bcast")]);
    await until(() => got.length === 1, "the kernel's broadcast");
    expect(got).toEqual(["kernel-bcast 198.18.0.1"]);
  }, 30_000);
});
