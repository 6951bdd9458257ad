// Fault injection: drop, duplicate, reorder, corrupt, delay and rate, reproducible from a seed.
import { describe, expect, it } from "vitest";
import { FaultyNetif, type FaultSpec } from "../../stack/netif/faulty.js";
import { VirtualSwitch } from "../../stack/netif/vswitch.js";
import { VirtualClock } from "../../stack/core/clock.js";

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
