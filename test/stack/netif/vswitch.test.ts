// The in-process switch: MAC learning, flooding, bounds; and two stacks talking over it.
import { describe, expect, it } from "vitest";
import { VirtualSwitch } from "../../../stack/netif/vswitch.js";
import { Stack } from "../../../stack/stack.js";
import { newFrame, type Netif } from "../../../stack/netif/netif.js";

const tick = () => new Promise<void>((r) => setImmediate(r));

function frame(dst: number[], src: number[], len = 60): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  return f;
}

function listen(n: Netif) {
  const got: Uint8Array[] = [];
  let batches = 0;
  n.start({ frame: (f) => got.push(f), batchEnd: () => batches++ });
  return { got, batches: () => batches };
}

const A = [2, 0, 0, 0, 0, 0xa];
const B = [2, 0, 0, 0, 0, 0xb];
const BCAST = [255, 255, 255, 255, 255, 255];

describe("VirtualSwitch", () => {
  it("floods unknown unicast and broadcast, never back to the sender", async () => {
    const sw = new VirtualSwitch();
    const [pa, pb, pc] = [sw.port(), sw.port(), sw.port()];
    const [a, b, c] = [listen(pa), listen(pb), listen(pc)];
    pa.send(frame(B, A));
    pa.send(frame(BCAST, A));
    await tick();
    expect([a.got.length, b.got.length, c.got.length]).toEqual([0, 2, 2]);
    expect(b.batches()).toBe(1);
  });

  it("gives each port of a flood its own copy, and lets a receiver keep only the frame it is handed (adopt)", async () => {
    const sw = new VirtualSwitch();
    const [pa, pb, pc] = [sw.port(), sw.port(), sw.port()];
    const seen: Array<{ f: Uint8Array; mine: boolean; part: boolean; other: boolean }> = [];
    const outside = new Uint8Array(60);
    for (const p of [pb, pc]) p.start({ frame: (f) => seen.push({ f, mine: p.adopt(f), part: p.adopt(f.subarray(14, 30)), other: p.adopt(outside) }) });
    const sent = frame(B, A);
    pa.send(sent);
    await tick();
    expect(seen.length).toBe(2);
    expect(seen[0]!.f).not.toBe(seen[1]!.f);
    expect(Buffer.from(seen[1]!.f).equals(Buffer.from(sent))).toBe(true);
    seen[0]!.f[20] = 0xff; // what one receiver does to its frame, the other does not see
    expect(seen[1]!.f[20]).toBe(0);
    expect(seen.map((s) => [s.mine, s.part, s.other])).toEqual([
      [true, true, false],
      [true, true, false],
    ]);
    // Outside a delivery nothing is the receiver's to keep.
    expect(pb.adopt(seen[0]!.f)).toBe(false);
    // Nor is a frame that shares its memory with others (cut from a slab, as small frames are).
    seen.length = 0;
    const slab = new ArrayBuffer(4096);
    const small = new Uint8Array(slab, 128, 60);
    small.set(frame(B, A));
    pa.send(small);
    await tick();
    expect(seen.map((s) => s.mine)).toEqual([false, true]); // the second port got a copy of its own
    expect(newFrame(100).buffer.byteLength).toBeGreaterThan(100);
    expect(newFrame(1500).buffer.byteLength).toBe(1500);
  });

  it("learns source MACs and then forwards unicast to one port only", async () => {
    const sw = new VirtualSwitch();
    const [pa, pb, pc] = [sw.port(), sw.port(), sw.port()];
    const [, b, c] = [listen(pa), listen(pb), listen(pc)];
    pb.send(frame(A, B)); // the switch learns B
    await tick();
    c.got.length = 0;
    pa.send(frame(B, A));
    await tick();
    expect(b.got.length).toBe(1);
    expect(c.got.length).toBe(0);
    expect(sw.counters.forwarded).toBe(1);
  });

  it("bounds the MAC table, evicting the oldest entry", async () => {
    const sw = new VirtualSwitch({ macTableSize: 4 });
    const p = sw.port();
    listen(sw.port());
    for (let i = 0; i < 10; i++) p.send(frame(BCAST, [2, 0, 0, 0, 1, i]));
    expect(sw.macEntries).toBe(4);
    expect(sw.counters.evicted).toBe(6);
  });

  it("keeps a station seen again when the table is near full, and evicts the one not seen since", async () => {
    const sw = new VirtualSwitch({ macTableSize: 4 });
    const [p, q] = [sw.port(), sw.port()];
    const [, got] = [listen(p), listen(q)];
    const mac = (i: number) => [2, 0, 0, 0, 1, i];
    for (const i of [0, 1, 2]) p.send(frame(BCAST, mac(i)));
    p.send(frame(BCAST, mac(0))); // seen again: moves to the back
    p.send(frame(BCAST, mac(3)));
    p.send(frame(BCAST, mac(4))); // full: evicts the oldest, 1
    expect(sw.counters.evicted).toBe(1);
    await tick();
    got.got.length = 0;
    const forwarded = sw.counters.forwarded;
    q.send(frame(mac(0), [2, 0, 0, 0, 2, 0])); // 0 is still known: forwarded, not flooded
    q.send(frame(mac(1), [2, 0, 0, 0, 2, 0])); // 1 was evicted: flooded
    expect(sw.counters.forwarded).toBe(forwarded + 1);
  });

  it("follows a station that moved to another port, and forgets one evicted, frame after frame", async () => {
    const sw = new VirtualSwitch({ macTableSize: 2 });
    const [pa, pb, pc] = [sw.port(), sw.port(), sw.port()];
    const [, b, c] = [listen(pa), listen(pb), listen(pc)];
    pb.send(frame(A, B)); // B behind port b
    await tick();
    b.got.length = c.got.length = 0;
    pa.send(frame(B, A));
    await tick();
    expect([b.got.length, c.got.length]).toEqual([1, 0]);
    pc.send(frame(A, B)); // B moved behind port c
    await tick();
    b.got.length = c.got.length = 0;
    pa.send(frame(B, A)); // the same destination as a's last frame: must not go to b any more
    await tick();
    expect([b.got.length, c.got.length]).toEqual([0, 1]);
    // Two other stations take the two places: B is evicted, and a's next frame to it is flooded.
    pc.send(frame(BCAST, [2, 0, 0, 0, 3, 1]));
    pc.send(frame(BCAST, [2, 0, 0, 0, 3, 2]));
    await tick();
    b.got.length = c.got.length = 0;
    const flooded = sw.counters.flooded;
    pa.send(frame(B, A));
    await tick();
    expect(sw.counters.flooded).toBe(flooded + 1);
    expect([b.got.length, c.got.length]).toEqual([1, 1]);
  });

  it("a port closed forgets what was learned through it, for every port's next frame", async () => {
    const sw = new VirtualSwitch();
    const [pa, pb, pc] = [sw.port(), sw.port(), sw.port()];
    const [, , c] = [listen(pa), listen(pb), listen(pc)];
    pb.send(frame(A, B));
    pa.send(frame(B, A));
    await tick();
    await pb.close();
    c.got.length = 0;
    pa.send(frame(B, A)); // B is unknown again: flooded to c
    await tick();
    expect(c.got.length).toBe(1);
    expect(sw.macEntries).toBe(1); // A alone
  });

  it("a pollable port says frames wait (inputPending) until its receiver polls them", async () => {
    const sw = new VirtualSwitch();
    const [pa, pb] = [sw.port(), sw.port()];
    listen(pa);
    let told = 0;
    const got: Uint8Array[] = [];
    pb.start({ frame: (f) => got.push(f), ready: () => told++ });
    expect(pb.inputPending()).toBe(false);
    pa.send(frame(BCAST, A));
    pa.send(frame(BCAST, A));
    expect([told, pb.inputPending()]).toEqual([1, true]);
    expect(pb.poll(1)).toBe(true);
    expect(pb.inputPending()).toBe(true);
    expect(pb.poll(8)).toBe(false);
    expect([got.length, pb.inputPending()]).toEqual([2, false]);
  });

  it("drops oversize frames and delivers nothing to a closed port", async () => {
    const sw = new VirtualSwitch({ mtu: 1500 });
    const [pa, pb] = [sw.port(), sw.port()];
    const b = listen(pb);
    expect(pa.send(frame(B, A, 1515))).toBe(false);
    expect(pa.stats().txDropped).toBe(1);
    await pb.close();
    pa.send(frame(BCAST, A));
    await tick();
    expect(b.got.length).toBe(0);
  });

  it("pair() is a two-way cable", async () => {
    const [x, y] = VirtualSwitch.pair();
    const [gx, gy] = [listen(x), listen(y)];
    x.send(frame(B, A));
    y.send(frame(A, B));
    await tick();
    expect([gx.got.length, gy.got.length]).toEqual([1, 1]);
  });

  it("two stacks on the switch ping each other and exchange UDP; a third sees no unicast", async () => {
    const sw = new VirtualSwitch();
    const a = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.1/24" } });
    const b = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" } });
    const c = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.3/24" } });
    const r = await a.ping("198.18.0.2");
    expect(r.from).toBe("198.18.0.2");
    expect((await b.ping("198.18.0.1", { size: 3000 })).bytes).toBe(3000);
    const sb = b.udp.createSocket("udp4");
    sb.bind(9000);
    const got = new Promise<string>((res) => sb.on("message", (m) => res(m.toString())));
    a.udp.createSocket("udp4").send("over the switch", 9000, "198.18.0.2");
    expect(await got).toBe("over the switch");
    // c only ever saw broadcasts (gratuitous ARP, ARP requests), no unicast IPv4 for others.
    expect(c.stats().ipv4!["rx_packets"] ?? 0).toBe(0);
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it("hands TCP data up in the frame it came in (no copy), and what the application does to it stays its own", async () => {
    const sw = new VirtualSwitch({ mtu: 9000 });
    const a = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.1/24" }, mtu: 9000 });
    const b = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" }, mtu: 9000 });
    const sent = Buffer.alloc(400_000);
    for (let i = 0; i < sent.length; i++) sent[i] = (i * 7 + (i >> 9)) & 0xff;
    const chunks: Buffer[] = [];
    const ended = new Promise<void>((res) => b.tcp.listen({ port: 9 }, (f) => f.on("data", (d: Buffer) => chunks.push(d)).on("end", () => res())));
    const c = await a.tcp.connect({ host: "198.18.0.2", port: 9 });
    c.end(sent);
    await ended;
    // Each chunk is a view into its frame, after the Ethernet, IP and TCP headers; a copy would
    // start its own buffer (or lie in Node's 8 KB pool for small ones).
    expect(chunks.length).toBeGreaterThan(40);
    for (const d of chunks) {
      expect(d.byteOffset).toBeGreaterThanOrEqual(14 + 20 + 20);
      expect(d.buffer.byteLength).toBe(d.byteOffset + d.length);
    }
    const got = Buffer.concat(chunks);
    expect(got.equals(sent)).toBe(true);
    // The application scribbling over its chunks touches nothing the stacks still use.
    for (const d of chunks) d.fill(0xee);
    const again = new Promise<Buffer>((res) =>
      b.tcp.listen({ port: 10 }, (f) => {
        const parts: Buffer[] = [];
        f.on("data", (d: Buffer) => parts.push(d)).on("end", () => res(Buffer.concat(parts)));
      }),
    );
    (await a.tcp.connect({ host: "198.18.0.2", port: 10 })).end(sent.subarray(0, 50_000));
    expect((await again).equals(sent.subarray(0, 50_000))).toBe(true);
    await Promise.all([a.close(), b.close()]);
  });
});
