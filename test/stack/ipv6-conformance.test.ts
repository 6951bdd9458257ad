// IPv6 input conformance, frame by frame on the virtual clock: RFC 6980 (no NDP in fragments),
// RFC 8200 §4.5 fragment errors and reassembly time, RFC 2675 jumbo payload errors.
import { describe, expect, it } from "vitest";
import { Stack } from "../../stack/stack.js";
import { VirtualClock } from "../../stack/core/clock.js";
import { SeededRandom } from "../../stack/core/random.js";
import { CaptureNetif } from "../helpers/capture.js";
import { PEER6, PEER6_LL, PEER6_MAC, STACK6, decode6, icmp6Frame, routerAdvert } from "../helpers/frames6.js";
import { STACK_MAC } from "../helpers/frames.js";
import { emitLladdrOption, putU32 } from "../../stack/wire/ndp.js";
import { emitIcmp } from "../../stack/wire/icmp.js";
import { emitEthernet, ETHERTYPE_IPV6 } from "../../stack/wire/ethernet.js";
import { emitFragmentHeader, emitIpv6 } from "../../stack/wire/ipv6.js";
import { ipv6MulticastMac, parseIPv6 } from "../../stack/wire/addr.js";

const ALL_NODES = parseIPv6("ff02::1");

async function setup() {
  const netif = new CaptureNetif();
  const clock = new VirtualClock();
  const stack = Stack.create({ netif, mac: STACK_MAC, ipv6: { address: "2001:db8::2/64" }, clock, random: new SeededRandom(3) });
  clock.advance(1000); // DAD
  await stack.ready();
  netif.take();
  return { netif, clock, stack, v6: () => stack.stats().ipv6! };
}

/** The stack learns the peer's MAC from a solicited NA (it must have asked first) or an NS. */
function resolvePeer(netif: CaptureNetif) {
  const ns = new Uint8Array(24);
  ns.set(STACK6, 0);
  emitLladdrOption(ns, 16, 1, PEER6_MAC);
  netif.inject(icmp6Frame(135, 0, 0, ns, { src: PEER6, hopLimit: 255, dstMac: STACK_MAC }));
  netif.take();
}

/** A frame with a complete IPv6 header around `payload` (next header `nh`). */
function frame6(nh: number, payload: Uint8Array, o: { src?: Uint8Array; dst?: Uint8Array; hopLimit?: number; dstMac?: Uint8Array } = {}): Uint8Array {
  const f = new Uint8Array(14 + 40 + payload.length);
  emitEthernet(f, o.dstMac ?? STACK_MAC, PEER6_MAC, ETHERTYPE_IPV6);
  emitIpv6(f, 14, { nextHeader: nh, hopLimit: o.hopLimit ?? 64, src: o.src ?? PEER6, dst: o.dst ?? STACK6, payloadLen: payload.length });
  f.set(payload, 54);
  return f;
}

/** Cut an ICMPv6 message into fragments of `chunk` bytes, keeping addresses and hop limit. */
function fragmentIcmp(msg: Uint8Array, chunk: number, ident: number, o: Parameters<typeof frame6>[2] = {}): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0; off < msg.length; off += chunk) {
    const part = msg.subarray(off, Math.min(msg.length, off + chunk));
    const p = new Uint8Array(8 + part.length);
    emitFragmentHeader(p, 0, 58, off, off + part.length < msg.length, ident);
    p.set(part, 8);
    out.push(frame6(44, p, o));
  }
  return out;
}

/** An ICMPv6 message as its sender computed it (checksum over src/dst). */
function icmpMsg(type: number, rest: number, body: Uint8Array, src = PEER6, dst = STACK6): Uint8Array {
  const m = new Uint8Array(8 + body.length);
  m.set(body, 8);
  emitIcmp(m, 0, m.length, type, 0, rest, src, dst);
  return m;
}

function nsBody(): Uint8Array {
  const b = new Uint8Array(24);
  b.set(STACK6, 0);
  emitLladdrOption(b, 16, 1, PEER6_MAC);
  return b;
}

/** An echo request; the stack answers it once it knows our MAC. */
const ping = (netif: CaptureNetif) => {
  netif.inject(icmp6Frame(128, 0, 0x00420001, new Uint8Array(8), { dstMac: STACK_MAC }));
  return netif
    .take()
    .map(decode6)
    .filter((d) => d.icmp?.type === 129).length;
};

