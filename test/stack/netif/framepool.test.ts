// Transmit buffers used again (FramePool, a TAP's allocFrame): handed out again only after the
// netif released them, never twice at once; and the frames the stack builds in a buffer that is
// not zeroed are byte for byte those it builds in a fresh one (no field left to zero fill).
import { describe, expect, it } from "vitest";
import { FramePool } from "../../../stack/netif/framepool.js";
import { Stack } from "../../../stack/stack.js";
import { VirtualSwitch } from "../../../stack/netif/vswitch.js";
import { FaultyNetif } from "../../../stack/netif/faulty.js";
import { SegmentingNetif } from "../../../stack/netif/gso.js";
import type { Netif, NetifFeatures, NetifReceiver, NetifStats, TxMeta } from "../../../stack/netif/netif.js";
import { VirtualClock } from "../../../stack/core/clock.js";
import { SeededRandom } from "../../../stack/core/random.js";
import { runUntil } from "../../helpers/virtual.js";
import { PcapNetif, readPcap } from "../../../stack/netif/pcap.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { collect, pattern, sha256 } from "../tcp/helpers.js";

describe("FramePool", () => {
  it("hands a buffer out again only after release, uninitialised, sized by class", () => {
    const p = new FramePool([2048, 65600], [2, 1]);
    const a = p.alloc(100);
    expect(a.length).toBe(100);
    expect(a.buffer.byteLength).toBe(2048);
    a.fill(0xee);
    const b = p.alloc(1500);
    expect(b.buffer).not.toBe(a.buffer); // a is not released yet
    p.release(a);
    const c = p.alloc(60);
    expect(c.buffer).toBe(a.buffer);
    expect(c[0]).toBe(0xee); // not zeroed: the builder writes every byte
    expect(p.alloc(3000).buffer.byteLength).toBe(65600);
    expect(p.alloc(70_000).buffer.byteLength).toBe(70_000); // beyond every class: a plain buffer
    expect({ made: p.made, reused: p.reused }).toEqual({ made: 3, reused: 1 });
  });

  it("ignores frames it did not make, and a frame released twice (sent twice) counts once", () => {
    const p = new FramePool([2048], [8]);
    p.release(new Uint8Array(2048)); // someone else's buffer of the same size
    const f = p.alloc(64);
    p.release(f);
    p.release(f);
    const x = p.alloc(64);
    const y = p.alloc(64);
    expect(x.buffer).toBe(f.buffer);
    expect(y.buffer).not.toBe(f.buffer);
  });

  it("keeps at most `keep` free buffers per class", () => {
    const p = new FramePool([2048], [3]);
    const out = Array.from({ length: 10 }, () => p.alloc(100));
    for (const f of out) p.release(f);
    for (let i = 0; i < 10; i++) p.alloc(100);
    expect(p.reused).toBe(3);
    expect(p.made).toBe(17);
  });
});

