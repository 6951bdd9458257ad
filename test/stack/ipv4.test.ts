// IPv4, ARP, ICMPv4 and UDP behaviour of one stack, driven frame by frame.
import { describe, expect, it } from "vitest";
import { Stack } from "../../stack/stack.js";
import { VirtualClock } from "../../stack/core/clock.js";
import { SeededRandom } from "../../stack/core/random.js";
import { parseArp } from "../../stack/wire/arp.js";
import { CaptureNetif } from "../helpers/capture.js";
import { PEER_IP, PEER_MAC, STACK_IP, STACK_MAC, arpReply, arpRequest, decode4, fragments, icmpEcho, ipv4Frame, udpDatagram } from "../helpers/frames.js";
import { parseIPv4 } from "../../stack/wire/addr.js";
import type { IpPacket } from "../../stack/ip.js";

function setup(limits = {}) {
  const netif = new CaptureNetif();
  const clock = new VirtualClock();
  const stack = Stack.create({ netif, mac: STACK_MAC, ipv4: { address: "198.18.0.2/24", gateway: "198.18.0.1" }, clock, random: new SeededRandom(1), limits });
  netif.take(); // gratuitous ARP
  // Teach the stack the peer's MAC so replies go out at once.
  netif.inject(arpReply());
  netif.take();
  return { netif, clock, stack };
}