describe("RFC 6980: NDP messages in fragments are dropped", () => {
  it("a unicast NS split into 8-byte fragments gets no NA; the same NS whole does", async () => {
    const { netif, v6 } = await setup();
    const frags = fragmentIcmp(icmpMsg(135, 0, nsBody()), 8, 1, { hopLimit: 255 });
    expect(frags.length).toBe(4);
    for (const f of frags) netif.inject(f);
    expect(
      netif
        .take()
        .map(decode6)
        .filter((d) => d.icmp?.type === 136),
    ).toEqual([]);
    expect(v6()["drop_ndp_in_fragment"]).toBe(1);
    expect(v6()["reassembled"]).toBe(1);
    netif.inject(icmp6Frame(135, 0, 0, nsBody(), { src: PEER6, hopLimit: 255, dstMac: STACK_MAC }));
    expect(
      netif
        .take()
        .map(decode6)
        .filter((d) => d.icmp?.type === 136).length,
    ).toBe(1);
    expect(ping(netif)).toBe(1);
  });

  it("an NS in an atomic fragment (offset 0, M clear) is dropped too, as Linux does", async () => {
    const { netif, v6 } = await setup();
    const [atomic] = fragmentIcmp(icmpMsg(135, 0, nsBody()), 64, 2, { hopLimit: 255 });
    netif.inject(atomic!);
    expect(netif.take()).toEqual([]);
    expect(v6()["drop_ndp_in_fragment"]).toBe(1);
    expect(v6()["atomic_fragments"]).toBe(1);
  });

  it("a fragmented RA does not change the hop limit, learn a router or a prefix", async () => {
    const { netif, stack, v6 } = await setup();
    const whole = routerAdvert(parseIPv6("2001:db8:77::"), 3600, 1800).subarray(54);
    whole[4] = 200; // Cur Hop Limit
    const msg = icmpMsg(134, ((200 << 24) | 1800) >>> 0, whole.subarray(8), PEER6_LL, ALL_NODES);
    for (const f of fragmentIcmp(msg, 16, 3, { src: PEER6_LL, dst: ALL_NODES, hopLimit: 255, dstMac: ipv6MulticastMac(ALL_NODES) })) netif.inject(f);
    expect(stack.ipv6!.hopLimit).toBe(64);
    expect(stack.ndp!.defaultRouter()).toBeUndefined();
    expect(stack.stats().ndp!["ra_received"] ?? 0).toBe(0);
    expect(v6()["drop_ndp_in_fragment"]).toBe(1);
    // The same RA whole is taken.
    netif.inject(icmp6Frame(134, 0, ((200 << 24) | 1800) >>> 0, whole.subarray(8), { src: PEER6_LL, dst: ALL_NODES, hopLimit: 255, dstMac: ipv6MulticastMac(ALL_NODES) }));
    expect(stack.ipv6!.hopLimit).toBe(200);
  });

  it("a fragmented echo request is still answered (only NDP is refused)", async () => {
    const { netif } = await setup();
    resolvePeer(netif);
    for (const f of fragmentIcmp(icmpMsg(128, 0x00050001, new Uint8Array(40)), 16, 4)) netif.inject(f);
    expect(
      netif
        .take()
        .map(decode6)
        .filter((d) => d.icmp?.type === 129).length,
    ).toBe(1);
  });
});

