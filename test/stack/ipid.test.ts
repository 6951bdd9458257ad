// IPv4 Identification (RFC 6864, RFC 7739): what a prober can learn from our IDs. With one
// global counter, +1 per datagram, anyone could count what we send to others (the idle scan
// uses us as its "zombie") and predict the ID of our next fragments.
import { describe, expect, it } from "vitest";
import { Stack } from "../../stack/stack.js";
import { VirtualClock } from "../../stack/core/clock.js";
import { SeededRandom } from "../../stack/core/random.js";
import { CaptureNetif } from "../helpers/capture.js";
import { PEER_IP, STACK_IP, STACK_MAC, arpReply, decode4, icmpEcho, ipv4Frame } from "../helpers/frames.js";
import { ACK, SYN, emitTcp } from "../../stack/wire/tcp.js";
import { parseIPv4, parseMac } from "../../stack/wire/addr.js";
import { hsiphash3 } from "../../stack/ipv4id.js";

const OTHER_IP = parseIPv4("198.18.0.3");
const OTHER_MAC = parseMac("02:00:00:00:00:03");

function setup(seed = 1) {
  const netif = new CaptureNetif();
  const clock = new VirtualClock(1_000_000);
  const stack = Stack.create({ netif, mac: STACK_MAC, ipv4: { address: "198.18.0.2/24" }, clock, random: new SeededRandom(seed) });
  netif.inject(arpReply());
  netif.inject(arpReply(OTHER_MAC, OTHER_IP));
  netif.take();
  let seq = 0;
  /** An echo request from `src` (size bytes of data); the IP headers of what the stack sent back. */
  const ping = (src = PEER_IP, size = 8) => {
    netif.inject(ipv4Frame(1, icmpEcho(8, 7, ++seq, new Uint8Array(size)), { src }));
    return netif.take().map((f) => decode4(f).ip);
  };
  return { netif, clock, stack, ping };
}

function tcpTo(dport: number, flags: number): Uint8Array {
  const b = new Uint8Array(20);
  emitTcp(b, 0, { srcPort: 40000, dstPort: dport, seq: 1, ack: 12345, flags, window: 1000 }, 0, PEER_IP, STACK_IP);
  return ipv4Frame(6, b);
}

describe("IPv4 Identification (RFC 6864, RFC 7739)", () => {
  it("an atomic datagram (DF set) carries ID 0: RSTs and SYN-ACKs show nothing of our other traffic", () => {
    const { netif, stack, ping } = setup();
    stack.tcp.listen({ port: 80 }, () => {});
    for (let i = 0; i < 3; i++) {
      netif.inject(tcpTo(81, SYN | ACK)); // the idle scan's probe: an unsolicited SYN-ACK
      const [rst] = netif.take().map((f) => decode4(f).ip);
      expect(rst).toMatchObject({ ident: 0, dontFragment: true, protocol: 6 });
      for (let j = 0; j < 5; j++) ping(OTHER_IP);
    }
    netif.inject(tcpTo(80, SYN));
    const [synack] = netif.take().map((f) => decode4(f).ip);
    expect(synack).toMatchObject({ ident: 0, dontFragment: true });
  });

  it("a destination's IDs do not count the datagrams sent to others", () => {
    const { ping } = setup();
    const first = ping()[0]!.ident;
    for (let i = 0; i < 50; i++) ping(OTHER_IP);
    const second = ping()[0]!.ident;
    expect(second).toBe((first + 1) & 0xffff);
  });

  it("after idle time a destination's counter jumps by a random amount, so a prober cannot count even its own bucket", () => {
    const { clock, ping } = setup();
    const ids: number[] = [];
    for (let i = 0; i < 20; i++) {
      clock.advance(1000);
      ids.push(ping()[0]!.ident);
    }
    const steps = ids.slice(1).map((id, i) => (id - ids[i]! + 0x10000) & 0xffff);
    expect(new Set(steps).size).toBeGreaterThan(10);
    expect(steps.every((s) => s >= 1 && s <= 1000)).toBe(true);
  });

  it("the fragments of one datagram share an ID; successive datagrams to one destination never reuse one", () => {
    const { ping } = setup();
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const frags = ping(PEER_IP, 3000);
      expect(frags.length).toBe(3);
      expect(new Set(frags.map((f) => f.ident)).size).toBe(1);
      expect(frags.every((f) => !f.dontFragment)).toBe(true);
      seen.add(frags[0]!.ident);
    }
    expect(seen.size).toBe(200);
  });

  it("two stacks start from unrelated values", () => {
    const a = setup(1).ping()[0]!.ident;
    const b = setup(2).ping()[0]!.ident;
    expect(a).not.toBe(b);
  });

  it("buckets are chosen by HalfSipHash-2-4", () => {
    // Key bytes 00..07, message 44 33 22 11 88 77 66 55 11 00 00 00 (three little-endian words);
    // the value is from a straight Python HalfSipHash-2-4 that gives the reference test vectors
    // (a9359f5b for the empty message, 27475ab8 for one zero byte, under the same key).
    expect(hsiphash3(0x03020100, 0x07060504, 0x11223344, 0x55667788, 17)).toBe(0xe3080e73);
  });
});
