// Many stacks in one process as tenants: isolation, one shared scheduler (one timer, fair shares
// of CPU per turn), every per-tenant limit hit and counted, and what stack.close() does.
import { afterEach, describe, expect, it } from "vitest";
import { Stack, type StackLimits } from "../../stack/stack.js";
import { Scheduler } from "../../stack/core/scheduler.js";
import { VirtualSwitch } from "../../stack/netif/vswitch.js";
import { VirtualClock, type Clock } from "../../stack/core/clock.js";
import { SeededRandom } from "../../stack/core/random.js";
import { CaptureNetif } from "../helpers/capture.js";
import { emptyNetifStats, type Netif, type NetifReceiver, type NetifStats } from "../../stack/netif/netif.js";
import { PEER_IP, STACK_MAC, arpReply, ipv4Frame, udpDatagram } from "../helpers/frames.js";
import { parseIPv4, parseMac } from "../../stack/wire/addr.js";
import { runUntil } from "../helpers/virtual.js";
import type { TcpFlow } from "../../stack/tcp/flow.js";

const tick = () => new Promise<void>((r) => setImmediate(r));
const open: Stack[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});
function track<T extends Stack>(s: T): T {
  open.push(s);
  return s;
}

/** A stack on a capture netif and a virtual clock, fed frames by the test. */
function captured(limits: Parameters<typeof Stack.create>[0]["limits"] = {}) {
  const netif = new CaptureNetif();
  const clock = new VirtualClock(1000);
  const stack = track(Stack.create({ netif, mac: STACK_MAC, ipv4: { address: "198.18.0.2/24" }, clock, random: new SeededRandom(3), limits }));
  netif.inject(arpReply());
  netif.take();
  return { netif, clock, stack };
}

/**
 * Three stacks on a switch and one scheduler: `busy` (198.18.0.2, with `limits`) and `calm`
 * (198.18.0.3) count UDP datagrams to port 9, `out` sends from 198.18.0.1, neighbours resolved.
 * CPU time is what the test says: 0.1 ms per datagram delivered to the busy stack.
 */
