// Fault injection: drop, duplicate, reorder, corrupt, delay and rate, reproducible from a seed.
import { describe, expect, it } from "vitest";
import { FaultyNetif, type FaultSpec } from "../../../stack/netif/faulty.js";
import { VirtualSwitch } from "../../../stack/netif/vswitch.js";
import { VirtualClock } from "../../../stack/core/clock.js";

const tick = () => new Promise<void>((r) => setImmediate(r));

async function run(tx: FaultSpec, n: number, seed = 7, clock = new VirtualClock()) {
  const [x, y] = VirtualSwitch.pair({ mtu: 9000 });
  const fx = new FaultyNetif(x, { seed, clock, tx });
  const got: Uint8Array[] = [];
  fx.start({ frame: () => {} });
  y.start({ frame: (f) => got.push(f) });
  const sent: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const f = new Uint8Array(100);
    f[0] = 2;
    f[6] = 2;
    new DataView(f.buffer).setUint32(20, i);
    sent.push(f);
    fx.send(f);
  }
  await tick();
  return { fx, got, sent, clock };
}

const ids = (fs: Uint8Array[]) => fs.map((f) => new DataView(f.buffer, f.byteOffset).getUint32(20));

describe("FaultyNetif", () => {
  it("drops close to the configured probability", async () => {
    const { got, fx } = await run({ drop: 0.1 }, 10000);
    expect(got.length).toBeGreaterThan(8800);
    expect(got.length).toBeLessThan(9200);
    expect(fx.faultStats().dropped).toBe(10000 - got.length);
  });

  it("is reproducible with the same seed and differs with another", async () => {
    const a = ids((await run({ drop: 0.3 }, 500, 1)).got);
    const b = ids((await run({ drop: 0.3 }, 500, 1)).got);
    const c = ids((await run({ drop: 0.3 }, 500, 2)).got);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });

  it("duplicates frames", async () => {
    const { got, fx } = await run({ duplicate: 0.2 }, 1000);
    expect(got.length).toBe(1000 + fx.faultStats().duplicated);
    expect(fx.faultStats().duplicated).toBeGreaterThan(100);
  });

  it("corrupts exactly one bit past the Ethernet header, on a copy", async () => {
    const { got, sent, fx } = await run({ corrupt: 1 }, 50);
    expect(fx.faultStats().corrupted).toBe(50);
    for (let i = 0; i < 50; i++) {
      const s = sent[i]!;
      expect(s.subarray(21, 24).every((x) => x === 0) || s[23] === (i & 0xff)).toBe(true); // the sender's buffer is intact
      let bits = 0;
      const g = got[i]!;
      for (let j = 0; j < s.length; j++) {
        let x = s[j]! ^ g[j]!;
        if (j < 14) expect(x).toBe(0);
        while (x) {
          bits += x & 1;
          x >>= 1;
        }
      }
      expect(bits).toBe(1);
    }
  });

  it("reorders: a held frame arrives after the next one", async () => {
    const { got } = await run({ reorder: 0.2 }, 200);
    const order = ids(got);
    expect(order.length).toBe(200);
    expect(order).not.toEqual([...order].sort((a, b) => a - b));
    expect([...order].sort((a, b) => a - b)).toEqual([...Array(200).keys()]);
  });

  it("delays by the virtual clock: nothing arrives before the clock advances", async () => {
    const clock = new VirtualClock();
    const { got } = await run({ delayMs: 50 }, 10, 1, clock);
    expect(got.length).toBe(0);
    clock.advance(49);
    await tick();
    expect(got.length).toBe(0);
    clock.advance(1);
    await tick();
    expect(got.length).toBe(10);
  });

  it("rate-limits with a bounded queue", async () => {
    const clock = new VirtualClock();
    // 100-byte frames at 80 kbit/s: 10 ms each; queue of 5.
    const { got, fx } = await run({ rateBps: 80_000, queueLimit: 5 }, 20, 1, clock);
    expect(fx.faultStats().rateDropped).toBe(15);
    clock.advance(25);
    await tick();
    expect(got.length).toBe(2);
    clock.advance(100);
    await tick();
    expect(got.length).toBe(5);
  });
});

