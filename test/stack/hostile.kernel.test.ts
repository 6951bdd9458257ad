// Hostile input over a real TAP: frames crafted with scapy in the namespace that holds the TAP's
// kernel side, sent to the stack and, where that is cheap, the same frames to the Linux kernel in
// a second namespace (over a veth pair), side by side. Each case asserts the reaction (a reply or
// none, the stack's counter) and, after it, that the stack still answers ping and ping -6.
// Beside test/stack/fuzz.test.ts (random frames) and l3.test.ts's scapy case (malformed headers).
// Needs root, /dev/net/tun and /usr/bin/python3 with scapy.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { Netns, ifname, requirePrivileged } from "../helpers/netns.js";
import { TapNetif } from "../../stack/netif/tap.js";
import { Stack } from "../../stack/stack.js";
import { SYN_CASES, expectedRst, reactionOf } from "../helpers/synmatrix.js";

const run = requirePrivileged();
const PY = "/usr/bin/python3";
const PROBE = join(import.meta.dirname, "scapy_probe.py");
const PAF_MAC = "02:00:5e:00:00:02";

interface Reply {
  round: number;
  len: number;
  ip?: { src: string; dst: string; id: number; df: boolean; proto: number };
  ip6?: { src: string; dst: string; nh: number };
  tcp?: { sport: number; dport: number; flags: number; seq: number; ack: number; len: number };
  icmp?: { type: number; code: number; id: number; seq: number };
  icmp6?: { type: number; code: number; rest: number; target: string | null };
}

type Target = "paf" | "kernel";

