// Transmit checksum offload (NetifFeatures.checksumOffload, TxMeta.csumPartial): a stack whose
// netif completes checksums leaves each TCP segment's and UDP datagram's checksum field at the
// pseudo-header sum and says so per frame; where a packet does not reach the netif as it is
// (fragmented, or to one of its own addresses) the IP layer completes the checksum itself. The
// netif here is a wrapper on a virtual switch port that records what it is given and completes
// the checksums as a TAP's kernel would; the peer stack checks every checksum in software, so a
// frame left partial without the mark (or marked and complete already) is dropped there.
import { afterEach, describe, expect, it } from "vitest";
import { Stack } from "../../stack/stack.js";
import { VirtualSwitch } from "../../stack/netif/vswitch.js";
import { ETH_HEADER_LEN, type Netif, type NetifFeatures, type NetifReceiver, type NetifStats, type TxMeta } from "../../stack/netif/netif.js";
import { completeChecksum, finish, pseudoHeaderSum, sum16 } from "../../stack/wire/checksum.js";

interface Sent {
  proto: number;
  /** Marked csumPartial. */
  partial: boolean;
  /** The checksum field was exactly the pseudo-header sum (partial), or verified whole (not). */
  fieldOk: boolean;
  fragment: boolean;
}

/** L4 facts of an IPv4 or IPv6 (no extension headers) frame, if TCP or UDP. */
function l4Of(f: Uint8Array): { l4: number; proto: number; src: Uint8Array; dst: Uint8Array; fragment: boolean } | undefined {
  const e = ETH_HEADER_LEN;
  if (f[12] === 0x08 && f[13] === 0x00) {
    const proto = f[e + 9]!;
    const fragment = (f[e + 6]! & 0x3f) !== 0 || f[e + 7] !== 0;
    return proto === 6 || proto === 17 ? { l4: e + (f[e]! & 0x0f) * 4, proto, src: f.subarray(e + 12, e + 16), dst: f.subarray(e + 16, e + 20), fragment } : undefined;
  }
  if (f[12] === 0x86 && f[13] === 0xdd) {
    const proto = f[e + 6]!;
    return proto === 6 || proto === 17 ? { l4: e + 40, proto, src: f.subarray(e + 8, e + 24), dst: f.subarray(e + 24, e + 40), fragment: false } : undefined;
  }
  return undefined;
}

class OffloadNetif implements Netif {
  readonly sent: Sent[] = [];
  constructor(private readonly inner: Netif) {}
  get name(): string {
    return `${this.inner.name}+csum`;
  }
  get mtu(): number {
    return this.inner.mtu;
  }
  get features(): NetifFeatures {
    return { ...this.inner.features, checksumOffload: true };
  }
  start(rx: NetifReceiver): void {
    this.inner.start(rx);
  }
  stats(): NetifStats {
    return this.inner.stats();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  send(frame: Uint8Array, meta?: TxMeta): boolean {
    const p = l4Of(frame);
    if (p) {
      const partial = meta?.csumPartial === true;
      const at = p.l4 + (p.proto === 6 ? 16 : 6);
      const field = (frame[at]! << 8) | frame[at + 1]!;
      const len = frame.length - p.l4;
      const fieldOk = p.fragment
        ? !partial
        : partial
          ? field === pseudoHeaderSum(p.src, p.dst, p.proto, len)
          : finish(sum16(frame, p.l4, frame.length, pseudoHeaderSum(p.src, p.dst, p.proto, len))) === 0;
      this.sent.push({ proto: p.proto, partial, fieldOk, fragment: p.fragment });
      if (partial) {
        const f = frame.slice();
        completeChecksum(f, p.l4, f.length, p.proto);
        return this.inner.send(f);
      }
    }
    return this.inner.send(frame);
  }
}

const stacks: Stack[] = [];
afterEach(async () => {
  for (const s of stacks.splice(0)) await s.close();
});

function pair() {
  const sw = new VirtualSwitch();
  const netif = new OffloadNetif(sw.port());
  const a = Stack.create({ netif, ipv4: { address: "198.18.0.2/24" }, ipv6: { address: "2001:db8::2/64", dad: false } });
  const b = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.3/24" }, ipv6: { address: "2001:db8::3/64", dad: false } });
  stacks.push(a, b);
  return { netif, a, b };
}

const tick = () => new Promise((r) => setImmediate(r));
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await tick();
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

describe("transmit checksum offload", () => {
  it("UDP: a datagram that fits leaves marked with the pseudo-header sum; a fragmented one, one to ourselves and a broadcast we also hear carry whole checksums", async () => {
    const { netif, a, b } = pair();
    await Promise.all([a.ready(), b.ready()]);
    const got: string[] = [];
    for (const [stack, type] of [
      [b, "udp4"],
      [b, "udp6"],
      [a, "udp4"],
    ] as const) {
      const s = stack.udp.createSocket(type);
      s.on("message", (m) => got.push(`${stack === a ? "a" : "b"} ${type} ${m.length} ${m[m.length - 1]}`));
      s.bind(5000);
    }
    const tx4 = a.udp.createSocket("udp4");
    const tx6 = a.udp.createSocket("udp6");
    const big = Buffer.alloc(4000, 7);
    const small = Buffer.alloc(1000, 9);
    tx4.send(small, 5000, "198.18.0.3");
    tx6.send(small, 5000, "2001:db8::3");
    tx4.send(big, 5000, "198.18.0.3"); // three IPv4 fragments at MTU 1500
    tx4.send(small, 5000, "198.18.0.2"); // to ourselves: never on the link
    await tick();
    tx4.setBroadcast(true);
    tx4.send(Buffer.alloc(500, 5), 5000, "198.18.0.255"); // on the link, and looped to our own socket
    await until(() => got.length === 6, "six datagrams");
    expect(got.sort()).toEqual(["a udp4 1000 9", "a udp4 500 5", "b udp4 1000 9", "b udp4 4000 7", "b udp4 500 5", "b udp6 1000 9"]);
    const udp = netif.sent.filter((s) => s.proto === 17);
    expect(udp.filter((s) => s.partial)).toHaveLength(2);
    expect(udp.filter((s) => !s.partial && !s.fragment)).toHaveLength(1); // the broadcast
    expect(udp.filter((s) => s.fragment && !s.partial)).toHaveLength(3);
    expect(udp.every((s) => s.fieldOk)).toBe(true);
    expect(b.stats()["udp"]?.["drop_bad_checksum"] ?? 0).toBe(0);
  });

  it("TCP: every segment of a connection leaves marked, both ways of the handshake and the data intact", async () => {
    const { netif, a, b } = pair();
    await Promise.all([a.ready(), b.ready()]);
    let received = 0;
    let sum = 0;
    b.tcp.listen({ port: 9 }, (f) =>
      f.on("data", (d: Buffer) => {
        received += d.length;
        for (const x of d) sum += x;
      }),
    );
    const f = await a.tcp.connect({ host: "198.18.0.3", port: 9 });
    const data = Buffer.alloc(300_000);
    let want = 0;
    for (let i = 0; i < data.length; i++) want += data[i] = (i * 7) & 0xff;
    f.write(data);
    await until(() => received === data.length, "300 KB");
    expect(sum).toBe(want);
    const tcp = netif.sent.filter((s) => s.proto === 6);
    expect(tcp.length).toBeGreaterThan(100);
    expect(tcp.every((s) => s.partial && s.fieldOk)).toBe(true);
    expect(b.stats()["tcp"]?.["drop_bad_checksum"] ?? 0).toBe(0);
    f.destroy();
  });
});
