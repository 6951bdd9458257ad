// Hostile segments against an established connection, frame by frame (RFC 5961, RFC 7323 PAWS),
// and the TCP wire codec.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { Stack } from "../../../stack/stack.js";
import { VirtualClock } from "../../../stack/core/clock.js";
import { SeededRandom } from "../../../stack/core/random.js";
import { CaptureNetif } from "../../helpers/capture.js";
import { STACK_MAC, arpReply, ipv4Frame, decode4, PEER_IP, STACK_IP } from "../../helpers/frames.js";
import { ACK, FIN, RST, SYN, emitTcp, newSegment, optionsLength, parseTcp, tcpChecksumOk, type TcpEmit } from "../../../stack/wire/tcp.js";

function seg(o: TcpEmit, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const hl = 20 + optionsLength(o);
  const b = new Uint8Array(hl + payload.length);
  b.set(payload, hl);
  emitTcp(b, 0, o, payload.length, PEER_IP, STACK_IP);
  return b;
}

function sent(netif: CaptureNetif) {
  return netif
    .take()
    .map(decode4)
    .filter((d) => d.ip.protocol === 6)
    .map((d) => {
      const s = newSegment();
      parseTcp(d.ip.payload, s);
      return { ...s, payload: Buffer.from(s.payload) };
    });
}

/** A stack listening on port 80 and a connection established by hand from 198.18.0.1:40000. */
function established() {
  const netif = new CaptureNetif();
  const clock = new VirtualClock();
  const stack = Stack.create({ netif, mac: STACK_MAC, ipv4: { address: "198.18.0.2/24" }, clock, random: new SeededRandom(9) });
  netif.inject(arpReply());
  netif.take();
  const got: Buffer[] = [];
  let flowErr: Error | undefined;
  stack.tcp.listen({ port: 80 }, (f) => {
    f.on("data", (d: Buffer) => got.push(d));
    f.on("error", (e) => (flowErr = e));
  });
  const iss = 1000;
  netif.inject(ipv4Frame(6, seg({ srcPort: 40000, dstPort: 80, seq: iss, ack: 0, flags: SYN, window: 65535, mss: 1460, ts: { val: 100, ecr: 0 }, sackPermitted: true, wscale: 7 })));
  const [synack] = sent(netif);
  expect(synack!.flags).toBe(SYN | ACK);
  const ours = synack!.seq;
  let ts = 101;
  const send = (o: Partial<TcpEmit>, payload?: Uint8Array) =>
    netif.inject(ipv4Frame(6, seg({ srcPort: 40000, dstPort: 80, seq: iss + 1, ack: ours + 1, flags: ACK, window: 512, ts: { val: ts++, ecr: synack!.tsVal }, ...o }, payload)));
  send({});
  return { netif, clock, stack, got, send, iss, ours, err: () => flowErr, conn: () => stack.tcp.layer.connections()[0] };
}

describe("RFC 5961 and RFC 7323 defences", () => {
  it("an in-window RST that is not exactly RCV.NXT gets a challenge ACK and the connection survives (§3.2)", () => {
    const { netif, send, iss, conn, stack } = established();
    send({ seq: iss + 1 + 100, flags: RST });
    const [ch] = sent(netif);
    expect(ch!.flags & ACK).toBeTruthy();
    expect(ch!.ack).toBe(iss + 1);
    expect(conn()!.state).toBe("ESTABLISHED");
    expect(stack.stats().tcp!["challenge_acks"]).toBe(1);
  });

  it("an RST exactly at RCV.NXT resets the connection with ECONNRESET", async () => {
    const { send, iss, conn, err } = established();
    send({ seq: iss + 1, flags: RST });
    expect(conn()).toBeUndefined();
    await new Promise((r) => setImmediate(r));
    expect((err() as Error & { code?: string })?.code).toBe("ECONNRESET");
  });

  it("a SYN on an established connection gets a challenge ACK, not a reset (§4)", () => {
    const { netif, send, iss, conn } = established();
    send({ seq: iss + 5000, flags: SYN });
    const [ch] = sent(netif);
    expect(ch!.flags).toBe(ACK);
    expect(conn()!.state).toBe("ESTABLISHED");
  });

  it("data acknowledging bytes never sent is dropped with an ACK (§5.2)", () => {
    const { netif, send, ours, got } = established();
    send({ ack: ours + 1 + 1_000_000 }, Buffer.from("injected"));
    expect(got.length).toBe(0);
    const out = sent(netif);
    expect(out.length).toBe(1);
    expect(out[0]!.flags).toBe(ACK);
  });

  it("blind data outside the window is not delivered (§3.10.7.4 acceptability)", () => {
    const { send, iss, got, stack } = established();
    send({ seq: iss + 1 + 10_000_000 }, Buffer.from("far away"));
    expect(got.length).toBe(0);
    expect(stack.stats().tcp!["out_of_window"]).toBe(1);
  });

  it("PAWS drops a segment with an old timestamp (RFC 7323 §5)", async () => {
    const { netif, send, iss, got, stack } = established();
    send({}, Buffer.from("fresh"));
    netif.take();
    send({ seq: iss + 6, ts: { val: 5, ecr: 0 } }, Buffer.from("stale"));
    await new Promise((r) => setImmediate(r));
    expect(got.map(String)).toEqual(["fresh"]);
    expect(stack.stats().tcp!["drop_paws_rejected"]).toBe(1);
  });

  it("an out-of-order segment is queued and answered at once with a SACK block (RFC 2018)", () => {
    const { netif, send, iss } = established();
    send({ seq: iss + 1 + 100 }, new Uint8Array(50));
    const [ack] = sent(netif);
    expect(ack!.ack).toBe(iss + 1);
    expect(ack!.sackCount).toBe(1);
    expect([ack!.sack[0], ack!.sack[1]]).toEqual([iss + 101, iss + 151]);
  });

  it("FIN processing: CLOSE-WAIT and an ACK for the FIN", () => {
    const { netif, send, iss, conn } = established();
    send({ flags: ACK | FIN });
    expect(conn()!.state).toBe("CLOSE-WAIT");
    const out = sent(netif);
    expect(out.at(-1)!.ack).toBe(iss + 2);
  });
});

