// No frame, however malformed, crashes a stack: a million random and mutated frames, then the
// stack must still answer ARP, ping and UDP, and its drop counters must have moved.
import { describe, expect, it } from "vitest";
import { Stack } from "../../stack/stack.js";
import { VirtualClock } from "../../stack/core/clock.js";
import { SeededRandom } from "../../stack/core/random.js";
import { CaptureNetif } from "../helpers/capture.js";
import { STACK6, decode6, fragments6, icmp6Frame, ipv6Frame, routerAdvert } from "../helpers/frames6.js";
import { emitLladdrOption } from "../../stack/wire/ndp.js";
import { emitUdp } from "../../stack/wire/udp.js";
import { ipv6MulticastMac, parseIPv6, solicitedNode } from "../../stack/wire/addr.js";
import { STACK_IP, STACK_MAC, arpReply, arpRequest, decode4, fragments, icmpEcho, ipv4Frame, udpDatagram } from "../helpers/frames.js";

const FRAMES = Number(process.env.PAF_FUZZ_FRAMES ?? 1_000_000);

describe("robustness against malformed frames", () => {
  it(`survives ${FRAMES} random and mutated frames and still answers`, () => {
    const seed = Number(process.env.PAF_FUZZ_SEED ?? 20261124);
    const rnd = new SeededRandom(seed);
    const netif = new CaptureNetif();
    const clock = new VirtualClock();
    const stack = Stack.create({
      netif,
      mac: STACK_MAC,
      ipv4: { address: "198.18.0.2/24", gateway: "198.18.0.1" },
      ipv6: { address: "2001:db8::2/64", slaac: true },
      clock,
      random: new SeededRandom(2),
    });
    clock.advance(1000);
    const internal: unknown[] = [];
    stack.onInternalError = (e) => internal.push(e);
    const echo = stack.udp.createSocket("udp4");
    echo.on("message", (m, r) => echo.send(m, r.port, r.address));
    echo.on("error", () => {});
    echo.bind(7);
    const echo6 = stack.udp.createSocket("udp6");
    echo6.on("message", (m, r) => echo6.send(m, r.port, r.address));
    echo6.on("error", () => {});
    echo6.bind(7);
    const ns = new Uint8Array(24);
    ns.set(STACK6, 0);
    emitLladdrOption(ns, 16, 1, new Uint8Array([2, 0, 0, 0, 0, 1]));
    const sn = solicitedNode(STACK6);
    const u6 = new Uint8Array(8 + 20);
    emitUdp(u6, 0, 1000, 7, 20, parseIPv6("2001:db8::1"), STACK6);
    const hbh = new Uint8Array(8 + 8);
    hbh[0] = 58;
    hbh[2] = 0x80; // unknown option, "discard + ICMP"
    hbh[3] = 4;

    const seeds: Uint8Array[] = [
      arpRequest(STACK_IP),
      arpReply(),
      ipv4Frame(1, icmpEcho(8, 1, 1, new Uint8Array(40))),
      ipv4Frame(17, udpDatagram(1234, 7, new Uint8Array(30))),
      ipv4Frame(17, udpDatagram(1234, 99, new Uint8Array(30))),
      ...fragments(1, icmpEcho(8, 2, 2, new Uint8Array(3000)), 1480, 77),
      ipv4Frame(6, new Uint8Array(20)),
      icmp6Frame(135, 0, 0, ns, { hopLimit: 255, dstMac: ipv6MulticastMac(sn), dst: sn }),
      icmp6Frame(128, 0, 1, new Uint8Array(32), { dstMac: STACK_MAC }),
      routerAdvert(parseIPv6("2001:db8:5::"), 100, 50),
      ipv6Frame(17, u6, { dstMac: STACK_MAC }),
      ipv6Frame(0, hbh, { dstMac: STACK_MAC }),
      ...fragments6(17, new Uint8Array(3000), 1448, 1234, STACK_MAC),
    ];
    for (let i = 0; i < FRAMES; i++) {
      let f: Uint8Array;
      const kind = rnd.u32() % 4;
      if (kind === 0) {
        // Pure noise of any length, sometimes with a plausible header.
        f = rnd.fill(new Uint8Array(rnd.u32() % 200));
        if (f.length >= 14 && rnd.u32() % 2) {
          f.set(STACK_MAC, 0);
          f[12] = rnd.u32() % 2 ? 0x08 : 0x86;
          f[13] = rnd.u32() % 2 ? 0x00 : 0xdd;
        }
      } else {
        // A valid frame with 1-4 random byte mutations, maybe truncated or extended.
        const base = seeds[rnd.u32() % seeds.length]!;
        f = base.slice();
        const n = 1 + (rnd.u32() % 4);
        for (let j = 0; j < n; j++) f[14 + (rnd.u32() % (f.length - 14))] = rnd.u32() & 0xff;
        if (kind === 2) f = f.subarray(0, rnd.u32() % f.length);
        if (kind === 3 && rnd.u32() % 4 === 0) {
          const g = new Uint8Array(f.length + (rnd.u32() % 64));
          g.set(f);
          f = g;
        }
      }
      netif.inject(f);
      if ((i & 1023) === 0) {
        netif.take();
        clock.advance(50); // let timers (reassembly, ARP) run and rate limiters refill
      }
    }
    netif.take();
    clock.advance(60_000);
    expect(internal).toEqual([]);

    // Still alive: ARP, ping and UDP echo all answered.
    netif.inject(arpReply());
    netif.take();
    netif.inject(arpRequest(STACK_IP));
    expect(netif.take()).toHaveLength(1);
    netif.inject(ipv4Frame(1, icmpEcho(8, 9, 9, new Uint8Array(16))));
    const [pong] = netif.take().map(decode4);
    expect(pong?.icmp?.type).toBe(0);
    netif.inject(ipv4Frame(17, udpDatagram(5555, 7, Buffer.from("still here"))));
    netif.inject(icmp6Frame(128, 0, 0x00090009, new Uint8Array(16), { dstMac: STACK_MAC }));
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        const out = netif.take();
        const u = out.filter((f) => f[12] === 0x08).map(decode4)[0];
        expect(Buffer.from(u!.udp!.payload).toString()).toBe("still here");
        // The echo reply over IPv6 (or, if the neighbour entry was lost to the noise, its NS).
        const v6 = out.filter((f) => f[12] === 0x86).map(decode6);
        expect(v6.some((d) => d.icmp?.type === 129 || d.icmp?.type === 135)).toBe(true);
        const st = stack.stats();
        const drops = Object.values(st).reduce((a, l) => a + (l["dropped"] ?? 0), 0);
        expect(drops).toBeGreaterThan(FRAMES / 4);
        expect(st.ipv4!["drop_bad_checksum"]).toBeGreaterThan(0);
        expect(st.ipv6!["dropped"]).toBeGreaterThan(0);
        expect(st.icmpv6!["drop_bad_checksum"]).toBeGreaterThan(0);
        expect(st.ethernet!["drop_not_our_mac"] ?? 0).toBeGreaterThan(0);
        expect(stack.ipv4.reassemblyState().inProgress).toBe(0);
        resolve();
      }),
    );
  });
});
