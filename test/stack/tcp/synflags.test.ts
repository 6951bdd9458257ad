// Odd flag combinations on SYNs and scans, frame by frame on the virtual switch (RFC 9293
// §3.10.7.1-2, matched to Linux), and how long a half-open connection lives.
import { describe, expect, it } from "vitest";
import { Stack } from "../../../stack/stack.js";
import { VirtualClock } from "../../../stack/core/clock.js";
import { SeededRandom } from "../../../stack/core/random.js";
import { VirtualSwitch, type SwitchPort } from "../../../stack/netif/vswitch.js";
import { ACK, FIN, SYN, emitTcp, newSegment, optionsLength, parseTcp, type TcpEmit, type TcpSegment } from "../../../stack/wire/tcp.js";
import { PEER_IP, STACK_IP, STACK_MAC, arpReply, decode4, ipv4Frame } from "../../helpers/frames.js";
import { SYN_CASES, expectedRst, reactionOf } from "../../helpers/synmatrix.js";

const tick = () => new Promise<void>((r) => setImmediate(r));

function segment(o: TcpEmit, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const hl = 20 + optionsLength(o);
  const b = new Uint8Array(hl + payload.length);
  b.set(payload, hl);
  emitTcp(b, 0, o, payload.length, PEER_IP, STACK_IP);
  return b;
}

/** A stack on a virtual switch listening on port 80 (81 closed), and a raw peer port beside it. */
function rig(limits: Parameters<typeof Stack.create>[0]["limits"] = {}) {
  const clock = new VirtualClock();
  const sw = new VirtualSwitch();
  const stack = Stack.create({ netif: sw.port("stack"), mac: STACK_MAC, ipv4: { address: "198.18.0.2/24" }, clock, random: new SeededRandom(5), limits });
  stack.tcp.listen({ port: 80 }, () => {});
  const peer: SwitchPort = sw.port("peer");
  const got: TcpSegment[] = [];
  peer.start({
    frame: (f) => {
      if (f[12] === 0x08 && f[13] === 0x06) return void peer.send(arpReply()); // the stack re-resolves us now and then
      if (f[12] !== 0x08 || f[13] !== 0x00) return;
      const d = decode4(f);
      if (d.ip.protocol !== 6) return;
      const s = newSegment();
      parseTcp(d.ip.payload, s);
      got.push({ ...s, payload: new Uint8Array(s.payload) });
    },
  });
  peer.send(arpReply());
  const send = async (o: TcpEmit, payload?: Uint8Array) => {
    peer.send(ipv4Frame(6, segment(o, payload)));
    for (let i = 0; i < 4; i++) await tick();
  };
  return { clock, stack, got, send, tcp: () => stack.stats().tcp! };
}