describe("RFC 826 ARP", () => {
  it("announces the address with a gratuitous ARP at start", () => {
    const netif = new CaptureNetif();
    Stack.create({ netif, mac: STACK_MAC, ipv4: { address: "198.18.0.2/24" }, clock: new VirtualClock(), random: new SeededRandom(1) });
    const [f] = netif.take();
    const a = parseArp(f!.subarray(14));
    if (typeof a === "string") throw new Error(a);
    expect(a.op).toBe(1);
    expect(a.spa).toEqual(STACK_IP);
    expect(a.tpa).toEqual(STACK_IP);
  });

  it("answers a request for our address and ignores others", () => {
    const { netif } = setup();
    netif.inject(arpRequest(STACK_IP));
    const [reply] = netif.take();
    const a = parseArp(reply!.subarray(14));
    if (typeof a === "string") throw new Error(a);
    expect(a.op).toBe(2);
    expect(a.sha).toEqual(STACK_MAC);
    expect(a.tha).toEqual(PEER_MAC);
    netif.inject(arpRequest(parseIPv4("198.18.0.99")));
    expect(netif.take()).toHaveLength(0);
  });

  it("queues packets while resolving, sends them on reply, gives up after retries", async () => {
    const netif = new CaptureNetif();
    const clock = new VirtualClock();
    const stack = Stack.create({ netif, mac: STACK_MAC, ipv4: { address: "198.18.0.2/24" }, clock, random: new SeededRandom(1), limits: { arp: { pendingPerEntry: 2 } } });
    netif.take();
    const s = stack.udp.createSocket("udp4");
    const errors: string[] = [];
    s.on("error", (e: Error & { code?: string }) => errors.push(e.code ?? ""));
    for (let i = 0; i < 3; i++) s.send(new Uint8Array([i]), 9, "198.18.0.1");
    const req = netif.take();
    expect(req).toHaveLength(1); // one request, datagrams queued
    expect(stack.stats().arp!["drop_pending_full"]).toBe(1);
    await new Promise((r) => setTimeout(r, 0));
    expect(errors).toEqual(["ENOBUFS"]);
    netif.inject(arpReply());
    const sent = netif.take().map(decode4);
    expect(sent.map((d) => d.udp?.payload[0])).toEqual([0, 1]);
    // Unanswered resolution: 3 requests a second apart (Linux's mcast_solicit), then the queued
    // datagram is dropped and its sender told (host unreachable).
    s.send(new Uint8Array([9]), 9, "198.18.0.77");
    for (let i = 0; i < 5; i++) clock.advance(1000);
    const reqs = netif.take();
    expect(reqs).toHaveLength(3);
    for (const r of reqs) expect(parseArp(r.subarray(14))).toMatchObject({ op: 1 });
    expect(stack.stats().arp!["drop_unresolved"]).toBe(1);
    expect(stack.stats().arp!["resolution_failed"]).toBe(1);
    expect(stack.stats().icmpv4!["link_failures"]).toBe(1);
  });

  it("queues up to pendingBytesPerEntry bytes per unresolved neighbour, and by default 40 datagrams sent at once all wait for the reply", () => {
    const netif = new CaptureNetif();
    const stack = Stack.create({ netif, mac: STACK_MAC, ipv4: { address: "198.18.0.2/24" }, clock: new VirtualClock(), random: new SeededRandom(1), limits: { arp: { pendingBytesPerEntry: 300 } } });
    netif.take();
    const s = stack.udp.createSocket("udp4");
    s.on("error", () => {});
    // Frames of 14 + 20 + 8 + 100 = 142 bytes: two fit in 300 bytes, the third does not.
    for (let i = 0; i < 3; i++) s.send(new Uint8Array(100).fill(i), 9, "198.18.0.1");
    expect(stack.stats().arp!["drop_pending_full"]).toBe(1);
    netif.take();
    netif.inject(arpReply());
    expect(netif.take().map((f) => decode4(f).udp?.payload[0])).toEqual([0, 1]);

    // The defaults (64 packets, 64 KiB): a program opening a few dozen connections to a host not
    // yet resolved loses none of their SYNs (16 before: the rest waited a second for a retransmission).
    const n2 = new CaptureNetif();
    const st2 = Stack.create({ netif: n2, mac: STACK_MAC, ipv4: { address: "198.18.0.2/24" }, clock: new VirtualClock(), random: new SeededRandom(2) });
    n2.take();
    const s2 = st2.udp.createSocket("udp4");
    for (let i = 0; i < 40; i++) s2.send(new Uint8Array([i]), 9, "198.18.0.1");
    expect(st2.stats().arp!["drop_pending_full"]).toBeUndefined();
    n2.take();
    n2.inject(arpReply());
    expect(n2.take().map((f) => decode4(f).udp?.payload[0])).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });

  it("neighbour unreachability detection (RFC 4861 §7.3 states, as Linux runs ARP): REACHABLE, STALE, DELAY, unicast PROBEs, removal", () => {
    const { netif, clock, stack } = setup();
    const peer = (stack.arp.entry(0xc6120001) ?? { state: "none" }).state;
    expect(peer).toBe("REACHABLE"); // the reply to a request confirmed it
    const s = stack.udp.createSocket("udp4");
    clock.advance(46_000); // past ReachableTime (at most 1.5 x 30 s)
    s.send(new Uint8Array([1]), 9, "198.18.0.1");
    expect(netif.take().map(decode4)[0]!.udp?.payload[0]).toBe(1); // sent at once with the MAC we hold
    expect(stack.arp.entry(0xc6120001)!.state).toBe("DELAY");
    clock.advance(5000); // DELAY_FIRST_PROBE_TIME without confirmation: unicast probes
    const probe = netif.take();
    expect(probe).toHaveLength(1);
    expect(probe[0]!.subarray(0, 6)).toEqual(PEER_MAC); // to the MAC we hold, not broadcast
    expect(parseArp(probe[0]!.subarray(14))).toMatchObject({ op: 1, tpa: PEER_IP });
    expect(stack.arp.entry(0xc6120001)!.state).toBe("PROBE");
    // An answer confirms it again.
    netif.inject(arpReply());
    expect(stack.arp.entry(0xc6120001)!.state).toBe("REACHABLE");
    // Silence: three probes, then the entry is gone.
    clock.advance(46_000);
    s.send(new Uint8Array([2]), 9, "198.18.0.1");
    netif.take();
    for (let i = 0; i < 9; i++) clock.advance(1000);
    expect(netif.take()).toHaveLength(3);
    expect(stack.arp.entry(0xc6120001)).toBeUndefined();
    expect(stack.stats().arp!["unreachable"]).toBe(1);
  });

  it("an unsolicited request or gratuitous ARP refreshes an entry as STALE, never as REACHABLE", () => {
    const { netif, stack } = setup();
    const other = new Uint8Array([2, 0, 0, 0, 0, 9]);
    netif.inject(arpRequest(STACK_IP, other)); // the peer (new MAC) asks for us
    const e = stack.arp.entry(0xc6120001)!;
    expect(e.state).toBe("STALE");
    expect([...e.mac!]).toEqual([...other]);
    netif.take();
  });

  it("keeps the cache bounded", () => {
    const { netif, stack } = setup({ arp: { cacheSize: 4 } });
    for (let i = 10; i < 30; i++) netif.inject(arpRequest(STACK_IP, new Uint8Array([2, 0, 0, 0, 1, i]), new Uint8Array([198, 18, 0, i])));
    expect(stack.arp.entries().length).toBeLessThanOrEqual(4);
  });
});