describe("FaultyNetif: bursty loss, token bucket, bounds, replay", () => {
  /** Lengths of the runs of consecutive lost frames. */
  const bursts = (lost: boolean[]): number[] => {
    const out: number[] = [];
    let run = 0;
    for (const l of lost) {
      if (l) run++;
      else if (run) {
        out.push(run);
        run = 0;
      }
    }
    if (run) out.push(run);
    return out;
  };
  const lostFlags = (got: Uint8Array[], n: number): boolean[] => {
    const seen = new Set(ids(got));
    return [...Array(n).keys()].map((i) => !seen.has(i));
  };
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

  it("Gilbert-Elliott: mean loss p/(p+r) and mean burst 1/r, where random loss at the same rate has bursts of about 1", async () => {
    const n = 40000;
    const ge = lostFlags((await run({ gilbertElliott: { p: 0.02, r: 0.25 } }, n)).got, n);
    const rnd = lostFlags((await run({ drop: 0.02 / 0.27 }, n)).got, n);
    const geLoss = ge.filter(Boolean).length / n;
    expect(geLoss).toBeGreaterThan(0.065);
    expect(geLoss).toBeLessThan(0.083); // 0.02 / 0.27 = 0.074
    expect(mean(bursts(ge))).toBeGreaterThan(3.5); // 1 / 0.25 = 4
    expect(mean(bursts(ge))).toBeLessThan(4.5);
    expect(mean(bursts(rnd))).toBeLessThan(1.2);
  });

  it("Gilbert-Elliott with 1-h and 1-k: losses in the good state too, not every frame in the bad one", async () => {
    const n = 40000;
    const { got } = await run({ gilbertElliott: { p: 0.1, r: 0.1, lossBad: 0.5, lossGood: 0.01 } }, n);
    const loss = 1 - got.length / n; // half the time in each state: (0.5 + 0.01) / 2
    expect(loss).toBeGreaterThan(0.23);
    expect(loss).toBeLessThan(0.28);
  });

  it("token bucket: `burstBytes` pass at once after an idle spell, then the rate holds", async () => {
    const clock = new VirtualClock();
    // 100-byte frames at 80 kbit/s (10 ms each), a 1000-byte bucket: 10 frames at once, then one every 10 ms.
    const { got, fx } = await run({ rateBps: 80_000, burstBytes: 1000, queueLimit: 5 }, 20, 1, clock);
    expect(got.length).toBe(10);
    expect(fx.faultStats().rateDropped).toBe(5);
    clock.advance(10);
    await tick();
    expect(got.length).toBe(11);
    clock.advance(40);
    await tick();
    expect(got.length).toBe(15);
  });

  it("bounds the delay line: beyond `limit` frames held, frames are dropped and counted", async () => {
    const clock = new VirtualClock();
    const { got, fx } = await run({ delayMs: 50, limit: 30 }, 100, 1, clock);
    expect(fx.faultStats().limitDropped).toBe(70);
    clock.advance(50);
    await tick();
    expect(ids(got)).toEqual([...Array(30).keys()]);
  });

  it("the default limit of 1000 frames holds without any option", async () => {
    const clock = new VirtualClock();
    const { fx } = await run({ delayMs: 1 }, 1500, 1, clock);
    expect(fx.faultStats().limitDropped).toBe(500);
  });

  it("jitter: every frame arrives between delay and delay + jitter", async () => {
    const clock = new VirtualClock();
    const { got } = await run({ delayMs: 20, jitterMs: 10 }, 200, 3, clock);
    clock.advance(19.99);
    await tick();
    expect(got.length).toBe(0);
    clock.advance(5);
    await tick();
    const half = got.length;
    expect(half).toBeGreaterThan(60);
    expect(half).toBeLessThan(140);
    clock.advance(5.01);
    await tick();
    expect(got.length).toBe(200);
  });

  it("the k-th frame's fate depends only on seed and k: traffic the other way and timing change nothing", async () => {
    const spec: FaultSpec = { drop: 0.1, duplicate: 0.05, corrupt: 0.05, gilbertElliott: { p: 0.01, r: 0.3 } };
    const fates = async (withRx: boolean, stepMs: number) => {
      const clock = new VirtualClock();
      const [x, y] = VirtualSwitch.pair({ mtu: 9000 });
      const events: string[] = [];
      const fx = new FaultyNetif(x, { seed: 99, clock, tx: spec, rx: spec, onFault: (e) => e.dir === "tx" && events.push(`${e.frame}:${e.kind}`) });
      fx.start({ frame: () => {} });
      y.start({ frame: () => {} });
      for (let i = 0; i < 2000; i++) {
        const f = new Uint8Array(100);
        f[0] = 2;
        f[6] = 2;
        if (withRx && i % 3 === 0) y.send(f.slice());
        fx.send(f);
        if (i % 50 === 0) {
          clock.advance(stepMs);
          await tick();
        }
      }
      return events;
    };
    const a = await fates(false, 1);
    expect(a.length).toBeGreaterThan(300);
    expect(await fates(true, 7)).toEqual(a);
  });
});
