// Connection deadlines (http/deadlines.ts) on their own: phases, keep-alive re-arming, the
// order of eviction, and stop. Real timers with margins of tens of milliseconds.
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { DeadlineTable, type ConnectionDeadline, type DeadlinePhase } from "../../http/deadlines.js";
import type { Flow } from "../../http/listener.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Checks that nothing expired yet are safe against a slow machine: a shorter sleep's timer runs
// (and its continuation) before a later deadline's. Waits for an expiry poll instead of sleeping.
async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond() && performance.now() < end) await sleep(5);
}

function setup(limits: { headersTimeoutMs: number; requestTimeoutMs: number; keepAliveTimeoutMs: number }) {
  const table = new DeadlineTable(limits);
  const expired: Array<{ d: ConnectionDeadline; phase: DeadlinePhase; at: number }> = [];
  const t0 = performance.now();
  const conn = () => {
    const flow = new PassThrough() as unknown as Flow & { bytesRead: number };
    flow.bytesRead = 0;
    const d = table.track(flow, (x, phase) => expired.push({ d: x, phase, at: performance.now() - t0 }));
    return { flow, d };
  };
  /** A request whose body has arrived (a GET), answered at once. */
  const request = (d: ConnectionDeadline) => {
    const req = new PassThrough();
    req.end();
    req.resume();
    d.requestStarted(req);
    d.requestDone();
  };
  return { table, expired, conn, request, t0 };
}

describe("connection deadlines", () => {
  it("a connection that never sends a head expires in the head phase", async () => {
    const s = setup({ headersTimeoutMs: 60, requestTimeoutMs: 1000, keepAliveTimeoutMs: 1000 });
    s.conn();
    await sleep(30);
    expect(s.expired).toEqual([]);
    await until(() => s.expired.length > 0);
    expect(s.expired.map((e) => e.phase)).toEqual(["head"]);
    expect(s.table.counts.head_timeouts).toBe(1);
  });

  it("keep-alive requests hold an idle connection open; it expires keepAliveTimeoutMs after the last", async () => {
    const s = setup({ headersTimeoutMs: 1000, requestTimeoutMs: 1000, keepAliveTimeoutMs: 80 });
    const { d } = s.conn();
    let last = 0;
    for (let i = 0; i < 10; i++) {
      s.request(d);
      last = performance.now() - s.t0;
      await sleep(30);
    }
    expect(s.expired).toEqual([]);
    await until(() => s.expired.length > 0);
    expect(s.expired.map((e) => e.phase)).toEqual(["idle"]);
    expect(s.expired[0]!.at - last).toBeGreaterThanOrEqual(75);
  });

  it("a shorter deadline after a longer one is kept (idle after head)", async () => {
    const s = setup({ headersTimeoutMs: 2000, requestTimeoutMs: 2000, keepAliveTimeoutMs: 50 });
    const { d } = s.conn();
    s.request(d);
    await until(() => s.expired.length > 0, 1500);
    expect(s.expired.map((e) => e.phase)).toEqual(["idle"]);
    expect(s.expired[0]!.at).toBeLessThan(1500); // not at the head deadline (2000)
  });

  it("a body still arriving runs the request deadline, past an earlier head deadline", async () => {
    const s = setup({ headersTimeoutMs: 40, requestTimeoutMs: 150, keepAliveTimeoutMs: 1000 });
    const { d } = s.conn();
    const req = new PassThrough(); // its body never ends
    d.requestStarted(req);
    await sleep(90);
    expect(s.expired).toEqual([]);
    await until(() => s.expired.length > 0);
    expect(s.expired.map((e) => e.phase)).toEqual(["request"]);
    expect(s.expired[0]!.at).toBeGreaterThanOrEqual(148);
  });

  it("bytes that came while idle start a head deadline instead of expiring", async () => {
    const s = setup({ headersTimeoutMs: 60, requestTimeoutMs: 1000, keepAliveTimeoutMs: 40 });
    const { d, flow } = s.conn();
    s.request(d);
    flow.bytesRead = 10; // a next request begun
    await sleep(50); // the idle deadline (40) passed and found the bytes
    expect(s.expired).toEqual([]);
    await until(() => s.expired.length > 0);
    expect(s.expired.map((e) => e.phase)).toEqual(["head"]);
  });

  it("evicts the connection that has waited longest, never one with a request in flight", () => {
    const s = setup({ headersTimeoutMs: 10_000, requestTimeoutMs: 10_000, keepAliveTimeoutMs: 10_000 });
    const a = s.conn();
    const b = s.conn();
    const c = s.conn();
    s.request(a.d); // a waited, then was served: now the most recent to wait
    c.d.requestStarted(new PassThrough()); // c is receiving a body: not waiting
    const gone: string[] = [];
    a.flow.on("close", () => gone.push("a"));
    b.flow.on("close", () => gone.push("b"));
    c.flow.on("close", () => gone.push("c"));
    expect(s.table.evictOldest()).toBe(true);
    expect(s.table.evictOldest()).toBe(true);
    expect(s.table.evictOldest()).toBe(false);
    expect(s.table.counts.evicted).toBe(2);
    return sleep(5).then(() => {
      expect(gone).toEqual(["b", "a"]);
      for (const x of [a, b, c]) x.d.stop();
    });
  });

  it("a closed connection's deadline never fires", async () => {
    const s = setup({ headersTimeoutMs: 40, requestTimeoutMs: 40, keepAliveTimeoutMs: 40 });
    const { flow } = s.conn();
    flow.destroy();
    await sleep(90);
    expect(s.expired).toEqual([]);
    expect(s.table.evictOldest()).toBe(false);
  });
});