describe("RFC 792 ICMP echo", () => {
  it("replies to an echo request with the same identifier, sequence and data", () => {
    const { netif } = setup();
    const data = new Uint8Array(56).map((_, i) => i);
    netif.inject(ipv4Frame(1, icmpEcho(8, 0x1234, 7, data)));
    const [r] = netif.take().map(decode4);
    expect(r!.ip.dst).toEqual(PEER_IP);
    expect(r!.icmp!.type).toBe(0);
    expect(r!.icmp!.rest).toBe((0x1234 << 16) | 7);
    expect(r!.icmp!.body).toEqual(data);
  });

  it("ignores echo to the broadcast address (like Linux's icmp_echo_ignore_broadcasts)", () => {
    const { netif, stack } = setup();
    netif.inject(ipv4Frame(1, icmpEcho(8, 1, 1, new Uint8Array(8)), { dst: parseIPv4("198.18.0.255"), dstMac: new Uint8Array(6).fill(255) }));
    expect(netif.take()).toHaveLength(0);
    expect(stack.stats().icmpv4!["drop_echo_broadcast_ignored"]).toBe(1);
  });

  it("RFC 791 reassembles a fragmented echo request and fragments the reply to the MTU", () => {
    const { netif } = setup();
    const data = new Uint8Array(4000).map((_, i) => (i * 7) & 0xff);
    const msg = icmpEcho(8, 1, 1, data);
    const frags = fragments(1, msg, 1480, 4242);
    // Deliver out of order.
    for (const f of [frags[2]!, frags[0]!, frags[1]!]) netif.inject(f);
    const out = netif.take().map(decode4);
    expect(out.length).toBe(3);
    for (const o of out) expect(o.ip.totalLen).toBeLessThanOrEqual(1500);
    const ident = out[0]!.ip.ident;
    expect(out.every((o) => o.ip.ident === ident)).toBe(true);
    const whole = new Uint8Array(8 + 4000);
    for (const o of out) whole.set(o.ip.payload, o.ip.fragOffset);
    expect(out[out.length - 1]!.ip.moreFragments).toBe(false);
    expect(whole[0]).toBe(0);
    expect(whole.subarray(8)).toEqual(data);
  });

  it("drops a datagram with overlapping fragments (RFC 5722 policy) and delivers nothing", () => {
    const { netif, stack } = setup();
    const msg = icmpEcho(8, 1, 2, new Uint8Array(3000));
    netif.inject(ipv4Frame(1, msg.subarray(0, 1480), { ident: 9, moreFragments: true }));
    netif.inject(ipv4Frame(1, msg.subarray(1472, 2952), { ident: 9, fragOffset: 1472, moreFragments: true }));
    netif.inject(ipv4Frame(1, msg.subarray(2952), { ident: 9, fragOffset: 2952 }));
    expect(netif.take()).toHaveLength(0);
    expect(stack.stats().ipv4!["drop_frag_overlap"]).toBe(1);
  });

  it("bounds reassembly and times out incomplete datagrams with ICMP time exceeded", () => {
    const { netif, clock, stack } = setup({ ipv4: { reassembly: { maxDatagrams: 4, timeoutMs: 1000 } } });
    for (let id = 0; id < 10; id++) netif.inject(ipv4Frame(17, new Uint8Array(64), { ident: id, moreFragments: true }));
    expect(stack.ipv4.reassemblyState().inProgress).toBe(4);
    expect(stack.stats().ipv4!["drop_reassembly_evicted"]).toBe(6);
    clock.advance(1001);
    expect(stack.ipv4.reassemblyState()).toEqual({ inProgress: 0, bufferedBytes: 0 });
    const errs = netif.take().map(decode4);
    expect(errs.length).toBe(4);
    expect(errs.every((e) => e.icmp?.type === 11 && e.icmp.code === 1)).toBe(true);
  });

  it.each([64, 1000])("%i spoofed first fragments that never complete do not lock out a real fragmented ping: the oldest are evicted", (n) => {
    const { netif, stack } = setup({ ipv4: { reassembly: { maxDatagrams: 64 } } });
    for (let i = 0; i < n; i++) {
      const src = new Uint8Array([198, 19, (i >> 8) & 0xff, i & 0xff]);
      netif.inject(ipv4Frame(1, new Uint8Array(1480), { src, ident: i, moreFragments: true }));
    }
    netif.take();
    const frags = fragments(1, icmpEcho(8, 7, 1, new Uint8Array(3000).fill(5)), 1480, 777);
    for (const f of frags) netif.inject(f);
    const replies = netif
      .take()
      .map(decode4)
      .filter((o) => o.ip.dst.join(".") === "198.18.0.1");
    expect(replies.length).toBe(3); // the echo reply, fragmented in turn
    expect(stack.stats().ipv4!["drop_reassembly_evicted"]).toBe(n - 64 + 1);
    expect(stack.ipv4.reassemblyState().inProgress).toBe(63);
  });

  it("a last fragment ending before a fragment already held (even an empty one) invalidates the datagram", () => {
    const { netif, stack } = setup();
    const errors: unknown[] = [];
    stack.onInternalError = (e) => errors.push(e);
    const udp = udpDatagram(5000, 9, new Uint8Array(92));
    netif.inject(ipv4Frame(17, new Uint8Array(0), { ident: 5, fragOffset: 1000, moreFragments: true }));
    netif.inject(ipv4Frame(17, udp.subarray(0, 8), { ident: 5, moreFragments: true }));
    netif.inject(ipv4Frame(17, udp.subarray(8), { ident: 5, fragOffset: 8 }));
    expect(errors).toEqual([]);
    expect(stack.stats().ipv4!["drop_frag_inconsistent_length"]).toBe(1);
    expect(stack.ipv4.reassemblyState().inProgress).toBe(0);
  });

  it("a source at its share of reassembly evicts only its own oldest datagrams", () => {
    const { netif, stack } = setup({ ipv4: { reassembly: { maxDatagrams: 16, maxDatagramsPerSource: 4 } } });
    const other = new Uint8Array([198, 18, 0, 9]);
    // Another host's datagram waits for its second fragment...
    const msg = udpDatagram(5000, 9, new Uint8Array(2000), other);
    netif.inject(ipv4Frame(17, msg.subarray(0, 1480), { src: other, ident: 1, moreFragments: true }));
    // ...while one source sends 100 datagrams that never complete.
    for (let id = 100; id < 200; id++) netif.inject(ipv4Frame(17, new Uint8Array(64), { ident: id, moreFragments: true }));
    expect(stack.stats().ipv4!["drop_reassembly_source_evicted"]).toBe(96);
    expect(stack.ipv4.reassemblyState().inProgress).toBe(5);
    netif.inject(ipv4Frame(17, msg.subarray(1480), { src: other, ident: 1, fragOffset: 1480 }));
    expect(stack.stats().ipv4!["reassembled"]).toBe(1);
  });

  it("pings a peer and reports the round trip on the injected clock", async () => {
    const { netif, clock, stack } = setup();
    const p = stack.ping("198.18.0.1", { size: 32 });
    const [req] = netif.take().map(decode4);
    expect(req!.icmp!.type).toBe(8);
    clock.advance(5);
    const id = req!.icmp!.rest >>> 16;
    const seq = req!.icmp!.rest & 0xffff;
    netif.inject(ipv4Frame(1, icmpEcho(0, id, seq, req!.icmp!.body)));
    const r = await p;
    expect(r.rtt).toBe(5);
    expect(r.bytes).toBe(32);
  });

  it("a ping with no answer times out with ETIMEDOUT", async () => {
    const { clock, stack } = setup();
    const p = stack.ping("198.18.0.1", { timeoutMs: 100 });
    clock.advance(101);
    await expect(p).rejects.toMatchObject({ code: "ETIMEDOUT" });
  });
});