/** A netif passing everything to `inner`; subclasses change how frames are made and sent. */
class Wrapper implements Netif {
  constructor(protected readonly inner: Netif) {}
  get name(): string {
    return this.inner.name;
  }
  get mtu(): number {
    return this.inner.mtu;
  }
  get features(): NetifFeatures {
    return this.inner.features;
  }
  start(rx: NetifReceiver): void {
    this.inner.start(rx);
  }
  send(frame: Uint8Array, meta?: TxMeta): boolean {
    return this.inner.send(frame, meta);
  }
  stats(): NetifStats {
    return this.inner.stats();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Hands out buffers full of 0xa5 (when `dirty`) and records a copy of every frame sent. */
class Recording extends Wrapper {
  readonly sent: Buffer[] = [];
  allocFrame?: (len: number) => Uint8Array;
  constructor(inner: Netif, dirty: boolean) {
    super(inner);
    if (dirty) this.allocFrame = (len) => new Uint8Array(len).fill(0xa5);
  }
  override send(frame: Uint8Array, meta?: TxMeta): boolean {
    this.sent.push(Buffer.from(frame));
    return this.inner.send(frame, meta);
  }
}

/** 300 KB each way over TCP under loss (SACK, timestamps, retransmissions), and UDP both ways. */
async function scenario(dirty: boolean, family: 4 | 6, tso: boolean): Promise<{ a: Buffer[]; b: Buffer[]; digests: string[] }> {
  const clock = new VirtualClock();
  const sw = new VirtualSwitch();
  const faults = { drop: 0.03, reorder: 0.02, delayMs: 2 };
  const wrap = (n: Netif) => (tso ? new SegmentingNetif(n) : n);
  const na = new Recording(wrap(new FaultyNetif(sw.port("a"), { seed: 11, clock, tx: faults })), dirty);
  const nb = new Recording(wrap(new FaultyNetif(sw.port("b"), { seed: 12, clock, tx: faults })), dirty);
  const v6 = family === 6;
  const mk = (netif: Netif, n: number) =>
    Stack.create({ netif, clock, random: new SeededRandom(100 + n), ipv4: { address: `198.18.0.${n}/24` }, ...(v6 ? { ipv6: { address: `2001:db8::${n}/64`, dad: false } } : {}) });
  const a = mk(na, 1);
  const b = mk(nb, 2);
  const until = (cond: () => boolean, what: string) => runUntil(sw, clock, cond, what, 600_000, 50);
  const host = v6 ? "2001:db8::2" : "198.18.0.2";
  let server: ReturnType<typeof collect> | undefined;
  b.tcp.listen({ port: 5000 }, (f) => {
    server = collect(f);
    f.end(pattern(300_000, 2));
  });
  const cp = a.tcp.connect({ host, port: 5000 });
  await until(() => server !== undefined, "accept");
  const c = await cp;
  const client = collect(c);
  c.end(pattern(300_000, 1));
  await until(() => client.ended && (server?.ended ?? false), "both transfers");
  // UDP: a datagram of each size class there is, each way.
  const ua = a.udp.createSocket(v6 ? "udp6" : "udp4");
  const ub = b.udp.createSocket(v6 ? "udp6" : "udp4");
  ua.bind(7000);
  ub.bind(7000);
  const got: Buffer[] = [];
  ub.on("message", (m: Buffer) => got.push(Buffer.from(m)));
  for (const size of [0, 1, 100, 1400]) ua.send(pattern(size, size), 7000, host);
  await until(() => got.length >= 3, "datagrams");
  await Promise.all([a.close(), b.close()]);
  return { a: na.sent, b: nb.sent, digests: [sha256(client.data()), sha256(server!.data()), ...got.map((g) => sha256(g))] };
}

describe("frames built in buffers that are not zeroed", () => {
  for (const [family, tso] of [
    [4, false],
    [6, false],
    [4, true],
  ] as const) {
    it(`are byte for byte the frames built in fresh buffers (IPv${family}${tso ? ", TSO" : ""}: TCP under loss, UDP)`, async () => {
      const clean = await scenario(false, family, tso);
      const dirty = await scenario(true, family, tso);
      expect(clean.digests[0]).toBe(sha256(pattern(300_000, 2)));
      expect(clean.digests[1]).toBe(sha256(pattern(300_000, 1)));
      expect(dirty.digests).toEqual(clean.digests);
      expect(clean.a.length).toBeGreaterThan(100);
      expect(dirty.a.length).toBe(clean.a.length);
      expect(dirty.b.length).toBe(clean.b.length);
      for (const side of ["a", "b"] as const) {
        for (let i = 0; i < clean[side].length; i++) {
          if (!dirty[side][i]!.equals(clean[side][i]!)) throw new Error(`${side}: frame ${i} differs:\nclean ${clean[side][i]!.toString("hex")}\ndirty ${dirty[side][i]!.toString("hex")}`);
        }
      }
    });
  }
});

/** Like a TAP: frames from a FramePool, released as soon as they are sent (the TAP's write). */
class Pooled extends Wrapper {
  readonly pool = new FramePool([2048], [64]);
  readonly delivered: Buffer[] = [];
  allocFrame(len: number): Uint8Array {
    return this.pool.alloc(len);
  }
  override send(frame: Uint8Array, meta?: TxMeta): boolean {
    const copy = Buffer.from(frame);
    this.delivered.push(copy);
    const ok = this.inner.send(copy, meta);
    this.pool.release(frame);
    return ok;
  }
}

describe("a pcap wrapper over a netif with reused transmit buffers", () => {
  it("passes the buffers through and records each frame as it was sent, not as the buffer was later", async () => {
    const dir = mkdtempSync(join(tmpdir(), "paf-poolpcap-"));
    try {
      const clock = new VirtualClock();
      const sw = new VirtualSwitch();
      const pooled = new Pooled(sw.port("a"));
      const pcap = new PcapNetif(pooled, join(dir, "a.pcap"));
      expect(typeof pcap.allocFrame).toBe("function");
      const a = Stack.create({ netif: pcap, clock, random: new SeededRandom(1), ipv4: { address: "198.18.0.1/24" } });
      const b = Stack.create({ netif: sw.port("b"), clock, random: new SeededRandom(2), ipv4: { address: "198.18.0.2/24" } });
      let server: ReturnType<typeof collect> | undefined;
      b.tcp.listen({ port: 5000 }, (f) => (server = collect(f)));
      const c = await (async () => {
        const cp = a.tcp.connect({ host: "198.18.0.2", port: 5000 });
        await runUntil(sw, clock, () => server !== undefined, "accept", 60_000, 50);
        return cp;
      })();
      c.end(pattern(200_000, 3));
      await runUntil(sw, clock, () => server?.ended ?? false, "transfer", 600_000, 50);
      expect(sha256(server!.data())).toBe(sha256(pattern(200_000, 3)));
      expect(pooled.pool.reused).toBeGreaterThan(100);
      await Promise.all([a.close(), b.close()]);
      pcap.writer.close();
      const sent = readPcap(join(dir, "a.pcap"))
        .map((r) => Buffer.from(r.data))
        .filter((d) => pooled.delivered.some((x) => x.equals(d)));
      expect(sent.length).toBe(pooled.delivered.length);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