describe("RFC 9293 §3.10.7: odd flags on SYNs and scans, to an open and a closed port", () => {
  for (const [i, c] of SYN_CASES.entries()) {
    it(`${c.name} to ${c.open ? "an open" : "a closed"} port: ${c.expect === "none" ? "no answer" : c.expect}${c.drop ? `, counted ${c.drop}` : ""}`, async () => {
      const { stack, got, send, tcp } = rig();
      const before = tcp();
      const seq = 0x1000_0000 + i * 7919;
      const ack = 0x2000_0000 + i;
      await send(
        { srcPort: 40000 + i, dstPort: c.open ? 80 : 81, seq, ack: c.flags & ACK ? ack : 0, flags: c.flags, window: 64240, ...(c.flags & 0x02 ? { mss: 1460 } : {}) },
        new Uint8Array(c.payload ?? 0),
      );
      const reply = got[0];
      expect(reactionOf(reply?.flags)).toBe(c.expect);
      if (c.expect === "rst") {
        const want = expectedRst(c, seq, ack);
        expect({ flags: reply!.flags, seq: reply!.seq, ack: reply!.ack }).toEqual(want);
      }
      if (c.expect === "synack") {
        expect(reply!.ack).toBe((seq + 1) >>> 0); // the SYN only: data on a SYN is not taken
        expect(reply!.flags & 0x40).toBe(0); // no ECN here: never ECE on our SYN-ACK
      }
      const after = tcp();
      if (c.drop) expect((after[c.drop] ?? 0) - (before[c.drop] ?? 0)).toBe(1);
      expect(stack.tcp.layer.connectionCount).toBe(c.expect === "synack" ? 1 : 0);
      await stack.close();
    });
  }

  it("a SYN+FIN on a TIME-WAIT connection's 4-tuple does not replace it; a newer plain SYN does (RFC 6191)", async () => {
    const { stack, got, send, tcp } = rig({ tcp: { mslMs: 60_000 } });
    const o = { srcPort: 40000, dstPort: 80, window: 64240 };
    await send({ ...o, seq: 100, ack: 0, flags: SYN });
    const iss = got.at(-1)!.seq;
    await send({ ...o, seq: 101, ack: iss + 1, flags: ACK });
    const t = stack.tcp.layer.connections()[0]!;
    expect(t.state).toBe("ESTABLISHED");
    t.close(); // we close first: FIN-WAIT-1
    for (let i = 0; i < 4; i++) await tick();
    expect(got.at(-1)!.flags & FIN).toBeTruthy();
    await send({ ...o, seq: 101, ack: iss + 2, flags: FIN | ACK });
    // The FIN is acknowledged, and the connection handed over to a TIME-WAIT record.
    expect(got.at(-1)).toMatchObject({ flags: ACK, seq: iss + 2, ack: 102 });
    expect(t.state).toBe("CLOSED");
    expect(tcp()).toMatchObject({ time_wait: 1, time_wait_connections: 1, connections: 1 });
    expect(stack.tcp.layer.connections()).toEqual([]);
    // The record acknowledges a retransmitted FIN again (our ACK was lost).
    const n = got.length;
    await send({ ...o, seq: 101, ack: iss + 2, flags: FIN | ACK });
    expect(got.length).toBe(n + 1);
    expect(got.at(-1)).toMatchObject({ flags: ACK, seq: iss + 2, ack: 102 });
    // Data after the FIN is not taken: an ACK, nothing else.
    await send({ ...o, seq: 102, ack: iss + 2, flags: ACK }, new Uint8Array(10));
    expect(got.at(-1)).toMatchObject({ flags: ACK, seq: iss + 2, ack: 102 });
    await send({ ...o, seq: 5000, ack: 0, flags: SYN | FIN });
    expect(tcp()).toMatchObject({ time_wait_connections: 1 });
    expect(stack.tcp.layer.connections()).toEqual([]);
    // An older SYN does not replace it either (RFC 6191: only a newer one); it is challenged.
    await send({ ...o, seq: 50, ack: 0, flags: SYN });
    expect(tcp()).toMatchObject({ time_wait_connections: 1 });
    expect(got.at(-1)).toMatchObject({ flags: ACK, seq: iss + 2, ack: 102 });
    await send({ ...o, seq: 5000, ack: 0, flags: SYN });
    const now = stack.tcp.layer.connections()[0]!;
    expect(now.state).toBe("SYN-RECEIVED");
    expect(got.at(-1)).toMatchObject({ flags: SYN | ACK, ack: 5001 });
    expect(tcp()).toMatchObject({ time_wait_connections: 0, connections: 1 });
    await stack.close();
  });

  it("TIME-WAIT records: an exact RST ends one, an in-window one is challenged; each lasts 2 x MSL from its last FIN", async () => {
    const { stack, got, send, tcp, clock } = rig({ tcp: { mslMs: 1000 } });
    // Two connections closed by us first, each into TIME-WAIT.
    const isn: number[] = [];
    for (const port of [40001, 40002]) {
      const o = { srcPort: port, dstPort: 80, window: 64240 };
      await send({ ...o, seq: 100, ack: 0, flags: SYN });
      isn.push(got.at(-1)!.seq);
      await send({ ...o, seq: 101, ack: isn.at(-1)! + 1, flags: ACK });
      stack.tcp.layer
        .connections()
        .find((c) => c.remotePort === port)!
        .close();
      for (let i = 0; i < 4; i++) await tick();
      await send({ ...o, seq: 101, ack: isn.at(-1)! + 2, flags: FIN | ACK });
    }
    expect(tcp()).toMatchObject({ time_wait_connections: 2 });
    // In window but not exact: a challenge ACK (RFC 5961 §3.2), the record stays.
    const challenges = tcp()["challenge_acks"] ?? 0;
    await send({ srcPort: 40001, dstPort: 80, window: 0, seq: 110, ack: 0, flags: 0x04 });
    expect(tcp()["challenge_acks"]).toBe(challenges + 1);
    expect(tcp()).toMatchObject({ time_wait_connections: 2 });
    // Exact: the record is gone; the next segment on that tuple meets no connection (a RST).
    await send({ srcPort: 40001, dstPort: 80, window: 0, seq: 102, ack: 0, flags: 0x04 });
    expect(tcp()).toMatchObject({ time_wait_connections: 1 });
    await send({ srcPort: 40001, dstPort: 80, window: 64240, seq: 102, ack: isn[0]! + 2, flags: ACK });
    expect(got.at(-1)!.flags & 0x04).toBeTruthy();
    // The other: 900 ms on, a retransmitted FIN restarts its 2 s; it is still there 1.5 s later, gone by 2.1 s.
    clock.advance(900);
    await send({ srcPort: 40002, dstPort: 80, window: 64240, seq: 101, ack: isn[1]! + 2, flags: FIN | ACK });
    clock.advance(1500);
    for (let i = 0; i < 4; i++) await tick();
    expect(tcp()).toMatchObject({ time_wait_connections: 1 });
    clock.advance(600);
    for (let i = 0; i < 4; i++) await tick();
    expect(tcp()).toMatchObject({ time_wait_connections: 0, connections: 0 });
    await stack.close();
  });
});