describe.skipIf(!run)("hostile input over a TAP, the kernel as peer and as the reference", () => {
  let ns: Netns; // paf's TAP (kernel side 198.18.0.1, 2001:db8::1) and scapy
  let kns: Netns; // the kernel as a target: 198.18.1.2, 2001:db8:1::2 over a veth from ns
  let stack: Stack;
  /** The MSS of the last connection to 8080, as its server saw it. */
  let bulkMss = 0;
  let kernelMac = "";
  const TAP = ifname("ph");

  beforeAll(async () => {
    ns = await Netns.create("hostile");
    kns = await Netns.create("hostk");
    const netif = TapNetif.open(TAP, { netns: ns.path, up: true, offload: true }); // as the CLI opens it
    // initialRtoMs: a half-open connection's SYN-ACKs are then 10x faster than Linux's (0.1 s ...).
    stack = Stack.create({ netif, mac: PAF_MAC, ipv4: { address: "198.18.0.2/24" }, ipv6: { address: "2001:db8::2/64" }, limits: { tcp: { initialRtoMs: 100 } } });
    stack.tcp.listen({ port: 80 }, (f) => f.resume());
    // The congestion-window case: 300 KB to whoever connects to 8080.
    stack.tcp.listen({ port: 8080 }, (f) => {
      bulkMss = f.tcpInfo!.mss;
      f.resume();
      f.end(Buffer.alloc(300_000, 0x61));
    });
    await ns.kernelSide(TAP);
    // Spoofed sources scapy uses: the kernel answers ARP for them, so the stack can reply.
    for (const a of ["198.18.0.11/24", "198.18.0.12/24"]) await ns.ip("addr", "add", a, "dev", TAP);
    await ns.ip("link", "add", "kv0", "type", "veth", "peer", "name", "kv1", "netns", kns.name);
    await ns.ip("addr", "add", "198.18.1.1/24", "dev", "kv0");
    await ns.ip("-6", "addr", "add", "2001:db8:1::1/64", "dev", "kv0", "nodad");
    await ns.ip("link", "set", "kv0", "up");
    await kns.ip("addr", "add", "198.18.1.2/24", "dev", "kv1");
    await kns.ip("-6", "addr", "add", "2001:db8:1::2/64", "dev", "kv1", "nodad");
    await kns.ip("link", "set", "kv1", "up");
    // One ICMPv6 error per second per peer is Linux's default; the comparison sends several.
    await kns.exec("sysctl", ["-qw", "net.ipv6.icmp.ratelimit=0"]);
    kernelMac = (JSON.parse((await kns.ip("-j", "link", "show", "kv1")).stdout) as { address: string }[])[0]!.address;
    // The kernel in ns gets the SYN-ACKs answering scapy's SYNs; its RSTs would end those
    // half-open connections (ours and the kernel target's), so it sends none.
    await ns.exec("nft", ["-f", "-"], { input: "table inet paf_hostile {\n chain out {\n  type filter hook output priority 0;\n  tcp flags & rst == rst drop\n }\n}\n" });
    kns.spawn(PY, ["-c", "import socket, time\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('0.0.0.0', 80))\ns.listen(128)\ntime.sleep(600)"], {
      timeoutMs: 600_000,
    });
    await stack.ready();
  });

  afterAll(async () => {
    try {
      await stack?.close();
    } finally {
      await ns?.destroy();
      await kns?.destroy();
    }
  });

  afterEach(async () => {
    const v4 = await ns.exec("ping", ["-c", "1", "-W", "2", "198.18.0.2"]);
    expect(v4.stdout).toMatch(/1 received/);
    const v6 = await ns.exec("ping", ["-6", "-c", "1", "-W", "2", "2001:db8::2"]);
    expect(v6.stdout).toMatch(/1 received/);
  });

  /** Run a scapy script against a target; DMAC, SRC4, DST4, SRC6, DST6 are defined for it. */
  async function probe(target: Target, script: string, waitS = 0.5): Promise<Reply[]> {
    const paf = target === "paf";
    const vars = paf
      ? { DMAC: PAF_MAC, SRC4: "198.18.0.1", DST4: "198.18.0.2", SRC6: "2001:db8::1", DST6: "2001:db8::2" }
      : { DMAC: kernelMac, SRC4: "198.18.1.1", DST4: "198.18.1.2", SRC6: "2001:db8:1::1", DST6: "2001:db8:1::2" };
    const head = Object.entries(vars)
      .map(([k, v]) => `${k} = ${JSON.stringify(v)}\n`)
      .join("");
    const r = await ns.exec(PY, [PROBE, paf ? TAP : "kv0", vars.DMAC, String(waitS)], { input: head + script, timeoutMs: 60_000 });
    return JSON.parse(r.stdout) as Reply[];
  }

  const counters = () => stack.stats();
  const moved = (before: ReturnType<Stack["stats"]>, layer: string, name: string) => (counters()[layer]![name] ?? 0) - (before[layer]![name] ?? 0);

  it("odd flags on SYNs and scans (RFC 9293 §3.10.7): the stack reacts to each as the kernel does", async () => {
    const cases = SYN_CASES.map((c, i) => ({ ...c, sport: 41000 + i, seq: 1_000_000 + i * 7919, ack: 5_000_000 + i }));
    const script = `
import json
cases = json.loads(${JSON.stringify(JSON.stringify(cases))})
pkts = [Ether(dst=DMAC)/IP(src=SRC4, dst=DST4)/TCP(sport=c["sport"], dport=80 if c["open"] else 81, flags=c["flags"], seq=c["seq"],
        ack=c["ack"] if c["flags"] & 0x10 else 0, window=64240, options=[("MSS", 1460)] if c["flags"] & 2 else [])/(b"x" * c.get("payload", 0))
        for c in cases]
`;
    const before = counters();
    const [paf, kernel] = [await probe("paf", script, 1), await probe("kernel", script, 1)];
    const first = (rs: Reply[], port: number) => rs.find((r) => r.tcp?.dport === port)?.tcp;
    const seen: string[] = [];
    for (const c of cases) {
      const label = `${c.name} to ${c.open ? "an open" : "a closed"} port`;
      for (const [who, rs] of [
        ["paf", paf],
        ["kernel", kernel],
      ] as const) {
        const reply = first(rs, c.sport);
        seen.push(`${label}: ${who} ${reactionOf(reply?.flags)}`);
        if (c.expect === "rst") expect({ label, who, ...pick(reply) }).toEqual({ label, who, ...expectedRst(c, c.seq, c.ack) });
        if (c.expect === "synack") expect({ label, who, ack: reply?.ack }).toEqual({ label, who, ack: c.seq + 1 });
      }
    }
    expect(seen).toEqual(cases.flatMap((c) => ["paf", "kernel"].map((who) => `${c.name} to ${c.open ? "an open" : "a closed"} port: ${who} ${c.expect}`)));
    for (const name of new Set(cases.flatMap((c) => (c.drop ? [c.drop] : [])))) {
      expect({ name, n: moved(before, "tcp", name) }).toEqual({ name, n: cases.filter((c) => c.drop === name).length });
    }
    // Every RST of ours is an atomic datagram with ID 0: nothing for an idle scan to count.
    for (const r of paf.filter((x) => x.tcp && x.tcp.flags & 0x04)) expect(r.ip).toMatchObject({ id: 0, df: true });
  });

  it("RFC 6980: an NS in fragments (8-byte, or atomic) from a spoofed source gets no NA from either; the same NS whole does", async () => {
    const script = `
ns = ICMPv6ND_NS(tgt=DST6)/ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:99")
src = SRC6.replace("::1", "::99")
frags = fragment6(IPv6(src=src, dst=DST6, hlim=255)/IPv6ExtHdrFragment(id=5)/ns, 56)
assert len(frags) == 4
pkts = [[Ether(dst=DMAC)/f for f in frags],
        [Ether(dst=DMAC)/IPv6(src=src, dst=DST6, hlim=255)/IPv6ExtHdrFragment(id=6, m=0, offset=0)/ns],
        [Ether(dst=DMAC)/IPv6(src=src, dst=DST6, hlim=255)/ns]]
`;
    const before = counters();
    // NAs to the spoofed source only (the kernel in ns may probe our address meanwhile).
    const nas = (rs: Reply[]) => [0, 1, 2].map((round) => rs.filter((r) => r.round === round && r.icmp6?.type === 136 && r.ip6!.dst.endsWith("::99")).length);
    expect(nas(await probe("paf", script))).toEqual([0, 0, 1]);
    expect(nas(await probe("kernel", script))).toEqual([0, 0, 1]);
    expect(moved(before, "ipv6", "drop_ndp_in_fragment")).toBe(2);
  });

  it("RFC 6980: an RA in fragments does not change the hop limit or add a router", async () => {
    const script = `
ra = ICMPv6ND_RA(chlim=200, routerlifetime=1800)/ICMPv6NDOptPrefixInfo(prefix="2001:db8:77::", prefixlen=64, validlifetime=3600, preferredlifetime=1800)
frags = fragment6(IPv6(src="fe80::99", dst="ff02::1", hlim=255)/IPv6ExtHdrFragment(id=7)/ra, 64)
assert len(frags) > 1
pkts = [Ether(dst="33:33:00:00:00:01")/f for f in frags]
`;
    const before = counters();
    await probe("paf", script, 0.3);
    expect(moved(before, "ipv6", "drop_ndp_in_fragment")).toBe(1);
    expect(moved(before, "ndp", "ra_received")).toBe(0);
    expect(stack.ipv6!.hopLimit).toBe(64);
    expect(stack.ndp!.defaultRouter()).toBeUndefined();
  });

  it("RFC 8200 §4.5 and RFC 2675: fragment and jumbo errors get the kernel's parameter problems, pointer for pointer", async () => {
    const script = `
e = Ether(dst=DMAC)
pkts = [
  [e/IPv6(src=SRC6, dst=DST6)/IPv6ExtHdrFragment(nh=17, offset=65528 // 8, m=0, id=9)/(b"y" * 16)],
  [e/IPv6(src=SRC6, dst=DST6)/IPv6ExtHdrFragment(nh=17, offset=1, m=1, id=10)/(b"z" * 13)],
  [e/IPv6(src=SRC6, dst=DST6, plen=0)/IPv6ExtHdrHopByHop(nh=58, options=[Jumbo(jumboplen=24)])/ICMPv6EchoRequest(id=7, seq=1)],
  [e/IPv6(src=SRC6, dst=DST6)/IPv6ExtHdrHopByHop(nh=58, options=[Jumbo(jumboplen=70000)])/ICMPv6EchoRequest(id=7, seq=2)],
  [e/IPv6(src=SRC6, dst=DST6, plen=0)/IPv6ExtHdrHopByHop(nh=58, options=[Jumbo(jumboplen=70000)])/ICMPv6EchoRequest(id=7, seq=3)],
  [e/IPv6(src=SRC6, dst=DST6, plen=0)/IPv6ExtHdrHopByHop(nh=58, options=[PadN(optdata=b"\\0\\0\\0\\0")])/ICMPv6EchoRequest(id=7, seq=4)],
]
`;
    const before = counters();
    const answers = (rs: Reply[]) =>
      [0, 1, 2, 3, 4, 5].map((round) => {
        const r = rs.find((x) => x.round === round && x.icmp6 && (x.icmp6.type === 4 || x.icmp6.type === 129));
        return r ? (r.icmp6!.type === 4 ? `parameter problem ${r.icmp6!.code} @${r.icmp6!.rest}` : "echo reply") : "none";
      });
    const paf = answers(await probe("paf", script, 0.4));
    const kernel = answers(await probe("kernel", script, 0.4));
    const rfc = ["parameter problem 0 @42", "parameter problem 0 @4", "parameter problem 0 @44", "parameter problem 0 @42", "none"];
    expect(paf.slice(0, 5)).toEqual(rfc);
    expect(kernel.slice(0, 5)).toEqual(rfc);
    // Payload Length 0 without a Jumbo Payload option: an error by RFC 2675 §3, which we send;
    // Linux instead takes the frame's length and answers the echo (a deliberate difference).
    expect(paf[5]).toBe("parameter problem 0 @4");
    expect(kernel[5]).toBe("echo reply");
    for (const name of ["drop_frag_too_big", "drop_frag_bad_length", "drop_jumbo_length", "drop_jumbo_with_payload_length", "drop_jumbogram_truncated", "drop_jumbo_option_missing"]) {
      expect({ name, n: moved(before, "ipv6", name) }).toEqual({ name, n: 1 });
    }
  });

  it("a half-open connection sends its SYN-ACK 6 times (Linux's tcp_synack_retries = 5), then is gone", async () => {
    const script = `pkts = [Ether(dst=DMAC)/IP(src="198.18.0.11", dst=DST4)/TCP(sport=45000, dport=80, flags="S", seq=77, window=64240, options=[("MSS", 1460)])]`;
    const rs = await probe("paf", script, 8);
    const synacks = rs.filter((r) => r.tcp?.dport === 45000 && r.tcp.flags === 0x12);
    expect(synacks.length).toBe(6); // at 0, 0.1, 0.3, 0.7, 1.5, 3.1 s with a 100 ms initial RTO; gone at 6.3 s
    expect(stack.tcp.layer.connections().filter((t) => t.remotePort === 45000)).toEqual([]);
  });

  it("IPv4 IDs: no shared counter to read (idle scan): RSTs carry 0, echo replies to one host skip nothing for another's", async () => {
    const script = `
e = Ether(dst=DMAC)
rounds = []
for k in range(5):
    r = [e/IP(src="198.18.0.11", dst=DST4)/TCP(sport=46000 + k, dport=81, flags="SA", seq=1, ack=1)]
    r.append(e/IP(src="198.18.0.11", dst=DST4)/ICMP(id=0x11, seq=2 * k))
    r += [e/IP(src="198.18.0.12", dst=DST4)/ICMP(id=0x12, seq=k * 100 + j) for j in range(20)]
    r.append(e/IP(src="198.18.0.11", dst=DST4)/ICMP(id=0x11, seq=2 * k + 1))
    rounds.append(r)
pkts = rounds
`;
    const rs = await probe("paf", script, 0.3);
    const rsts = rs.filter((r) => r.tcp && r.tcp.flags & 0x04);
    expect(rsts.length).toBe(5);
    for (const r of rsts) expect(r.ip).toMatchObject({ id: 0, df: true });
    const steps = [0, 1, 2, 3, 4].map((k) => {
      const ids = rs.filter((r) => r.round === k && r.icmp?.type === 0 && r.ip?.dst === "198.18.0.11").map((r) => r.ip!.id);
      expect(ids.length).toBe(2);
      return (ids[1]! - ids[0]! + 0x10000) & 0xffff;
    });
    // One global counter moves by exactly 21 (20 replies to .12 in between); ours does not show them.
    expect(steps.filter((s) => s === 21).length).toBeLessThan(3);
  });

  it("the first flight after a passive open is exactly 10 x MSS: a TSO burst never ends in a 1-byte segment", async () => {
    const script = `
def action():
    import socket
    s = socket.create_connection((DST4, 8080), timeout=5)
    got = 0
    while True:
        b = s.recv(65536)
        if not b: break
        got += len(b)
    s.close()
    assert got == 300000, got
`;
    const rs = await probe("paf", script, 0.3);
    const data = rs.filter((r) => r.tcp?.sport === 8080 && r.tcp.len > 0).map((r) => r.tcp!.len);
    // (The connection is in TIME-WAIT by now, a record without an MSS: its server noted it.)
    expect(bulkMss).toBeGreaterThan(1000);
    expect(data.length).toBeGreaterThan(1);
    expect(data[0]).toBe(10 * bulkMss); // one TSO super-frame: the initial window, not a byte more
    expect(data.slice(0, -1).filter((n) => n < bulkMss)).toEqual([]);
  });
});

function pick(t: Reply["tcp"]): { flags?: number; seq?: number; ack?: number } {
  return t ? { flags: t.flags, seq: t.seq, ack: t.ack } : {};
}
