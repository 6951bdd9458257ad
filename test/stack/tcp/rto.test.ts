// RFC 6298 retransmission timer on the virtual clock: exponential backoff, minimum RTO, and
// ETIMEDOUT after the configured number of retransmissions; bounded out-of-order queue.
import { describe, expect, it } from "vitest";
import { connected, pair, pattern, sha256, collect } from "./helpers.js";
import type { TcpFlow } from "../../../stack/tcp/flow.js";

describe("RFC 6298 retransmission timeout", () => {
  it("backs off exponentially from the minimum RTO and gives up with ETIMEDOUT", async () => {
    const p = await connected({ limits: { tcp: { maxRetransmits: 5, minRtoMs: 200, tailLossProbe: false } } }, false);
    const { client: c } = p;
    let err: (Error & { code?: string }) | undefined;
    c.on("error", (e) => (err = e));
    // The path dies: record when the client (re)sends its data segment.
    const times: number[] = [];
    const send = p.fa.send.bind(p.fa);
    p.fa.send = (f: Uint8Array) => {
      if (f.length > 60) times.push(p.clock.now());
      return true;
    };
    void send;
    c.write(Buffer.alloc(100, 1));
    await p.until(() => err !== undefined, "ETIMEDOUT");
    expect(err!.code).toBe("ETIMEDOUT");
    const gaps = times.slice(1).map((t, i) => Math.round(t - times[i]!));
    // 1 original + 5 retransmissions, each gap twice the one before (srtt ~0 on this link: RTO = min).
    expect(times.length).toBe(6);
    expect(gaps).toEqual([200, 400, 800, 1600, 3200]);
    expect(p.a.stats().tcp!["rto_timeouts"]).toBe(5);
    await p.close();
  });
});

describe("bounded out-of-order queue", () => {
  it("holds at most maxOooSegments, drops the rest (counted), and the transfer still completes", async () => {
    const p = await connected({ limits: { tcp: { maxOooSegments: 4 } } }, false);
    const { client: c, server } = p;
    const got = collect(server);
    let n = 0;
    const send = p.fa.send.bind(p.fa);
    p.fa.send = (f: Uint8Array) => (f.length > 1000 && ++n === 1 ? true : send(f)); // lose the first data segment
    const data = pattern(100_000);
    c.end(data);
    await p.until(() => got.ended, "transfer");
    expect(sha256(got.data())).toBe(sha256(data));
    const bs = p.b.stats().tcp!;
    expect(bs["drop_ooo_queue_full"] ?? 0, JSON.stringify(bs) + " n=" + n).toBeGreaterThan(0);
    expect(p.b.tcp.layer.connections().every((t) => t.ooo.segs.length <= 4)).toBe(true);
    await p.close();
  });
});

describe("stack-wide TCP buffer bound", () => {
  it("limits what all connections hold together: readers that stop reading cap memory, writers see backpressure, accounting returns to zero", async () => {
    const LIMIT = 512 * 1024;
    // Per connection the buffers would allow 1 MiB each; the stack-wide bound is what stops them.
    const p = await pair({ limits: { tcp: { maxBufferedBytes: LIMIT, receiveBufferSize: 1 << 20, sendBufferSize: 1 << 20 } } });
    const servers: TcpFlow[] = [];
    p.b.tcp.listen({ port: 80 }, (f) => {
      f.pause(); // nobody reads
      servers.push(f);
    });
    const clients = await Promise.all(Array.from({ length: 6 }, () => p.a.tcp.connect({ host: "198.18.0.2", port: 80 })));
    await p.until(() => servers.length === 6, "accept");
    const chunk = pattern(16 * 1024);
    const accepted = clients.map(() => 0);
    const fill = () =>
      clients.forEach((c, i) => {
        while (accepted[i]! < 2_000_000 && c.write(chunk)) accepted[i]! += chunk.length;
      });
    fill();
    for (let round = 0; round < 20; round++) {
      await p.until(() => false, "settle", 200).catch(() => undefined);
      fill();
    }
    // Neither stack holds more than its bound, give or take one write per connection (a Writable
    // always takes the chunk it is handed) and the windows promised before the pressure began.
    expect(p.b.tcp.layer.buffered).toBeLessThanOrEqual(LIMIT);
    expect(p.a.tcp.layer.buffered).toBeLessThanOrEqual(LIMIT + 6 * (chunk.length + 16 * 1024));
    expect(accepted.reduce((a, b) => a + b, 0)).toBeLessThan(6 * 2_000_000);
    expect(clients.every((c) => c.writableNeedDrain)).toBe(true);
    // Everything drains once the readers read; then nothing is left accounted.
    const got = servers.map((s) => collect(s));
    for (const s of servers) s.resume();
    for (const c of clients) c.end();
    await p.until(() => got.every((g) => g.ended), "all data");
    expect(got.reduce((a, g) => a + g.bytes, 0)).toBeGreaterThanOrEqual(accepted.reduce((a, b) => a + b, 0));
    await p.until(() => p.a.tcp.layer.buffered === 0 && p.b.tcp.layer.buffered === 0, "accounting back to zero");
    await p.close();
  });
});

describe("Karn's algorithm (RFC 6298 §3)", () => {
  it("an ACK for a retransmitted segment gives no RTT sample (without timestamps)", async () => {
    const p = await connected({ faults: { delayMs: 50 }, limits: { tcp: { timestamps: false, tailLossProbe: false } } }, false);
    const { client: c, server } = p;
    const got = collect(server);
    const before = c.tcpInfo!.srtt; // from the handshake: ~100 ms round trip
    expect(before).toBeGreaterThan(90);
    let n = 0;
    const send = p.fa.send.bind(p.fa);
    p.fa.send = (f: Uint8Array) => (f.length > 60 && ++n === 1 ? true : send(f)); // lose the first data segment
    c.write(Buffer.alloc(100, 7));
    await p.until(() => got.bytes === 100, "retransmitted data");
    await p.until(() => false, "ACK back", 300).catch(() => undefined);
    // A sample from the retransmission would be ~1 s (RTO) + 100 ms and pull SRTT far up.
    expect(c.tcpInfo!.srtt).toBeCloseTo(before, 0);
    expect(p.a.stats().tcp!["rto_timeouts"]).toBe(1);
    await p.close();
  });
});
