// RFC 6298 retransmission timer on the virtual clock: exponential backoff, minimum RTO, and
// ETIMEDOUT after the configured number of retransmissions; bounded out-of-order queue.
import { describe, expect, it } from "vitest";
import { pair, pattern, sha256, collect } from "./helpers.js";
import type { TcpFlow } from "../../stack/tcp/flow.js";

describe("RFC 6298 retransmission timeout", () => {
  it("backs off exponentially from the minimum RTO and gives up with ETIMEDOUT", async () => {
    const p = await pair({ limits: { tcp: { maxRetransmits: 5, minRtoMs: 200, tailLossProbe: false } } });
    let server: TcpFlow | undefined;
    p.b.tcp.listen({ port: 80 }, (f) => (server = f));
    const cp = p.a.tcp.connect({ host: "198.18.0.2", port: 80 });
    await p.until(() => server !== undefined, "accept");
    const c = await cp;
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
    const p = await pair({ limits: { tcp: { maxOooSegments: 4 } } });
    let server: TcpFlow | undefined;
    p.b.tcp.listen({ port: 80 }, (f) => (server = f));
    const cp = p.a.tcp.connect({ host: "198.18.0.2", port: 80 });
    await p.until(() => server !== undefined, "accept");
    const c = await cp;
    const got = collect(server!);
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
