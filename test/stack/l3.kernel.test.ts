// The stack on a real TAP device, with the Linux kernel in a network namespace as the peer:
// ping / ping6 (also with fragmentation), flood ping, UDP echo over both families, neighbour
// tables. Needs root and /dev/net/tun (CI has both).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Netns, privileged, sh } from "../helpers/netns.js";
import { TapNetif } from "../../stack/netif/tap.js";
import { Stack } from "../../stack/stack.js";
import { formatMac } from "../../stack/wire/addr.js";

const run = privileged();

describe.skipIf(!run)("L2/L3 over TAP with the Linux kernel as peer", () => {
  let ns: Netns;
  let stack: Stack;
  const TAP = "paft" + (process.pid % 100000);

  beforeAll(async () => {
    ns = await Netns.create("l3");
    const netif = TapNetif.open(TAP, { netns: ns.path, up: true });
    stack = Stack.create({
      netif,
      mac: "02:00:5e:00:00:02",
      ipv4: { address: "198.18.0.2/24", gateway: "198.18.0.1" },
      ipv6: { address: "2001:db8::2/64" },
    });
    for (const t of ["udp4", "udp6"] as const) {
      const echo = stack.udp.createSocket(t);
      echo.on("message", (m, r) => echo.send(m, r.port, r.address));
      echo.bind(7);
    }
    await ns.kernelSide(TAP);
    await stack.ready();
  });

  afterAll(async () => {
    try {
      await stack?.close();
    } finally {
      await ns?.destroy();
    }
  });

  it("answers ping (RFC 792 echo) from the kernel", async () => {
    const r = await ns.exec("ping", ["-c", "3", "-i", "0.2", "-W", "2", "198.18.0.2"]);
    expect(r.stdout).toMatch(/3 packets transmitted, 3 received/);
  });

  it("the kernel's neighbour table holds the stack's MAC (ARP answered)", async () => {
    const r = await ns.ip("neigh", "show", "dev", TAP);
    expect(r.stdout).toContain("198.18.0.2 lladdr " + formatMac(stack.mac));
  });

  it("answers ping -s 4000: reassembles the kernel's fragments and fragments its reply", async () => {
    const before = stack.stats().ipv4!["reassembled"] ?? 0;
    const r = await ns.exec("ping", ["-c", "2", "-i", "0.2", "-W", "2", "-s", "4000", "198.18.0.2"]);
    expect(r.stdout).toMatch(/2 packets transmitted, 2 received/);
    expect(r.stdout).toMatch(/4008 bytes from 198\.18\.0\.2/);
    expect((stack.stats().ipv4!["reassembled"] ?? 0) - before).toBe(2);
    expect(stack.stats().ipv4!["tx_fragments"] ?? 0).toBeGreaterThanOrEqual(6);
  });

  it("loses nothing under flood ping (2000 echo requests)", async () => {
    const r = await ns.exec("ping", ["-f", "-c", "2000", "-W", "2", "198.18.0.2"], 60_000);
    expect(r.stdout).toMatch(/2000 packets transmitted, 2000 received, 0% packet loss/);
  });

  it("pings the kernel from the stack", async () => {
    const r = await stack.ping("198.18.0.1", { timeoutMs: 2000 });
    expect(r.bytes).toBe(56);
    expect(r.ttl).toBe(64);
  });

  it("echoes UDP over IPv4 (RFC 862) to socat in the namespace", async () => {
    const msg = "paf udp echo " + Date.now();
    const r = await sh("bash", ["-c", `echo '${msg}' | ip netns exec ${ns.name} timeout 5 socat -t 2 - UDP4:198.18.0.2:7`]);
    expect(r.stdout.trim()).toBe(msg);
  });

  it("answers ping -6 (RFC 4443 echo) after NDP resolution (RFC 4861)", async () => {
    const r = await ns.exec("ping", ["-6", "-c", "3", "-i", "0.2", "-W", "2", "2001:db8::2"]);
    expect(r.stdout).toMatch(/3 packets transmitted, 3 received/);
    const n = await ns.ip("-6", "neigh", "show", "dev", TAP);
    expect(n.stdout).toContain("2001:db8::2 lladdr " + formatMac(stack.mac));
  });

  it("answers ping -6 to its link-local address and to ff02::1", async () => {
    const ll = stack.addresses().find((a) => a.startsWith("fe80:"))!;
    const r = await ns.exec("ping", ["-6", "-c", "2", "-i", "0.2", "-W", "2", `${ll}%${TAP}`]);
    expect(r.stdout).toMatch(/2 packets transmitted, 2 received/);
    const m = await ns.exec("ping", ["-6", "-c", "2", "-i", "0.2", "-W", "2", `ff02::1%${TAP}`]);
    expect(m.stdout).toContain(`from ${ll}`);
  });

  it("answers ping -6 -s 4000: IPv6 reassembly (RFC 8200 §4.5) and fragmented replies", async () => {
    const before = stack.stats().ipv6!["reassembled"] ?? 0;
    const r = await ns.exec("ping", ["-6", "-c", "2", "-i", "0.2", "-W", "2", "-s", "4000", "2001:db8::2"]);
    expect(r.stdout).toMatch(/2 packets transmitted, 2 received/);
    expect((stack.stats().ipv6!["reassembled"] ?? 0) - before).toBe(2);
    expect(stack.stats().ipv6!["tx_fragments"] ?? 0).toBeGreaterThanOrEqual(6);
  });

  it("loses nothing under flood ping -6 (2000 requests)", async () => {
    const r = await ns.exec("ping", ["-6", "-f", "-c", "2000", "-W", "2", "2001:db8::2"], 60_000);
    expect(r.stdout).toMatch(/2000 packets transmitted, 2000 received, 0% packet loss/);
  });

  it("pings the kernel over IPv6 from the stack", async () => {
    const r = await stack.ping("2001:db8::1", { timeoutMs: 3000 });
    expect(r.from).toBe("2001:db8::1");
  });

  it("echoes UDP over IPv6 to socat in the namespace", async () => {
    const msg = "paf udp6 echo " + Date.now();
    const r = await sh("bash", ["-c", `echo '${msg}' | ip netns exec ${ns.name} timeout 5 socat -t 2 - UDP6:[2001:db8::2]:7`]);
    expect(r.stdout.trim()).toBe(msg);
  });

  it("survives hostile frames crafted with scapy (overlaps, bad checksums, options, tiny fragments) and keeps answering", async () => {
    const before = stack.stats();
    const script = `
from scapy.all import *
conf.verb = 0
i = "${TAP}"
d = "198.18.0.2"
m = "${formatMac(stack.mac)}"
e = Ether(dst=m)
pk = []
# IPv4 with options (record route + NOPs): must be skipped safely and answered.
pk.append(e/IP(dst=d, options=[IPOption_NOP(), IPOption_RR(routers=["0.0.0.0"]*3)])/ICMP(id=7, seq=1)/b"opt")
# Bad IP header checksum, bad ICMP checksum, truncated total length.
pk.append(e/IP(dst=d, chksum=0x1234)/ICMP())
pk.append(e/IP(dst=d)/ICMP(chksum=0x1234))
pk.append(e/IP(dst=d, len=2000)/ICMP())
# Overlapping fragments (teardrop-style).
pk.append(e/IP(dst=d, id=77, flags="MF", frag=0, proto=1)/(b"A"*64))
pk.append(e/IP(dst=d, id=77, frag=4, proto=1)/(b"B"*64))
# IPv6: unknown next header, hop-by-hop not first, bogus fragment.
pk.append(e/IPv6(dst="2001:db8::2", nh=253)/(b"x"*8))
pk.append(e/IPv6(dst="2001:db8::2")/IPv6ExtHdrDestOpt()/IPv6ExtHdrHopByHop()/ICMPv6EchoRequest())
pk.append(e/IPv6(dst="2001:db8::2")/IPv6ExtHdrFragment(offset=1, m=1, id=5)/(b"z"*3))
for p in pk: sendp(p, iface=i)
`;
    await ns.exec("/usr/bin/python3", ["-c", script], 30_000);
    await new Promise((r) => setTimeout(r, 300));
    const after = stack.stats();
    const d = (l: string, k: string) => (after[l]![k] ?? 0) - (before[l]![k] ?? 0);
    expect(d("ipv4", "drop_bad_checksum")).toBe(1);
    expect(d("icmpv4", "drop_bad_checksum")).toBe(1);
    expect(d("ipv4", "drop_bad_total_length")).toBe(1);
    expect(d("ipv4", "drop_frag_overlap")).toBe(1);
    expect(d("icmpv4", "echo_replies_sent")).toBe(1); // the one with IP options
    expect(d("ipv6", "drop_unknown_next_header")).toBe(1);
    expect(d("ipv6", "drop_hop_by_hop_not_first")).toBe(1);
    expect(d("ipv6", "drop_frag_bad_length")).toBe(1);
    const r = await ns.exec("ping", ["-c", "1", "-W", "2", "198.18.0.2"]);
    expect(r.stdout).toMatch(/1 received/);
  });

  it("answers a closed UDP port with ICMP port unreachable (nc sees ECONNREFUSED)", async () => {
    const r = await ns.exec("python3", [
      "-c",
      `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect(("198.18.0.2", 9))
s.send(b"x")
try:
    s.recv(10)
    print("no error")
except ConnectionRefusedError:
    print("refused")
`,
    ]);
    expect(r.stdout.trim()).toBe("refused");
  });
});
