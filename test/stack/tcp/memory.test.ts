// TCP buffer memory under hostile load, on the virtual clock: the bound is on bytes actually
// held (idle connections with open windows cost nothing), pressure shrinks windows gradually
// down to a per-connection minimum instead of offering newcomers a zero window, windows reopen
// with an update when memory frees, and one remote address is held to its share.
import { describe, expect, it } from "vitest";
import { pair, pattern, type Pair } from "./helpers.js";
import { Stack } from "../../../stack/stack.js";
import { SeededRandom } from "../../../stack/core/random.js";
import { TcpMemory } from "../../../stack/tcp/memory.js";
import type { TcpFlow } from "../../../stack/tcp/flow.js";

/** A paused server on b:80 keeping every flow it accepts. */
function pausedServer(p: Pair): TcpFlow[] {
  const held: TcpFlow[] = [];
  p.b.tcp.listen({ port: 80 }, (f) => {
    f.pause();
    f.on("error", () => {});
    held.push(f);
  });
  return held;
}

/** Open `n` connections from a to b:80, driving the clock (SYNs beyond ARP's queue are retransmitted). */
async function connectAll(p: Pair, n: number): Promise<TcpFlow[]> {
  const out: TcpFlow[] = [];
  for (let i = 0; i < n; i++) void p.a.tcp.connect({ host: "198.18.0.2", port: 80 }).then((f) => out.push(f));
  await p.until(() => out.length === n, `${n} connections`);
  return out;
}

/** Write `data` and keep writing as the flow drains (ignoring errors). */
function push(f: TcpFlow, data: Buffer): void {
  f.on("error", () => {});
  f.write(data);
}

describe("TCP memory: what is bounded is bytes held", () => {
  it("connections that sent a byte and idle promise nothing: a newcomer still gets a full window and is served at once", async () => {
    // 40 x 256 KiB of windows would be 10 MiB; the stack may hold 4 MiB. Only held bytes count.
    const p = await pair({ limits: { tcp: { maxBufferedBytes: 4 << 20 } } });
    const held = pausedServer(p);
    const idle = await connectAll(p, 40);
    for (const c of idle) c.write("G");
    await p.until(() => held.length === 40 && held.every((f) => f.readableLength === 1), "40 idle connections with a byte each");
    expect(p.b.tcp.layer.buffered).toBe(40);
    await p.until(() => false, "their ACKs (and windows) go out", 500).catch(() => undefined);
    const late = await p.a.tcp.connect({ host: "198.18.0.2", port: 80 });
    // The SYN-ACK offered the full (unscaled) window, not what was left of promised memory.
    expect(late.tcpInfo!.sndWnd).toBe(65535);
    const t0 = p.clock.now();
    late.write(pattern(20_000));
    await p.until(() => held.length === 41 && held[40]!.readableLength === 20_000, "the newcomer's request");
    expect(p.clock.now() - t0).toBeLessThan(50);
    await p.close();
  });
});

