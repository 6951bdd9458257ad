// The congestion window counts data bytes only (RFC 5681 §3.1, RFC 3465): the SYN and the FIN
// occupy sequence space, but acknowledging them is no evidence that the path carries more data.
// A window one byte too large makes every slow-start burst k * MSS + 1, whose last byte leaves
// as a 1-byte segment once a TSO netif (or a bridge) cuts the burst.
import { describe, expect, it } from "vitest";
import { connected, pair, collect } from "./helpers.js";
import type { Tcb } from "../../../stack/tcp/tcb.js";
import type { Stack } from "../../../stack/stack.js";

const tcbOf = (s: Stack): Tcb => s.tcp.layer.connections()[0]!;

describe("RFC 5681 congestion window: data bytes only", () => {
  for (const cc of ["cubic", "newreno"] as const) {
    it(`passive open (${cc}): the ACK of our SYN leaves the initial window at exactly 10 x MSS`, async () => {
      const { b, close } = await connected({ limits: { tcp: { congestionControl: cc } } });
      const t = tcbOf(b);
      expect(t.cc.cwnd).toBe(10 * t.mss);
      await close();
    });
  }

  it("active open: the SYN-ACK does not grow the initial window either", async () => {
    const { a, close } = await connected();
    const t = tcbOf(a);
    expect(t.cc.cwnd).toBe(10 * t.mss);
    await close();
  });

  for (const side of ["passive", "active"] as const) {
    it(`${side} side: the ACKs covering a cwnd-limited burst and our FIN grow the window by the data bytes only`, async () => {
      const { a, b, client, server, until, close } = await connected();
      const [sender, receiverFlow, senderFlow] = side === "passive" ? [b, client, server] : [a, server, client];
      const got = collect(receiverFlow);
      const t = tcbOf(sender);
      const before = t.cc.cwnd;
      const n = 3 * before;
      senderFlow.end(Buffer.alloc(n, 7));
      await until(() => got.ended && t.sndUna === t.sndMax, "data and FIN acknowledged");
      expect(got.bytes).toBe(n);
      expect(t.cc.cwnd - before).toBe(n);
      await close();
    });
  }

  it("slow start from a passive open: after a 3-window burst the window is a whole number of segments", async () => {
    const p = await pair();
    let server: import("../../../stack/tcp/flow.js").TcpFlow | undefined;
    p.b.tcp.listen({ port: 80 }, (f) => (server = f));
    const client = await p.a.tcp.connect({ host: "198.18.0.2", port: 80 });
    await p.until(() => server !== undefined, "accept");
    const got = collect(client);
    const t = tcbOf(p.b);
    const n = 30 * t.mss;
    server!.end(Buffer.alloc(n, 1));
    await p.until(() => got.ended && t.sndUna === t.sndMax, "transfer done");
    expect(t.cc.cwnd % t.mss).toBe(0);
    expect(t.cc.cwnd).toBe(10 * t.mss + n);
    await p.close();
  });
});

// RFC 7661 (and Linux's tcp_is_cwnd_limited): cwnd grows only while it limits the sender.
describe("congestion window validation: an application-limited sender does not grow cwnd", () => {
  it("1000 bytes a round trip for 40 round trips leave cwnd at the initial window; a burst then grows it", async () => {
    const { a, client, server, until, clock, close } = await connected();
    const got = collect(server);
    const t = tcbOf(a);
    const iw = t.cc.cwnd;
    for (let i = 1; i <= 40; i++) {
      client.write(Buffer.alloc(1000, i));
      await until(() => got.bytes === 1000 * i && t.sndUna === t.sndMax, `write ${i} acknowledged`);
      clock.advance(1);
    }
    expect(t.cc.cwnd).toBe(iw);
    expect(a.stats().tcp?.["cwnd_not_grown_app_limited"]).toBeGreaterThanOrEqual(40);
    client.write(Buffer.alloc(3 * iw, 1));
    await until(() => got.bytes === 40_000 + 3 * iw && t.sndUna === t.sndMax, "burst acknowledged");
    expect(t.cc.cwnd).toBeGreaterThan(2 * iw);
    await close();
  });
});
