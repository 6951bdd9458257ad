// One TCP connection driven alone, through its narrow environment (stack/tcp/env.ts): no demux,
// no IP, no netif. Segments go in as parsed segments and come out as header reprs, with time
// from a virtual clock — the whole RFC 9293 life of a connection, step by step.
import { describe, expect, it } from "vitest";
import { ACK, FIN, PSH, SYN } from "../../../stack/wire/tcp.js";
import { harness, type Sent } from "./tcbharness.js";

describe("a TCP connection on its own (TcpEnv)", () => {
  it("runs the handshake, data both ways, delayed ACK and both FINs to CLOSED, with no layer", () => {
    const sent: Sent[] = [];
    const h = harness();
    const take = () => {
      sent.push(...h.out());
      return sent.splice(0);
    };
    h.tcb.connect(1000);
    // The SYN goes out at once: options offered (RFC 9293 §3.1, RFC 7323, RFC 2018).
    let s = take();
    expect(s).toHaveLength(1);
    expect(s[0]!.repr).toMatchObject({ seq: 1000, flags: SYN, mss: 1460, sackPermitted: true });
    expect(s[0]!.repr.wscale).toBeGreaterThan(0);
    expect(s[0]!.repr.ts).toBeDefined();
    const tsVal = s[0]!.repr.ts!.val;

    // SYN-ACK: established, the ACK owed goes out at the end of the batch.
    h.tcb.input(h.seg({ seq: 5000, ack: 1001, flags: SYN | ACK, mss: 1400, wscale: 7, sackPermitted: true, hasTimestamp: true, tsVal: 77, tsEcr: tsVal }));
    expect(h.tcb.state).toBe("ESTABLISHED");
    expect(h.events).toEqual(["connect"]);
    s = take();
    expect(s).toHaveLength(1);
    expect(s[0]!.repr).toMatchObject({ seq: 1001, ack: 5001, flags: ACK });
    expect(s[0]!.repr.ts).toMatchObject({ ecr: 77 });
    expect(h.tcb.mss).toBe(1400 - 12); // the peer's MSS less the timestamp option

    // Our data: one segment, PSH on the last.
    h.tcb.send(Buffer.from("hello"));
    s = take();
    expect(s).toHaveLength(1);
    expect(s[0]!.repr).toMatchObject({ seq: 1001, flags: ACK | PSH });
    expect(s[0]!.payload.toString()).toBe("hello");

    // The peer's data with the ACK of ours: delivered; one segment is ACKed after the delayed-ACK time.
    h.tcb.input(h.seg({ seq: 5001, ack: 1006, flags: ACK | PSH, payload: Buffer.from("world"), hasTimestamp: true, tsVal: 78, tsEcr: tsVal }));
    expect(Buffer.concat(h.data).toString()).toBe("world");
    expect(h.tcb.sendQ.length).toBe(0);
    expect(take()).toEqual([]);
    h.clock.advance(39);
    expect(take()).toEqual([]);
    h.clock.advance(1);
    s = take();
    expect(s).toHaveLength(1);
    expect(s[0]!.repr).toMatchObject({ seq: 1006, ack: 5006, flags: ACK });

    // The peer closes: CLOSE-WAIT, its FIN acknowledged at once.
    h.tcb.input(h.seg({ seq: 5006, ack: 1006, flags: ACK | FIN, hasTimestamp: true, tsVal: 79, tsEcr: tsVal }));
    expect(h.tcb.state).toBe("CLOSE-WAIT");
    expect(h.events).toContain("end");
    s = take();
    expect(s[0]!.repr).toMatchObject({ ack: 5007, flags: ACK });

    // We close: FIN, LAST-ACK; its ACK ends the connection and the environment is told.
    h.tcb.close();
    s = take();
    expect(s).toHaveLength(1);
    expect(s[0]!.repr).toMatchObject({ seq: 1006, flags: ACK | FIN });
    expect(h.tcb.state).toBe("LAST-ACK");
    h.tcb.input(h.seg({ seq: 5007, ack: 1007, flags: ACK, hasTimestamp: true, tsVal: 80, tsEcr: tsVal }));
    expect(h.tcb.state).toBe("CLOSED");
    expect(h.closed).toEqual([h.tcb]);
    expect(h.events.at(-1)).toBe("close");
  });

  it("retransmits an unacknowledged SYN on the RTO (1 s, doubling) and gives up with ETIMEDOUT", () => {
    const h = harness({ synRetries: 2 });
    h.tcb.connect(1);
    expect(h.out()).toHaveLength(1);
    h.clock.advance(1000);
    expect(h.out().map((x) => x.repr.flags)).toEqual([SYN]);
    h.clock.advance(2000);
    expect(h.out().map((x) => x.repr.flags)).toEqual([SYN]);
    h.clock.advance(4000);
    expect(h.tcb.state).toBe("CLOSED");
    expect(h.events).toEqual(["close:ETIMEDOUT"]);
    expect(h.env.counters.get("syn_retransmits")).toBe(2);
  });

  it("holds a retransmission while received frames wait unread (they may hold its ACK), for one RTO at most", () => {
    const h = harness({ tailLossProbe: false });
    h.establish();
    const rto = (h.tcb as unknown as { rtt: { rto: number } }).rtt.rto;
    h.tcb.send(Buffer.from("hello"));
    expect(h.out()).toHaveLength(1);
    // The event loop was busy: when the RTO expires, frames wait.
    h.pending.value = true;
    h.clock.advance(rto + 5);
    expect(h.out()).toEqual([]);
    expect(h.env.counters.get("retransmits_deferred")).toBe(1);
    // They are read, and hold the ACK: nothing to retransmit, ever.
    h.pending.value = false;
    h.tcb.input(h.seg({ seq: 5001, ack: 1006, flags: ACK }));
    h.clock.advance(10_000);
    expect(h.out()).toEqual([]);
    expect(h.env.counters.get("rto_timeouts")).toBe(0);

    // Frames wait the whole time (a flood): the retransmission goes out one RTO late, not never.
    h.tcb.send(Buffer.from("again"));
    expect(h.out()).toHaveLength(1);
    h.pending.value = true;
    const rto2 = (h.tcb as unknown as { rtt: { rto: number } }).rtt.rto;
    h.clock.advance(2 * rto2 - 2);
    expect(h.out()).toEqual([]);
    h.clock.advance(3);
    expect(h.out().map((x) => x.repr.seq)).toEqual([1006]);
    expect(h.env.counters.get("rto_timeouts")).toBe(1);
    expect(h.env.counters.get("retransmits_deferred")).toBe(2);
  });

  it("does not hold a SYN's retransmission for unread input (a half-open connection under a flood stays cheap)", () => {
    const h = harness({ synRetries: 2 });
    h.pending.value = true;
    h.tcb.connect(1);
    expect(h.out()).toHaveLength(1);
    h.clock.advance(1000);
    expect(h.out().map((x) => x.repr.flags)).toEqual([SYN]);
    expect(h.env.counters.get("retransmits_deferred")).toBe(0);
  });

  it("ACKs a large (offloaded) segment at once, as two full-sized segments, and delays a small one", () => {
    const h = harness();
    h.establish();
    // One MSS or less: the delayed ACK (RFC 9293 §3.8.6.3).
    h.tcb.input(h.seg({ seq: 5001, ack: 1001, flags: ACK, payload: Buffer.alloc(1460, 1) }));
    expect(h.out()).toEqual([]);
    h.clock.advance(40);
    expect(h.out().map((x) => x.repr.ack)).toEqual([5001 + 1460]);
    // A super-segment of three MSS (a TSO/GRO frame from the kernel): ACKed with the batch (RFC 5681 §4.2).
    h.tcb.input(h.seg({ seq: 6461, ack: 1001, flags: ACK, payload: Buffer.alloc(3 * 1460, 2) }));
    expect(h.out().map((x) => x.repr.ack)).toEqual([6461 + 3 * 1460]);
  });

  it("a read sends a pure window update only once the peer's window has fallen to half the buffer (Linux's rule), not one per batch", () => {
    const h = harness({ receiveBufferSize: 256 * 1024, maxReceiveBufferSize: 256 * 1024 });
    h.tcb.connect(1000);
    const scale = 2 ** h.out()[0]!.repr.wscale!; // our window's scale, as offered in the SYN
    h.tcb.input(h.seg({ seq: 5000, ack: 1001, flags: SYN | ACK, mss: 1460, wscale: 7 }));
    h.out();
    let seq = 5001;
    const take = (len: number) => {
      h.tcb.input(h.seg({ seq, ack: 1001, flags: ACK, payload: Buffer.alloc(len, 3) }));
      seq += len;
      return h.out();
    };
    // A bulk receive, the reader keeping up: each 64 KB frame gets its one ACK, and reading it
    // (the peer still has 3/4 of the buffer) sends nothing more.
    for (let i = 0; i < 4; i++) {
      expect(take(65536).map((s) => s.repr.ack)).toEqual([seq]);
      h.tcb.consumed(65536);
      expect(h.out()).toEqual([]);
    }
    // The reader falls behind: 160 KB unread leaves the peer 96 KB, under half the buffer.
    const acks = [take(65536), take(65536), take(32768)].flat();
    expect(acks.at(-1)!.repr.window * scale).toBeLessThanOrEqual(96 * 1024 + scale);
    // Reading it reopens the window with one update at once, carrying the whole buffer.
    h.tcb.consumed(160 * 1024);
    const upd = h.out();
    expect(upd).toHaveLength(1);
    expect(upd[0]!.repr).toMatchObject({ ack: seq, flags: ACK });
    expect(upd[0]!.repr.window * scale).toBeGreaterThanOrEqual(256 * 1024 - scale);
    // A closed window: the peer is blocked, so a read of one MSS (receiver SWS avoidance's
    // least worthwhile step, RFC 9293 §3.8.6.2.2) reopens it at once.
    expect(take(256 * 1024).at(-1)!.repr.window).toBe(0);
    h.tcb.consumed(1460);
    const reopen = h.out();
    expect(reopen).toHaveLength(1);
    expect(reopen[0]!.repr.window * scale).toBeGreaterThanOrEqual(1460);
  });
  it("takes the peer's FIN once when a retransmission cut at another boundary covers a FIN held out of order", () => {
    const h = harness();
    h.establish({ sackPermitted: true });
    // The peer's tail, 400 bytes and its FIN, arrives before the 1000 bytes ahead of it: held
    // out of order, a duplicate ACK with a SACK block for it (RFC 2018).
    const tail = Buffer.alloc(1400, 7);
    h.tcb.input(h.seg({ seq: 6001, ack: 1001, flags: ACK | FIN, payload: tail.subarray(1000) }));
    let s = h.out();
    expect(s.map((x) => [x.repr.ack, x.repr.sack])).toEqual([[5001, [6001, 6401]]]);
    // Its retransmission carries the whole 1400 bytes and the FIN in one segment (the sender cuts
    // segments anew: the room its own SACK option leaves, a tail loss probe, TSO). The FIN is
    // taken once (RFC 9293 §3.10.7.4): RCV.NXT ends one past it, not two. Two past, every later
    // ACK would acknowledge data the peer never sent, and it would drop them with the data they
    // carry (RFC 9293 §3.10.7.4, RFC 5961 §5.2): our data stalls (transfer.test.ts, TSO seed 82:
    // the client got 650,753 of 1,000,000 bytes), or an orphaned sender is reset.
    h.tcb.input(h.seg({ seq: 5001, ack: 1001, flags: ACK | FIN, payload: tail }));
    expect(h.tcb.state).toBe("CLOSE-WAIT");
    expect(h.tcb.rcvNxt).toBe(6402);
    expect(Buffer.concat(h.data)).toEqual(tail);
    expect(h.events).toEqual(["connect", "end"]);
    expect(h.env.counters.get("fins_received")).toBe(1);
    s = h.out();
    expect(s.map((x) => [x.repr.ack, x.repr.sack])).toEqual([[6402, undefined]]);
    // And the close completes: our FIN, the peer's ACK of it (its sequence number one past its FIN).
    h.tcb.close();
    expect(h.out().map((x) => [x.repr.seq, x.repr.flags])).toEqual([[1001, ACK | FIN]]);
    h.tcb.input(h.seg({ seq: 6402, ack: 1002, flags: ACK }));
    expect(h.tcb.state).toBe("CLOSED");
    expect(h.events.at(-1)).toBe("close");
  });

  it("PAWS (RFC 7323 §5.3) forgives a timestamp one tick old, as Linux does, and TS.Recent never moves back", () => {
    const h = harness();
    h.establish({ hasTimestamp: true, tsVal: 100 });
    const data = (seq: number, ts: number) => h.tcb.input(h.seg({ seq, ack: 1001, flags: ACK, payload: Buffer.alloc(10, 1), hasTimestamp: true, tsVal: ts, tsEcr: 1 }));
    data(5001, 200);
    data(5011, 199); // reordered on the way: a tick older, taken
    expect(h.env.counters.get("drop_paws_rejected")).toBe(0);
    expect(Buffer.concat(h.data).length).toBe(20);
    expect(h.tcb.tsRecent).toBe(200);
    data(5021, 197); // older than that: PAWS drops it
    expect(h.env.counters.get("drop_paws_rejected")).toBe(1);
    expect(Buffer.concat(h.data).length).toBe(20);
  });

  it("data a peer sends past its own FIN (held out of order) is dropped, never handed up after the end", () => {
    const h = harness();
    h.establish();
    h.tcb.input(h.seg({ seq: 5011, ack: 1001, flags: ACK, payload: Buffer.alloc(10, 2) })); // out of order
    expect(h.tcb.ooo.bytes).toBe(10);
    h.tcb.input(h.seg({ seq: 5001, ack: 1001, flags: ACK | FIN, payload: Buffer.alloc(10, 1) })); // FIN at 5011
    expect(Buffer.concat(h.data)).toEqual(Buffer.alloc(10, 1));
    expect(h.events.filter((e) => e === "end")).toHaveLength(1);
    expect(h.tcb.rcvNxt).toBe(5012);
    expect(h.tcb.ooo.bytes).toBe(0);
    expect(h.env.counters.get("drop_data_beyond_fin")).toBe(1);
    expect(h.out().map((x) => x.repr.ack)).toEqual([5012]);
  });
});