describe("TCP header codec", () => {
  it("emit/parse round trip with every option combination (property)", () => {
    fc.assert(
      fc.property(
        fc.record({
          srcPort: fc.integer({ min: 0, max: 65535 }),
          dstPort: fc.integer({ min: 0, max: 65535 }),
          seq: fc.integer({ min: 0, max: 0xffffffff }),
          ack: fc.integer({ min: 0, max: 0xffffffff }),
          flags: fc.integer({ min: 0, max: 255 }),
          window: fc.integer({ min: 0, max: 65535 }),
          mss: fc.option(fc.integer({ min: 0, max: 65535 }), { nil: undefined }),
          wscale: fc.option(fc.integer({ min: 0, max: 14 }), { nil: undefined }),
          sackPermitted: fc.boolean(),
          ts: fc.option(fc.record({ val: fc.integer({ min: 0, max: 0xffffffff }), ecr: fc.integer({ min: 0, max: 0xffffffff }) }), { nil: undefined }),
          sack: fc.option(
            fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 2, maxLength: 6 }).filter((a) => a.length % 2 === 0),
            { nil: undefined },
          ),
        }),
        fc.uint8Array({ maxLength: 100 }),
        (o, payload) => {
          fc.pre(optionsLength(o) <= 40); // a TCP header holds at most 40 bytes of options
          const b = seg(o, payload);
          const s = newSegment();
          expect(parseTcp(b, s)).toBeUndefined();
          expect(tcpChecksumOk(b, PEER_IP, STACK_IP)).toBe(true);
          expect([s.srcPort, s.dstPort, s.seq, s.ack, s.flags, s.window]).toEqual([o.srcPort, o.dstPort, o.seq, o.ack, o.flags, o.window]);
          expect(s.mss).toBe(o.mss ?? -1);
          expect(s.wscale).toBe(o.wscale ?? -1);
          expect(s.sackPermitted).toBe(o.sackPermitted);
          expect(s.hasTimestamp).toBe(o.ts !== undefined);
          if (o.ts) expect([s.tsVal, s.tsEcr]).toEqual([o.ts.val, o.ts.ecr]);
          expect(s.sack.slice(0, 2 * s.sackCount)).toEqual(o.sack ?? []);
          expect(Buffer.from(s.payload)).toEqual(Buffer.from(payload));
        },
      ),
    );
  });

  it("rejects malformed headers and options", () => {
    const s = newSegment();
    const good = seg({ srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: ACK, window: 5, mss: 1460 });
    expect(parseTcp(good.subarray(0, 19), s)).toBe("truncated");
    const off = good.slice();
    off[12] = 0x40;
    expect(parseTcp(off, s)).toBe("bad_data_offset");
    const big = good.slice();
    big[12] = 0xf0;
    expect(parseTcp(big, s)).toBe("bad_data_offset");
    const opt = good.slice();
    opt[21] = 0; // MSS option with length 0
    expect(parseTcp(opt, s)).toBe("bad_option");
    const opt2 = good.slice();
    opt2[21] = 40; // runs past the header
    expect(parseTcp(opt2, s)).toBe("bad_option");
  });
});

describe("RFC 9293 §3.8.6.3 / RFC 5681 §4.2 delayed ACKs", () => {
  it("a lone segment is acknowledged after the delayed-ACK timeout; a second full segment is acknowledged at once", () => {
    const { netif, send, iss, clock } = established();
    send({}, new Uint8Array(100));
    expect(sent(netif)).toHaveLength(0); // ACK held back
    clock.advance(39);
    expect(sent(netif)).toHaveLength(0);
    clock.advance(1);
    const [late] = sent(netif);
    expect(late!.ack).toBe(iss + 101);
    send({ seq: iss + 101 }, new Uint8Array(1448));
    expect(sent(netif)).toHaveLength(0);
    send({ seq: iss + 101 + 1448 }, new Uint8Array(1448));
    const [now] = sent(netif);
    expect(now!.ack).toBe(iss + 101 + 2 * 1448);
  });
});