describe("TCP memory pressure", () => {
  it("shrinks receive buffers linearly from the pressure mark to minReceiveWindow at the bound (stack and per host)", () => {
    const m = new TcpMemory({ maxBufferedBytes: 1000_000, bufferPressureBytes: 500_000, maxBufferedBytesPerHost: 400_000, minReceiveWindow: 4096 });
    const a = m.attach("a");
    const b = m.attach("b");
    const size = 262_144;
    expect(m.receiveBuffer(a, size)).toBe(size);
    m.charge(b, 500_000); // b: over its own share; the stack: at the pressure mark
    expect(m.receiveBuffer(a, size)).toBe(size);
    expect(m.receiveBuffer(b, size)).toBe(4096);
    m.charge(b, -200_000);
    m.charge(a, 450_000); // stack 750 000: halfway between the marks; a: past its share
    expect(m.receiveBuffer(b, size)).toBe(Math.floor(size - 0.5 * (size - 4096)));
    expect(m.overLimit(a)).toBe("host_memory");
    expect(m.overLimit(b)).toBeUndefined();
    m.charge(a, -450_000);
    m.charge(b, -300_000);
    expect(m.held).toBe(0);
    m.detach(a);
    m.detach(b);
    expect(m.hostCount).toBe(0);
  });

  /** A stack held at its 2 MiB bound by 12 connections whose reader never reads. */
  async function atTheBound(): Promise<{ p: Pair; held: TcpFlow[]; LIMIT: number }> {
    const LIMIT = 2 << 20;
    const p = await pair({ limits: { tcp: { maxBufferedBytes: LIMIT, maxBufferedBytesPerHost: LIMIT, minReceiveWindow: 4096 } } });
    const held = pausedServer(p);
    for (const c of await connectAll(p, 12)) push(c, pattern(256 * 1024));
    await p.until(() => false, "fill", 3000).catch(() => undefined);
    return { p, held, LIMIT };
  }

  it("at the hard bound a newcomer still gets minReceiveWindow and its request through; held memory stays within the bound", async () => {
    const { p, held, LIMIT } = await atTheBound();
    const b = p.b.tcp.layer;
    expect(b.buffered).toBeGreaterThan(LIMIT - 256 * 1024);
    expect(b.buffered).toBeLessThanOrEqual(LIMIT + 12 * 4096);
    expect(p.b.stats().tcp!["memory_pressure_pct"]).toBeGreaterThan(80);
    const late = await p.a.tcp.connect({ host: "198.18.0.2", port: 80 });
    expect(late.tcpInfo!.sndWnd).toBeGreaterThanOrEqual(4096);
    late.write(pattern(2000));
    await p.until(() => held.length === 13 && held[12]!.readableLength === 2000, "the newcomer's request");
    await p.close();
  });

  it("when memory frees, squeezed windows reopen with an update at once (no wait for a zero-window probe)", async () => {
    const { p, held } = await atTheBound();
    // A connection that arrives under full pressure fills its minimum and sees a zero window.
    const victim = await p.a.tcp.connect({ host: "198.18.0.2", port: 80 });
    push(victim, pattern(100_000));
    await p.until(() => held.length === 13, "accept");
    const v = held[12]!;
    // Long enough for the victim's zero-window probes to back off to seconds.
    await p.until(() => false, "stall", 20_000).catch(() => undefined);
    expect(v.readableLength).toBeLessThanOrEqual(4096 + 1460);
    // The hogs' readers go away (their unread data is dropped, the peers reset): memory frees.
    const t0 = p.clock.now();
    for (const f of held.slice(0, 12)) f.destroy();
    await p.until(() => v.readableLength >= 60_000, "the victim's window reopened");
    expect(p.clock.now() - t0).toBeLessThan(100);
    expect(p.b.stats().tcp!["window_updates_memory"]).toBeGreaterThan(0);
    await p.close();
  });

  it("one remote address is held to its share: another host's transfer is not squeezed", async () => {
    const LIMIT = 4 << 20;
    const p = await pair({ limits: { tcp: { maxBufferedBytes: LIMIT } } }); // per host: 1 MiB
    const c = Stack.create({ netif: p.sw.port("c"), clock: p.clock, random: new SeededRandom(99), ipv4: { address: "198.18.0.3/24" } });
    const held = pausedServer(p);
    const hogs = await connectAll(p, 12);
    for (const h of hogs) push(h, pattern(256 * 1024));
    await p.until(() => false, "settle", 3000).catch(() => undefined);
    const fromA = p.b.tcp.layer.connections().reduce((n, t) => n + t.unread, 0);
    expect(fromA).toBeGreaterThan(768 * 1024);
    expect(fromA).toBeLessThanOrEqual((1 << 20) + 12 * 4096);
    expect(p.b.stats().tcp!["drop_rcv_host_memory"]).toBeGreaterThan(0); // the share was hit, and counted
    const other = await c.tcp.connect({ host: "198.18.0.2", port: 80 });
    push(other, pattern(200_000));
    await p.until(() => held.length === 13 && held[12]!.readableLength === 200_000, "the other host's 200 KB");
    await c.close();
    await p.close();
  });
});