describe("RFC 8200 §4.5: fragment errors and reassembly time", () => {
  it("a fragment reaching past 65,535 bytes: parameter problem code 0 pointing at its Fragment Offset field", async () => {
    const { netif, v6 } = await setup();
    resolvePeer(netif);
    const p = new Uint8Array(8 + 16);
    emitFragmentHeader(p, 0, 17, 65528, false, 9);
    netif.inject(frame6(44, p));
    const [pp] = netif.take().map(decode6);
    expect(pp?.icmp).toMatchObject({ type: 4, code: 0, rest: 40 + 2 });
    expect(v6()["drop_frag_too_big"]).toBe(1);
    // The quote is the offending packet.
    expect(pp!.icmp!.body.subarray(40, 48)).toEqual(p.subarray(0, 8));
  });

  it("a fragment with M set whose length is not a multiple of 8: parameter problem code 0 pointing at the Payload Length", async () => {
    const { netif, v6 } = await setup();
    resolvePeer(netif);
    const p = new Uint8Array(8 + 13);
    emitFragmentHeader(p, 0, 17, 8, true, 10);
    netif.inject(frame6(44, p));
    const [pp] = netif.take().map(decode6);
    expect(pp?.icmp).toMatchObject({ type: 4, code: 0, rest: 4 });
    expect(v6()["drop_frag_bad_length"]).toBe(1);
  });

  it("an incomplete datagram waits 60 s (not 30) before time exceeded code 1", async () => {
    const { netif, clock, v6 } = await setup();
    resolvePeer(netif);
    const msg = icmpMsg(128, 0x00060001, new Uint8Array(40));
    const [first] = fragmentIcmp(msg, 16, 11);
    netif.inject(first!);
    const errors = () =>
      netif
        .take()
        .map(decode6)
        .filter((d) => d.icmp && d.icmp.type < 128);
    clock.advance(59_000);
    expect(errors()).toEqual([]);
    expect(v6()["drop_reassembly_timeout"] ?? 0).toBe(0);
    clock.advance(1_000);
    const [te] = errors();
    expect(te?.icmp).toMatchObject({ type: 3, code: 1 });
    expect(v6()["drop_reassembly_timeout"]).toBe(1);
  });
});

describe("RFC 2675 jumbo payload option (errors as Linux's ipv6_hop_jumbo)", () => {
  /** Hop-by-hop header carrying a Jumbo Payload option (at offset 42 of the packet: 4n+2), then an echo request. */
  function jumbo(payloadLenField: number | undefined, jumboLen: number, optLen = 4): Uint8Array {
    const echo = icmpMsg(128, 0x00070001, new Uint8Array(8));
    const hbh = new Uint8Array(8 + echo.length);
    hbh[0] = 58;
    hbh[1] = 0;
    hbh[2] = 0xc2;
    hbh[3] = optLen;
    putU32(hbh, 4, jumboLen);
    hbh.set(echo, 8);
    const f = frame6(0, hbh);
    if (payloadLenField !== undefined) {
      f[18] = payloadLenField >> 8;
      f[19] = payloadLenField & 0xff;
    }
    return f;
  }

  it("Payload Length 0 and a Jumbo Payload Length under 65,536: parameter problem pointing at the Jumbo Payload Length", async () => {
    const { netif, v6 } = await setup();
    resolvePeer(netif);
    netif.inject(jumbo(0, 24));
    const [pp] = netif.take().map(decode6);
    expect(pp?.icmp).toMatchObject({ type: 4, code: 0, rest: 44 });
    expect(v6()["drop_jumbo_length"]).toBe(1);
  });

  it("a Jumbo Payload option with a non-zero Payload Length: parameter problem pointing at the option", async () => {
    const { netif, v6 } = await setup();
    resolvePeer(netif);
    netif.inject(jumbo(undefined, 70_000));
    const [pp] = netif.take().map(decode6);
    expect(pp?.icmp).toMatchObject({ type: 4, code: 0, rest: 42 });
    expect(v6()["drop_jumbo_with_payload_length"]).toBe(1);
  });

  it("Payload Length 0 with a hop-by-hop header but no Jumbo Payload option: parameter problem pointing at the Payload Length", async () => {
    const { netif, v6 } = await setup();
    resolvePeer(netif);
    const f = jumbo(0, 0);
    f.fill(0, 56, 62); // the option becomes padding (PadN, 4 bytes)
    f[56] = 1;
    f[57] = 4;
    netif.inject(f);
    const [pp] = netif.take().map(decode6);
    expect(pp?.icmp).toMatchObject({ type: 4, code: 0, rest: 4 });
    expect(v6()["drop_jumbo_option_missing"]).toBe(1);
  });

  it("a jumbogram larger than the frame, or a malformed Jumbo option, is dropped silently and counted", async () => {
    const { netif, v6 } = await setup();
    resolvePeer(netif);
    netif.inject(jumbo(0, 70_000));
    netif.inject(jumbo(0, 70_000, 2));
    expect(netif.take()).toEqual([]);
    expect(v6()["drop_jumbogram_truncated"]).toBe(1);
    expect(v6()["drop_bad_jumbo_option"]).toBe(1);
    expect(ping(netif)).toBe(1);
  });
});