describe("RFC 768 UDP", () => {
  it("delivers to a bound socket and sends replies with a valid checksum", async () => {
    const { netif, stack } = setup();
    const s = stack.udp.createSocket("udp4");
    const got: Array<[string, number, string]> = [];
    s.on("message", (m, r) => {
      got.push([Buffer.from(m).toString(), r.port, r.address]);
      s.send(m, r.port, r.address);
    });
    s.bind(7);
    netif.inject(ipv4Frame(17, udpDatagram(40000, 7, Buffer.from("hello"))));
    expect(got).toEqual([["hello", 40000, "198.18.0.1"]]);
    await new Promise((r) => setTimeout(r, 0));
    const [o] = netif.take().map(decode4);
    expect(o!.udp!.dstPort).toBe(40000);
    expect(Buffer.from(o!.udp!.payload).toString()).toBe("hello");
  });

  it("drops bad checksums and answers closed ports with rate-limited port unreachable", () => {
    const { netif, stack } = setup({ icmpv4: { errorRate: 1, errorBurst: 3 } });
    const bad = ipv4Frame(17, udpDatagram(1, 7, new Uint8Array([1, 2, 3])));
    bad[bad.length - 1]! ^= 0xff;
    netif.inject(bad);
    expect(stack.stats().udp!["drop_bad_checksum"]).toBe(1);
    for (let i = 0; i < 10; i++) netif.inject(ipv4Frame(17, udpDatagram(1, 9999, new Uint8Array(4))));
    const errs = netif.take().map(decode4);
    expect(errs.length).toBe(3);
    expect(errs[0]!.icmp!.type).toBe(3);
    expect(errs[0]!.icmp!.code).toBe(3);
    expect(stack.stats().icmpv4!["drop_error_rate_limited"]).toBe(7);
  });

  it("rejects binding a used port and an address that is not ours", () => {
    const { stack } = setup();
    stack.udp.createSocket("udp4").bind(5000);
    expect(() => stack.udp.createSocket("udp4").bind(5000)).toThrow(expect.objectContaining({ code: "EADDRINUSE" }));
    expect(() => stack.udp.createSocket("udp4").bind(5001, "198.18.0.9")).toThrow(expect.objectContaining({ code: "EADDRNOTAVAIL" }));
  });

  it("routes off-link destinations through the gateway", async () => {
    const { netif, stack } = setup();
    stack.udp.createSocket("udp4").send(new Uint8Array(1), 53, "198.19.5.5");
    await new Promise((r) => setTimeout(r, 0));
    const [f] = netif.take();
    expect(f!.subarray(0, 6)).toEqual(PEER_MAC); // the gateway's MAC
    expect(decode4(f!).ip.dst).toEqual(parseIPv4("198.19.5.5"));
  });
});