describe("half-open connections (SYN-RECEIVED)", () => {
  it("live about 63 s like Linux's (tcp_synack_retries = 5): the SYN-ACK is sent 6 times, at 0, 1, 3, 7, 15 and 31 s", async () => {
    const { clock, stack, got, send, tcp } = rig();
    await send({ srcPort: 40000, dstPort: 80, seq: 7, ack: 0, flags: SYN, window: 64240 });
    const sentAt: number[] = [];
    let gone = -1;
    for (let n = 0; n < 100 && gone < 0; n++) {
      while (got.length) if (got.shift()!.flags === (SYN | ACK)) sentAt.push(clock.now());
      if (stack.tcp.layer.connectionCount === 0) gone = clock.now();
      const d = clock.nextDeadline();
      if (d === undefined || d > 200_000) break;
      clock.advanceTo(d);
      for (let i = 0; i < 4; i++) await tick();
    }
    expect(sentAt).toEqual([0, 1000, 3000, 7000, 15_000, 31_000]);
    expect(gone).toBe(63_000);
    expect(tcp()["syn_retransmits"]).toBe(5);
    await stack.close();
  });

  it("synAckRetries bounds the retransmissions", async () => {
    const { clock, stack, got, send } = rig({ tcp: { synAckRetries: 1 } });
    await send({ srcPort: 40000, dstPort: 80, seq: 7, ack: 0, flags: SYN, window: 64240 });
    clock.advance(10_000);
    for (let i = 0; i < 4; i++) await tick();
    expect(got.filter((s) => s.flags === (SYN | ACK)).length).toBe(2);
    expect(stack.tcp.layer.connectionCount).toBe(0);
    await stack.close();
  });
});