async function busyAndCalm(clock?: Clock, limits?: StackLimits) {
  const got = { busy: 0, calm: 0, cpu: 0 };
  const scheduler = new Scheduler({ clock, cpuClock: () => got.cpu });
  const sw = new VirtualSwitch();
  const busy = track(Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" }, scheduler, limits }));
  const calm = track(Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.3/24" }, scheduler }));
  const sender = track(Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.1/24" }, scheduler }));
  busy.udp
    .createSocket("udp4", () => {
      got.busy++;
      got.cpu += 0.1;
    })
    .bind(9);
  calm.udp.createSocket("udp4", () => got.calm++).bind(9);
  const out = sender.udp.createSocket("udp4");
  await Promise.all([sender.ping("198.18.0.2"), sender.ping("198.18.0.3")]);
  return { busy, calm, got, out };
}

describe("isolation", () => {
  it("tenants on the same addresses keep separate state and counters; closing one leaves the others", async () => {
    const scheduler = new Scheduler();
    const tenants = [0, 1, 2].map(() => {
      const sw = new VirtualSwitch();
      const server = track(Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" }, scheduler }));
      const client = track(Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.1/24" }, scheduler }));
      return { server, client };
    });
    for (const [i, t] of tenants.entries()) t.server.tcp.listen({ port: 80 }, (f: TcpFlow) => f.end(`tenant ${i}\n`));
    const read = async (c: Stack) => {
      const f = await c.tcp.connect({ host: "198.18.0.2", port: 80, timeout: 3000 });
      let s = "";
      for await (const d of f) s += d;
      return s;
    };
    expect(await Promise.all(tenants.map((t) => read(t.client)))).toEqual(["tenant 0\n", "tenant 1\n", "tenant 2\n"]);
    await read(tenants[1]!.client);
    const opens = tenants.map((t) => t.server.stats().tcp!["passive_opens"]);
    expect(opens).toEqual([1, 2, 1]);
    await tenants[0]!.server.close();
    await tenants[0]!.client.close();
    expect(await read(tenants[2]!.client)).toBe("tenant 2\n");
    expect(tenants[2]!.server.stats().tcp!["passive_opens"]).toBe(2);
  });
});

describe("one scheduler for many stacks", () => {
  it("a thousand stacks with timers armed cost one clock timer; idle ones none", () => {
    const clock = new VirtualClock();
    let armed = 0;
    const counting: Clock = {
      now: () => clock.now(),
      setTimer: (d, cb) => {
        armed++;
        return clock.setTimer(d, cb);
      },
    };
    const scheduler = new Scheduler({ clock: counting });
    const stacks = Array.from({ length: 1000 }, (_, i) => track(Stack.create({ netif: new VirtualSwitch().port(), ipv4: { address: "198.18.0.2/24" }, scheduler, random: new SeededRandom(i) })));
    expect(scheduler.timers.size).toBe(0);
    expect(armed).toBe(0);
    // A ping in flight in every stack: one timer each, later deadlines first.
    for (const [i, s] of stacks.entries()) s.ping("198.18.0.1", { timeoutMs: 5000 - i }).catch(() => {});
    expect(scheduler.timers.size).toBeGreaterThanOrEqual(1000);
    expect(clock.pending()).toBe(1);
    expect(armed).toBeLessThan(20);
  });

  it("a stack over its CPU share waits for later turns; the others are served every turn", async () => {
    const { busy, calm, got, out } = await busyAndCalm();
    for (let i = 0; i < 640; i++) out.send("x", 9, "198.18.0.2");
    for (let i = 0; i < 10; i++) out.send("y", 9, "198.18.0.3");
    await tick(); // the sender's frames cross the switch
    await tick(); // first turn with both stacks waiting
    expect(got.calm).toBe(10);
    // One batch of 64 cost 6.4 ms against a 1 ms share per turn: the rest waits.
    expect(got.busy).toBe(64);
    for (let i = 0; i < 200 && got.busy < 640; i++) await tick();
    expect(got.busy).toBe(640);
    const t = busy.stats().tenant!;
    expect(t["deferred_turns"]).toBeGreaterThan(0);
    expect(t["cpu_ms"]).toBeCloseTo(64, 0);
    expect(calm.stats().tenant!["deferred_turns"]).toBe(0);
  });

  it("alone, a busy stack is not held back (the share is work-conserving), but yields the event loop after each quantum", async () => {
    let cpu = 0;
    const scheduler = new Scheduler({ cpuClock: () => cpu });
    const sw = new VirtualSwitch();
    const busy = track(Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" }, scheduler }));
    const sender = track(Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.1/24" }, scheduler }));
    let got = 0;
    busy.udp
      .createSocket("udp4", () => {
        got++;
        cpu += 0.1;
      })
      .bind(9);
    await sender.ping("198.18.0.2");
    const out = sender.udp.createSocket("udp4");
    for (let i = 0; i < 640; i++) out.send("x", 9, "198.18.0.2");
    // One poll of 64 costs 6.4 ms, past the 1 ms quantum: alone, the stack goes on at the very
    // next turn, every turn (no debt to wait out, nothing counted as deferred), but the event
    // loop gets control between two quanta, so another stack's frame that arrives meanwhile
    // (or any other I/O) waits for one quantum, not for all 640.
    await tick(); // the sender's frames cross the switch
    const perTurn: number[] = [];
    for (let i = 0; i < 20 && got < 640; i++) {
      const was = got;
      await tick();
      perTurn.push(got - was);
    }
    expect(got).toBe(640);
    expect(perTurn.length).toBeGreaterThanOrEqual(9);
    expect(perTurn.every((n) => n === 64)).toBe(true);
    expect(busy.stats().tenant!["deferred_turns"]).toBe(0);
  });
});

describe("cpuPercent: a stack's CPU bounded over time", () => {
  it("a flooded stack is throttled at its cap, its input waiting, while its neighbour is served; time brings the CPU back", async () => {
    // Protocol time is virtual; 10 % of a CPU with the default burstMs (100) is a bucket of 10 ms.
    const clock = new VirtualClock(1000);
    const { busy, calm, got, out } = await busyAndCalm(clock, { tenant: { cpuPercent: 10 } });
    const settle = async () => {
      for (let i = 0; i < 50; i++) await tick();
    };
    for (let i = 0; i < 1000; i++) out.send("x", 9, "198.18.0.2");
    await settle();
    // Its bucket (10 ms) and at most one poll of 64 beyond it, then nothing while time stands still.
    expect(got.busy).toBeGreaterThanOrEqual(100);
    expect(got.busy).toBeLessThanOrEqual(164);
    const first = got.busy;
    let t = busy.stats().tenant!;
    expect(t["cpu_throttled"]).toBe(1);
    // The neighbour is not held back by it.
    for (let i = 0; i < 10; i++) out.send("y", 9, "198.18.0.3");
    await settle();
    expect(got.calm).toBe(10);
    expect(got.busy).toBe(first);
    // 100 ms at 10 %: 10 ms more, about 100 datagrams (one poll of 64 beyond, at most).
    clock.advance(100);
    await settle();
    expect(got.busy - first).toBeGreaterThanOrEqual(36);
    expect(got.busy - first).toBeLessThanOrEqual(164);
    t = busy.stats().tenant!;
    expect(t["cpu_throttled"]).toBe(2);
    // It waited until its debt (at most one poll's overshoot, 6.4 ms) was paid at 10 %: 1-64 ms.
    expect(t["cpu_throttled_ms"]).toBeGreaterThanOrEqual(1);
    expect(t["cpu_throttled_ms"]).toBeLessThanOrEqual(64);
    // Over a longer run its CPU follows the cap: the bucket, 10 % of the time, one poll's overshoot.
    for (let ms = 0; ms < 1000; ms += 20) {
      clock.advance(20);
      await settle();
    }
    expect(got.busy).toBe(1000);
    const used = busy.stats().tenant!["cpu_ms"]!;
    expect(used).toBeCloseTo(100, 0);
    expect(clock.now() - 1000).toBeGreaterThanOrEqual((used - 10 - 6.4) * 10);
    expect(calm.stats().tenant!["cpu_throttled"]).toBe(0);
  });

  it("a pushing netif (as a TAP) is paused while the stack is throttled, resumed once its time is back; closed while throttled, no timer is left", async () => {
    const clock = new VirtualClock(1000);
    const cpu = { ms: 0 };
    const scheduler = new Scheduler({ clock, cpuClock: () => cpu.ms });
    const netif = new PausingSlabNetif(cpu);
    const stack = Stack.create({ netif, mac: STACK_MAC, ipv4: { address: "198.18.0.2/24" }, scheduler, random: new SeededRandom(5), limits: { tenant: { cpuPercent: 10 } } });
    netif.push([arpReply()], 0);
    let got = 0;
    stack.udp
      .createSocket("udp4", () => {
        got++;
        cpu.ms += 0.5;
      })
      .bind(9);
    const frames = () => Array.from({ length: 64 }, () => ipv4Frame(17, udpDatagram(1000, 9, new Uint8Array(10))));
    const untilPaused = async () => {
      for (let i = 0; i < 20 && !netif.paused; i++) {
        netif.push(frames(), 0);
        await tick();
      }
    };
    // A 10 ms bucket at 0.5 ms a datagram: about 20 datagrams, then reading stops.
    await untilPaused();
    expect(netif.paused).toBe(true);
    expect(got).toBeGreaterThanOrEqual(19);
    expect(got).toBeLessThanOrEqual(24);
    expect(stack.stats().tenant!["cpu_throttled"]).toBe(1);
    // Time gives it CPU back (10 % of 50 ms): reading resumes, the frames it held are polled.
    clock.advance(50);
    expect(netif.paused).toBe(false);
    for (let i = 0; i < 5; i++) await tick();
    expect(got).toBeGreaterThan(20);
    // Throttled again, then closed: its release timer goes with it.
    await untilPaused();
    expect(netif.paused).toBe(true);
    expect(scheduler.timers.size).toBeGreaterThan(0);
    await stack.close();
    expect(scheduler.timers.size).toBe(0);
    clock.advance(1000);
    expect(netif.resumes).toBe(1);
  });

  it("is range-checked, and 100 (the default) is no cap", () => {
    expect(() => Stack.create({ netif: new CaptureNetif(), ipv4: { address: "198.18.0.2/24" }, limits: { tenant: { cpuPercent: 0 } } })).toThrow(/limits\.tenant\.cpuPercent/);
    expect(() => Stack.create({ netif: new CaptureNetif(), ipv4: { address: "198.18.0.2/24" }, limits: { tenant: { cpuPercent: 101 } } })).toThrow(/limits\.tenant\.cpuPercent/);
    const s = track(Stack.create({ netif: new CaptureNetif(), ipv4: { address: "198.18.0.2/24" } }));
    expect(s.tenant.cpuPercent).toBe(100);
    expect(s.stats().tenant!["cpu_throttled"]).toBe(0);
  });
});

/**
 * A netif that works as a TAP does with the scheduler: a batch read at once is delivered until
 * the receiver is over its share (asked before every frame but the first), the rest is held for
 * poll(); the batch's whole cost, with the application work after it, is reported as a TAP's
 * addon reports it (afterBatch). CPU time is the test's counter.
 */
class SlabNetif implements Netif {
  readonly name = "slab0";
  readonly features = { checksumOffload: false, maxFrameSize: 1514 };
  readonly mtu = 1500;
  private rx: NetifReceiver | undefined;
  private held: Uint8Array[] = [];
  constructor(private readonly cpu: { ms: number }) {}
  start(rx: NetifReceiver): void {
    this.rx = rx;
  }
  /** One batch of `frames`; `appMs` of application work follows each frame delivered. Returns how many were. */
  push(frames: Uint8Array[], appMs: number): number {
    const rx = this.rx!;
    const t0 = this.cpu.ms;
    const n = this.deliver(frames, frames.length);
    this.held = frames.slice(n);
    if (this.held.length > 0) rx.ready?.();
    this.cpu.ms += n * appMs;
    rx.afterBatch?.(this.cpu.ms - t0);
    return n;
  }
  poll(max: number): boolean {
    const n = this.deliver(this.held, max);
    this.held = this.held.slice(n);
    return this.held.length > 0;
  }
  get waiting(): number {
    return this.held.length;
  }
  private deliver(frames: Uint8Array[], max: number): number {
    const rx = this.rx!;
    let i = 0;
    for (; i < frames.length && i < max; i++) {
      if (i > 0 && rx.overBudget?.()) break;
      rx.frame(frames[i]!);
    }
    rx.batchEnd?.();
    return i;
  }
  send(): boolean {
    return true;
  }
  stats(): NetifStats {
    return emptyNetifStats();
  }
  async close(): Promise<void> {
    this.rx = undefined;
  }
}

/** A SlabNetif that can be paused as a TAP is (its kernel queue holding what is not read). */
class PausingSlabNetif extends SlabNetif {
  paused = false;
  resumes = 0;
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
    this.resumes++;
  }
}

describe("a batch's cost counts the application work it brings", () => {
  it("a pushed batch stops earlier once its frames are seen to bring as much work again; a polled one is charged that estimate", async () => {
    const cpu = { ms: 0 };
    const scheduler = new Scheduler({ cpuClock: () => cpu.ms });
    const netif = new SlabNetif(cpu);
    const stack = track(Stack.create({ netif, mac: STACK_MAC, ipv4: { address: "198.18.0.2/24" }, scheduler, random: new SeededRandom(5) }));
    netif.push([arpReply()], 0);
    // 0.125 ms of work per datagram while the frame is delivered, 0.25 ms more after the batch.
    stack.udp
      .createSocket("udp4", () => {
        cpu.ms += 0.125;
      })
      .bind(9);
    const frames = () => Array.from({ length: 64 }, () => ipv4Frame(17, udpDatagram(1000, 9, new Uint8Array(10))));
    // Alone, one quantum (1 ms) per batch: first on its own time alone (8 frames), then on
    // the whole cost, three times that (3 frames: 0.375 ms delivering, 0.75 ms after).
    const delivered: number[] = [];
    for (let i = 0; i < 16; i++) delivered.push(netif.push(frames(), 0.25));
    expect(delivered[0]).toBe(8);
    expect(delivered.at(-1)).toBe(3);
    expect(delivered.every((n, i) => i === 0 || n <= delivered[i - 1]!)).toBe(true);
    // What is held is polled at the next turn, in quanta of that same estimate, each charged
    // with the work it brings (3 x its 0.375 ms), though the scheduler never sees that work.
    const before = stack.stats().tenant!["cpu_ms"]!;
    const held = netif.waiting;
    expect(held).toBe(61);
    await new Promise<void>((r) => setImmediate(r));
    expect(held - netif.waiting).toBe(3);
    expect(stack.stats().tenant!["cpu_ms"]! - before).toBeCloseTo(1.125, 1);
  });
});

describe("a netif that does not end its batches", () => {
  it("still has its frames' time charged, at the end of the tick", async () => {
    const cpu = { ms: 0 };
    const scheduler = new Scheduler({ cpuClock: () => cpu.ms });
    let rx: NetifReceiver | undefined;
    const netif: Netif = {
      name: "noend0",
      features: { checksumOffload: false, maxFrameSize: 1514 },
      mtu: 1500,
      start: (r) => void (rx = r),
      send: () => true,
      stats: () => emptyNetifStats(),
      close: async () => {},
    };
    const stack = track(Stack.create({ netif, mac: STACK_MAC, ipv4: { address: "198.18.0.2/24" }, scheduler, random: new SeededRandom(5) }));
    stack.udp
      .createSocket("udp4", () => {
        cpu.ms += 0.5;
      })
      .bind(9);
    rx!.frame(ipv4Frame(17, udpDatagram(1000, 9, new Uint8Array(10))));
    rx!.frame(ipv4Frame(17, udpDatagram(1000, 9, new Uint8Array(10))));
    expect(stack.stats().tenant!["cpu_ms"]).toBe(0);
    await Promise.resolve();
    expect(stack.stats().tenant!["cpu_ms"]).toBeCloseTo(1, 3);
  });
});

describe("a batch reads the CPU clock as often as its frames' cost needs", () => {
  it("every 8th frame while eight cost under a quarter of the quantum, every frame once they cost more", () => {
    const cpu = { ms: 0 };
    let reads = 0;
    const scheduler = new Scheduler({
      cpuClock: () => {
        reads++;
        return cpu.ms;
      },
    });
    const netif = new SlabNetif(cpu);
    const stack = track(Stack.create({ netif, mac: STACK_MAC, ipv4: { address: "198.18.0.2/24" }, scheduler, random: new SeededRandom(6) }));
    netif.push([arpReply()], 0);
    let cost = 1 / 128;
    stack.udp
      .createSocket("udp4", () => {
        cpu.ms += cost;
      })
      .bind(9);
    const frames = () => Array.from({ length: 64 }, () => ipv4Frame(17, udpDatagram(1000, 9, new Uint8Array(10))));
    netif.push(frames(), 0); // learns the cost of a frame
    reads = 0;
    expect(netif.push(frames(), 0)).toBe(64); // 0.5 ms: within the 1 ms quantum
    expect(reads).toBeLessThanOrEqual(12); // 63 questions, one read in 8, and the batch's own two
    cost = 1 / 16;
    netif.push(frames(), 0); // cut after the 1 ms quantum, at 8-frame steps: learns the new cost
    reads = 0;
    // Now asked at every frame: stopped at exactly the quantum (16 frames of 1/16 ms).
    expect(netif.push(frames(), 0)).toBe(16);
    expect(reads).toBeGreaterThanOrEqual(16);
  });
});

describe("per-tenant limits, each hit and counted", () => {
  const datagram = (port: number, src = PEER_IP, size = 10) => ipv4Frame(17, udpDatagram(1000, port, new Uint8Array(size), src), { src });
  /**
   * A stack with these tenant limits, fed for `ms` (virtual) a flood of 400 datagrams/s to port 9
   * from the peer and one datagram every `calmEvery` ms (0: none) to port 8 from 198.18.0.3: what each got.
   */
  const floodAndCalm = (tenant: NonNullable<StackLimits["tenant"]>, ms: number, calmEvery: number) => {
    const { netif, clock, stack } = captured({ tenant });
    const other = parseIPv4("198.18.0.3");
    netif.inject(arpReply(parseMac("02:00:00:00:00:03"), other));
    const got = { stack, flood: 0, calm: 0 };
    stack.udp.createSocket("udp4", () => got.flood++).bind(9);
    stack.udp.createSocket("udp4", () => got.calm++).bind(8);
    for (let t = 0; t < ms; t += 10) {
      for (let i = 0; i < 4; i++) netif.inject(datagram(9));
      if (calmEvery > 0 && t % calmEvery === 0) netif.inject(datagram(8, other));
      clock.advance(10);
    }
    return got;
  };

  it("packetsPerSec: beyond the burst, frames are dropped before parsing", () => {
    const { netif, clock, stack } = captured({ tenant: { packetsPerSec: 100, burstMs: 100 } });
    let got = 0;
    stack.udp.createSocket("udp4", () => got++).bind(9);
    const before = stack.stats().ipv4!["rx_packets"] ?? 0;
    for (let i = 0; i < 50; i++) netif.inject(datagram(9));
    // The ARP reply took one token of the 10.
    expect(got).toBe(9);
    const t = stack.stats().tenant!;
    expect(t["drop_packet_rate"]).toBe(41);
    expect(t["drops_by_limit"]).toBe(41);
    expect((stack.stats().ipv4!["rx_packets"] ?? 0) - before).toBe(9); // never parsed
    clock.advance(100);
    for (let i = 0; i < 20; i++) netif.inject(datagram(9));
    expect(got).toBe(19);
  });

  it("bytesPerSec: large frames run out of the byte budget first", () => {
    const { netif, stack } = captured({ tenant: { bytesPerSec: 100_000, burstMs: 1000, sourceSharePct: 100 } });
    let got = 0;
    stack.udp.createSocket("udp4", () => got++).bind(9);
    for (let i = 0; i < 100; i++) netif.inject(datagram(9, PEER_IP, 1400));
    // 100,000 bytes of 1442-byte frames (the 60-byte ARP reply first): 69 fit.
    expect(got).toBe(69);
    expect(stack.stats().tenant!["drop_byte_rate"]).toBe(31);
  });

  it("the default byte rate does not cut one bulk sender at 27 Gbit/s (20 Gbit/s was the default until 2026-12-03)", () => {
    const { netif, clock, stack } = captured({});
    let got = 0;
    stack.udp.createSocket("udp4", () => got++).bind(9);
    // 0.6 s (virtual) of 52 frames of 64 KB a millisecond: 3.4 GB/s, past 20 Gbit/s's burst after ~0.3 s.
    const big = datagram(9, PEER_IP, 64_000);
    for (let ms = 0; ms < 600; ms++) {
      for (let i = 0; i < 52; i++) netif.inject(big);
      clock.advance(1);
    }
    expect(got).toBe(600 * 52);
    expect(stack.stats().tenant!["drops_by_limit"] ?? 0).toBe(0);
  });

  it("sourceSharePct: under contention one flooding source gets its share, another source all it asks", () => {
    // 2 s: the flood offers 400/s, the calm source 25/s; the stack takes 100/s.
    const { stack, flood, calm } = floodAndCalm({ packetsPerSec: 100, burstMs: 100, sourceSharePct: 50 }, 2000, 40);
    expect(calm).toBe(50);
    expect(flood).toBeLessThan(200 - 50 + 15);
    const t = stack.stats().tenant!;
    expect(t["drop_source_share"]).toBeGreaterThan(0);
    expect(t["drop_packet_rate"]).toBeGreaterThan(0);
  });

  it("sourceSharePct: a source alone is not held to its share; it takes the whole rate", () => {
    // 2 s of a flood offering 400/s and nobody else: the stack takes 100/s, and all of it goes to
    // the flood (the 200 the rate allows and the burst).
    const { stack, flood, calm } = floodAndCalm({ packetsPerSec: 100, burstMs: 100, sourceSharePct: 50 }, 2000, 0);
    expect(calm).toBe(0);
    expect(flood).toBeGreaterThanOrEqual(200 - 3);
    const t = stack.stats().tenant!;
    // Refused while over its share in the contended half of the bucket, it leaves the bucket
    // refilling, so over time it still gets the rate.
    expect((t["drop_packet_rate"] ?? 0) + (t["drop_source_share"] ?? 0)).toBe(800 - flood);
  });

  it("sourceSharePct: a source that sends now and then, less often than the burst's time, still finds room beside a flood", () => {
    // The calm source sends every 300 ms, less often than the burst's 100 ms: each of its
    // datagrams still finds room, the flood held to its share whenever the bucket is contended.
    const { stack, flood, calm } = floodAndCalm({ packetsPerSec: 100, burstMs: 100, sourceSharePct: 50 }, 3000, 300);
    expect(calm).toBe(10);
    expect(flood).toBeGreaterThan(250);
    expect(stack.stats().tenant!["drop_source_share"]).toBeGreaterThan(0);
  });

  it("sourcePacketsPerSec: one source past its own rate is dropped, contended or not, another untouched (in the stack, where the netif cannot)", () => {
    // 1 s: the flood offers 400/s, far below the tenant's packet rate (no contention); the calm source 20/s.
    const { stack, flood, calm } = floodAndCalm({ sourcePacketsPerSec: 50, burstMs: 100 }, 1000, 50);
    expect(calm).toBe(20);
    // A burst of 5 (100 ms of 50/s), then 50/s: 5 + 50, give or take the last refill.
    expect(flood).toBeGreaterThanOrEqual(53);
    expect(flood).toBeLessThanOrEqual(56);
    const t = stack.stats().tenant!;
    expect(t["drop_source_rate"]).toBe(400 - flood);
    expect(t["source_limit_in_kernel"]).toBe(0);
    expect(t["drop_source_share"]).toBe(0);
    expect(t["drops_by_limit"]).toBe(400 - flood);
  });

  it("newConnectionsPerSec and maxConnectionsPerHost: SYNs beyond them are dropped and counted; another address still connects", async () => {
    const clock = new VirtualClock();
    const sw = new VirtualSwitch();
    const scheduler = new Scheduler({ clock });
    let seed = 1;
    const mk = (addr: string, limits = {}) => track(Stack.create({ netif: sw.port(), ipv4: { address: addr }, scheduler, random: new SeededRandom(seed++), limits }));
    const server = mk("198.18.0.2/24", { tcp: { newConnectionsPerSec: 4, maxConnectionsPerHost: 3 } });
    const greedy = mk("198.18.0.1/24");
    const modest = mk("198.18.0.3/24");
    const accepted: TcpFlow[] = [];
    server.tcp.listen({ port: 80 }, (f) => accepted.push(f));
    const until = (cond: () => boolean) => runUntil(sw, clock, cond, "connections", 10_000, 50);
    const flows = Array.from({ length: 5 }, () => greedy.tcp.connectFlow({ host: "198.18.0.2", port: 80 }));
    for (const f of flows) f.on("error", () => {});
    await until(() => accepted.length >= 3);
    await tick();
    expect(accepted.length).toBe(3);
    expect(server.stats().tenant!["drop_host_connections"]).toBeGreaterThan(0);
    // Another address is not held to the first one's count; the rate (4/s) admits it.
    const m = modest.tcp.connectFlow({ host: "198.18.0.2", port: 80 });
    await until(() => accepted.length >= 4);
    expect(m.connecting).toBe(false);
    // A burst of new connections from it beyond the rate waits for the next second.
    const more = Array.from({ length: 3 }, () => modest.tcp.connectFlow({ host: "198.18.0.2", port: 80 }));
    for (const f of more) f.on("error", () => {});
    await tick();
    await tick();
    expect(server.stats().tenant!["drop_syn_rate"]).toBeGreaterThan(0);
    await until(() => accepted.length >= 6);
    // The client side is bounded the same way: EMFILE past its own per-host count.
    const client = mk("198.18.0.4/24", { tcp: { maxConnectionsPerHost: 1 } });
    client.tcp.connectFlow({ host: "198.18.0.2", port: 80 }).on("error", () => {});
    expect(() => client.tcp.connectFlow({ host: "198.18.0.2", port: 80 })).toThrow(expect.objectContaining({ code: "EMFILE" }));
  });

  it("limits are range-checked at Stack.create", () => {
    expect(() => Stack.create({ netif: new CaptureNetif(), ipv4: { address: "198.18.0.2/24" }, limits: { tenant: { packetsPerSec: 0 } } })).toThrow(
      expect.objectContaining({ code: "ERR_OUT_OF_RANGE", message: expect.stringContaining("limits.tenant.packetsPerSec") }),
    );
    expect(() => Stack.create({ netif: new CaptureNetif(), ipv4: { address: "198.18.0.2/24" }, limits: { tenant: { cpuPerTurnUs: 1 } } })).toThrow(/limits\.tenant\.cpuPerTurnUs/);
    expect(() => Stack.create({ netif: new CaptureNetif(), ipv4: { address: "198.18.0.2/24" }, limits: { tenant: { sourcePacketsPerSec: 2e7 } } })).toThrow(/limits\.tenant\.sourcePacketsPerSec/);
  });
});

describe("stack.close()", () => {
  async function connected() {
    const scheduler = new Scheduler();
    const sw = new VirtualSwitch();
    const a = track(Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" }, scheduler }));
    const b = track(Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.1/24" }, scheduler }));
    const served: TcpFlow[] = [];
    const server = a.tcp.listen({ port: 80 }, (f) => served.push(f.on("error", () => {})));
    const idle = await b.tcp.connect({ host: "198.18.0.2", port: 80 });
    const busy = await b.tcp.connect({ host: "198.18.0.2", port: 80 });
    while (served.length < 2) await tick();
    return { a, b, server, idle, busy, served };
  }
  const ended = (f: TcpFlow) =>
    new Promise<Error | undefined>((resolve) => {
      let err: Error | undefined;
      f.on("error", (e) => (err = e));
      f.on("close", () => resolve(err));
    });

  it("ends every flow with 'close': ECONNABORTED where data was pending, a plain close otherwise", async () => {
    const { b, idle, busy } = await connected();
    const quiet = await b.tcp.connect({ host: "198.18.0.2", port: 80 });
    for (const f of [busy, quiet]) f.write(Buffer.alloc(1 << 20)); // more than the peer's window: data stays queued
    const [e1, e2] = [ended(idle), ended(busy)];
    // A flow with data pending but no 'error' listener closes without crashing the process.
    const e3 = new Promise((r) => quiet.once("close", r));
    await b.close();
    expect(await e1).toBeUndefined();
    expect(await e2).toMatchObject({ code: "ECONNABORTED", syscall: "read" });
    await e3;
    expect(quiet.destroyed).toBe(true);
  });

  it("the peer's flows hear a reset; servers emit 'close'; a connect in progress rejects with ECONNABORTED", async () => {
    const { a, b, server, served } = await connected();
    const peer = served.map(ended);
    const closed = new Promise<void>((r) => server.once("close", () => r()));
    // A connect to an address nobody answers stays in progress (ARP, then SYN).
    const pending = b.tcp.connect({ host: "198.18.0.9", port: 80 });
    await tick();
    await b.close();
    await expect(pending).rejects.toMatchObject({ code: "ECONNABORTED", syscall: "connect" });
    expect((await Promise.all(peer)).map((e) => (e as { code?: string } | undefined)?.code)).toEqual(["ECONNRESET", "ECONNRESET"]);
    await a.close();
    await closed;
    expect(server.listening).toBe(false);
  });

  it("after close, connect, listen, UDP bind and send, ping and DNS fail with ERR_STACK_CLOSED", async () => {
    const s = track(Stack.create({ netif: new CaptureNetif(), ipv4: { address: "198.18.0.2/24" }, dns: { servers: ["198.18.0.1"] } }));
    const sock = s.udp.createSocket("udp4");
    const inflight = s.ping("198.18.0.1", { timeoutMs: 5000 });
    const lookup = s.dns.lookup("example.test");
    await s.close();
    const closed = expect.objectContaining({ code: "ERR_STACK_CLOSED" });
    await expect(inflight).rejects.toEqual(closed);
    await expect(lookup).rejects.toEqual(closed);
    await expect(s.tcp.connect({ host: "198.18.0.1", port: 80 })).rejects.toEqual(closed);
    expect(() => s.tcp.listen({ port: 80 }, () => {})).toThrow(closed);
    expect(() => s.udp.createSocket("udp4")).toThrow(closed);
    expect(() => sock.bind(7)).toThrow(closed);
    const sent = await new Promise<Error | null>((r) => sock.send("x", 9, "198.18.0.1", (e: Error | null) => r(e)));
    expect(sent).toEqual(closed);
    await expect(s.ping("198.18.0.1")).rejects.toEqual(closed);
    await expect(s.dns.lookup("example.test")).rejects.toEqual(closed);
  });
});