describe("IPv4 input hands up one reused packet", () => {
  it("with each datagram's fields; it lets go of the frame after; a re-entrant input gets a packet of its own", () => {
    const { netif, stack } = setup();
    const seen: string[] = [];
    const pkts: IpPacket[] = [];
    let nest = true;
    stack.ipv4.register(253, {
      input: (pkt) => {
        pkts.push(pkt);
        if (nest) {
          // A frame fed in from inside an input (no layer does this today): the outer packet must stay as it was.
          nest = false;
          netif.inject(ipv4Frame(253, new Uint8Array(3), { src: parseIPv4("198.18.0.9") }));
        }
        seen.push(`${[...pkt.src].join(".")} -> ${[...pkt.dst].join(".")} proto ${pkt.protocol} ttl ${pkt.ttl} ${pkt.payload.length} bytes of ${pkt.packet.length}`);
      },
    });
    netif.inject(ipv4Frame(253, new Uint8Array(7)));
    netif.inject(ipv4Frame(253, new Uint8Array(5), { src: parseIPv4("198.18.0.7"), ttl: 9 }));
    expect(seen).toEqual([
      "198.18.0.9 -> 198.18.0.2 proto 253 ttl 64 3 bytes of 23",
      "198.18.0.1 -> 198.18.0.2 proto 253 ttl 64 7 bytes of 27",
      "198.18.0.7 -> 198.18.0.2 proto 253 ttl 9 5 bytes of 25",
    ]);
    expect(pkts[0]).toBe(pkts[2]); // the layer's own, used again
    expect(pkts[1]).not.toBe(pkts[0]); // the nested input's
    for (const p of pkts) expect([p.payload.length, p.packet.length]).toEqual([0, 0]);
  });
});