describe("receive window edge (RFC 9293 §3.8.6, RFC 7323 §2.3) and zero-window ACKs (§3.10.7.4)", () => {
  /** A connection whose application never reads, with window scaling on both sides. */
  function stalled(receiveBufferSize = 300_003) {
    const netif = new CaptureNetif();
    const clock = new VirtualClock();
    const stack = Stack.create({ netif, mac: STACK_MAC, ipv4: { address: "198.18.0.2/24" }, clock, random: new SeededRandom(3), limits: { tcp: { receiveBufferSize } } });
    netif.inject(arpReply());
    netif.take();
    let flow: import("../../../stack/tcp/flow.js").TcpFlow | undefined;
    stack.tcp.listen({ port: 80 }, (f) => {
      flow = f;
      f.pause();
    });
    const iss = 5000;
    netif.inject(ipv4Frame(6, seg({ srcPort: 40001, dstPort: 80, seq: iss, ack: 0, flags: SYN, window: 65535, mss: 1460, ts: { val: 1, ecr: 0 }, sackPermitted: true, wscale: 7 })));
    const [synack] = sent(netif);
    const wscale = synack!.wscale ?? 0;
    let ts = 2;
    const send = (o: Partial<TcpEmit>, payload?: Uint8Array) =>
      netif.inject(ipv4Frame(6, seg({ srcPort: 40001, dstPort: 80, seq: iss + 1, ack: synack!.seq + 1, flags: ACK, window: 512, ts: { val: ts++, ecr: synack!.tsVal }, ...o }, payload)));
    send({});
    return { netif, stack, send, iss, ours: synack!.seq, wscale, flow: () => flow! };
  }

  it("the right edge given to the peer never moves left, and every byte up to it is taken", () => {
    const { netif, stack, send, iss, wscale } = stalled();
    expect(wscale).toBeGreaterThan(0);
    let seq = iss + 1;
    let edge = 0;
    // Odd-sized segments fill the window: the free space is rarely a multiple of 2^wscale.
    for (let i = 0; i < 400; i++) {
      const room = edge ? edge - seq : 1000;
      if (room <= 0) break;
      const n = Math.min(room, 997 + (i % 7));
      send({ seq }, new Uint8Array(n).fill(i & 0xff));
      seq += n;
      for (const s of sent(netif)) {
        if (!(s.flags & ACK)) continue;
        const right = s.ack + (s.window << wscale);
        expect(right).toBeGreaterThanOrEqual(edge);
        expect(s.ack).toBe(seq); // everything sent so far, up to the edge, was accepted
        edge = right;
      }
    }
    // The window is now closed, and the last segment ended exactly on the promised edge.
    expect(seq).toBe(edge);
    expect(stack.stats().tcp!["out_of_window"] ?? 0).toBe(0);
  });

  it("one-byte segments to a reader that does not read cannot keep the window open: a connection holds at most its buffer and an eighth", () => {
    // Each ACK of a closing window rounds the edge up to the scale again (it never moves left):
    // without a bound, a peer sending a byte per segment would be offered more at every ACK.
    const { netif, stack, send, iss, wscale, flow } = stalled(4096);
    expect(wscale).toBe(7);
    let seq = iss + 1;
    let edge = iss + 1 + 4096;
    let acked = seq;
    for (let i = 0; i < 20_000 && seq < edge; i++) {
      send({ seq }, new Uint8Array([i & 0xff]));
      for (const s of sent(netif)) {
        if (!(s.flags & ACK)) continue;
        acked = s.ack;
        edge = Math.max(edge, s.ack + (s.window << wscale));
      }
      seq = acked;
    }
    const held = acked - (iss + 1);
    expect(held).toBeGreaterThanOrEqual(4096);
    expect(held).toBeLessThanOrEqual(4096 + 512);
    expect(flow().readableLength).toBe(held);
    expect(stack.stats().tcp!["drop_rcv_buffer_full"] ?? 0).toBeGreaterThan(0);
  });

  it("with our window closed, a peer's segment still acknowledges our data", async () => {
    const { netif, stack, send, iss, ours, wscale, flow } = stalled();
    let seq = iss + 1;
    let edge = 0;
    for (let i = 0; i < 400 && (edge === 0 || seq < edge); i++) {
      const n = Math.min(edge ? edge - seq : 1400, 1400);
      send({ seq }, new Uint8Array(n));
      seq += n;
      for (const s of sent(netif)) if (s.flags & ACK) edge = s.ack + (s.window << wscale);
    }
    expect(seq).toBe(edge); // zero window
    flow().write(Buffer.alloc(300, 1));
    await new Promise((r) => setImmediate(r));
    const data = sent(netif).find((s) => s.payload.length === 300);
    expect(data).toBeDefined();
    // The peer probes our closed window (one byte past it) and acknowledges our 300 bytes.
    send({ seq: seq + 1, ack: ours + 1 + 300, window: 512 }, new Uint8Array(1));
    expect(stack.stats().tcp!["zero_window_acks"]).toBe(1);
    expect(stack.tcp.layer.connections()[0]!.sndUna).toBe((ours + 1 + 300) >>> 0);
  });
});
