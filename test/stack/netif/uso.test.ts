// UDP segmentation on transmit (stack/netif/uso.ts): which queued datagrams join a super-frame,
// and that cutting a super-frame as Linux's UDP GSO does (__udp_gso_segment, inet_gso_segment:
// each segment gets the header, its own lengths, an IPv4 ID counting up from the first, fresh
// checksums) gives back exactly the datagrams that went in. The real kernel doing the cutting
// is in tap.kernel.test.ts.
import { describe, expect, it } from "vitest";
import { coalesceUdp, startsRun, udpRunOffset, USO_MAX_SEGMENTS } from "../../../stack/netif/uso.js";
import { checksum, finish, pseudoHeaderSum, sum16 } from "../../../stack/wire/checksum.js";
import { ipv4Frame, udpDatagram, PEER_IP, STACK_IP } from "../../helpers/frames.js";
import { ipv6Frame, PEER6, STACK6 } from "../../helpers/frames6.js";
import { emitUdp } from "../../../stack/wire/udp.js";
import { parseMac } from "../../../stack/wire/addr.js";

const MAC = parseMac("02:00:00:00:00:09");

function payload(n: number, seq: number): Uint8Array {
  const p = new Uint8Array(n);
  for (let i = 0; i < n; i++) p[i] = (seq * 31 + i) & 0xff;
  return p;
}

/** An IPv4 datagram frame 198.18.0.1:5000 -> 198.18.0.2:port with IP ID `ident`. */
function dgram4(size: number, ident: number, o: { port?: number; ttl?: number; seq?: number; mac?: Uint8Array } = {}): Uint8Array {
  return ipv4Frame(17, udpDatagram(5000, o.port ?? 7000, payload(size, o.seq ?? ident), PEER_IP, STACK_IP), { ident, ttl: o.ttl, dstMac: o.mac });
}

function dgram6(size: number, seq: number): Uint8Array {
  const m = new Uint8Array(8 + size);
  m.set(payload(size, seq), 8);
  emitUdp(m, 0, 5000, 7000, size, PEER6, STACK6);
  return ipv6Frame(17, m, { dstMac: MAC });
}

/** What the kernel makes of a UDP super-frame: its datagrams, each complete. */
function segment(sf: Uint8Array, size: number): Uint8Array[] {
  const l4 = udpRunOffset(sf);
  expect(l4).toBeGreaterThan(0);
  const v4 = l4 === 34;
  const head = l4 + 8;
  const out: Uint8Array[] = [];
  const id0 = v4 ? (sf[18]! << 8) | sf[19]! : 0;
  for (let off = head, k = 0; off < sf.length; off += size, k++) {
    const n = Math.min(size, sf.length - off);
    const d = new Uint8Array(head + n);
    d.set(sf.subarray(0, head), 0);
    d.set(sf.subarray(off, off + n), head);
    const udpLen = 8 + n;
    d[l4 + 4] = udpLen >> 8;
    d[l4 + 5] = udpLen & 0xff;
    d[l4 + 6] = 0;
    d[l4 + 7] = 0;
    if (v4) {
      const ipLen = 20 + udpLen;
      d[16] = ipLen >> 8;
      d[17] = ipLen & 0xff;
      const id = (id0 + k) & 0xffff;
      d[18] = id >> 8;
      d[19] = id & 0xff;
      d[24] = 0;
      d[25] = 0;
      const c = checksum(d, 14, 34);
      d[24] = c >> 8;
      d[25] = c & 0xff;
    } else {
      d[18] = udpLen >> 8;
      d[19] = udpLen & 0xff;
    }
    const src = v4 ? d.subarray(26, 30) : d.subarray(22, 38);
    const dst = v4 ? d.subarray(30, 34) : d.subarray(38, 54);
    let c = finish(sum16(d, l4, d.length, pseudoHeaderSum(src, dst, 17, udpLen)));
    if (c === 0) c = 0xffff;
    d[l4 + 6] = c >> 8;
    d[l4 + 7] = c & 0xff;
    out.push(d);
  }
  return out;
}

function run(frames: Uint8Array[], marks = frames.map(() => 0), counts?: number[]) {
  const released: Uint8Array[] = [];
  const r = coalesceUdp(
    frames,
    marks,
    (len) => new Uint8Array(len),
    (f) => released.push(f),
    counts,
  );
  return { ...r, released };
}

/** The frames the kernel would put on the link for coalesceUdp's output. */
function onTheWire(r: ReturnType<typeof run>): Uint8Array[] {
  return r.frames.flatMap((f, i) => (r.marks[i]! < 0 ? segment(f, -r.marks[i]!) : [f]));
}

describe("UDP segmentation on transmit (coalesceUdp)", () => {
  it("merges 30 datagrams of one flow into one super-frame the kernel cuts back into the same 30", () => {
    const ds = Array.from({ length: 30 }, (_, k) => dgram4(64, 100 + k));
    const r = run(ds);
    expect(r.frames).toHaveLength(1);
    expect(r.marks).toEqual([-64]);
    expect(r.counts).toEqual([30]);
    expect(r).toMatchObject({ superFrames: 1, merged: 30 });
    expect(r.released).toEqual(ds); // every merged buffer goes back to the pool
    const sf = r.frames[0]!;
    expect(sf.length).toBe(42 + 30 * 64);
    expect(checksum(sf, 14, 34)).toBe(0); // the kernel checks the IPv4 header on input
    expect(((sf[16]! << 8) | sf[17]!) === 28 + 30 * 64).toBe(true);
    // The UDP checksum field: the pseudo-header sum over the whole length, for the kernel to complete.
    expect((sf[40]! << 8) | sf[41]!).toBe(pseudoHeaderSum(PEER_IP, STACK_IP, 17, 8 + 30 * 64));
    expect(onTheWire(r)).toEqual(ds);
  });

  it("a shorter datagram ends a run (it may be its last), a larger one starts another", () => {
    const sizes = [64, 64, 20, 64, 64, 100, 100];
    const ds = sizes.map((s, k) => dgram4(s, 1 + k));
    const r = run(ds);
    expect(r.counts).toEqual([3, 2, 2]);
    expect(r.marks).toEqual([-64, -64, -100]);
    expect(onTheWire(r)).toEqual(ds);
  });

  it("joins only what differs where the kernel rewrites: ports, TTL, MAC or an ID that does not count up by one end a run", () => {
    const o = { port: 7001, ttl: 9 };
    const ds = [dgram4(64, 1), dgram4(64, 2), dgram4(64, 3, { port: 7001 }), dgram4(64, 4, { port: 7001 }), dgram4(64, 5, o), dgram4(64, 7, o), dgram4(64, 8, o), dgram4(64, 9, { ...o, mac: MAC })];
    const r = run(ds);
    expect(r.counts).toEqual([2, 2, 1, 2, 1]);
    expect(onTheWire(r)).toEqual(ds);
  });

  it("leaves alone fragments, IP options, padded frames, empty datagrams and marked (TCP super-)frames, which also split runs", () => {
    const frag = ipv4Frame(17, udpDatagram(5000, 7000, payload(64, 1)), { ident: 10, moreFragments: true });
    const opts = dgram4(64, 11);
    const withOpts = new Uint8Array(opts.length + 4);
    withOpts.set(opts.subarray(0, 34), 0);
    withOpts.set(opts.subarray(34), 38);
    withOpts[14] = 0x46;
    const padded = new Uint8Array(dgram4(64, 12).length + 6);
    padded.set(dgram4(64, 12), 0);
    const empty = dgram4(0, 13);
    for (const odd of [frag, withOpts, padded, empty]) {
      const r = run([odd, dgram4(64, 1), dgram4(64, 2)]);
      expect(r.counts).toEqual([1, 2]);
      expect(r.frames[0]).toBe(odd);
    }
    const tcpSuper = dgram4(64, 3); // the mark, not the bytes, says what it is
    const r = run([dgram4(64, 1), dgram4(64, 2), tcpSuper, dgram4(64, 4), dgram4(64, 5)], [0, 0, 1448, 0, 0]);
    expect(r.counts).toEqual([2, 1, 2]);
    expect(r.marks).toEqual([-64, 1448, -64]);
    expect(r.frames[1]).toBe(tcpSuper);
  });

  it(`puts at most ${USO_MAX_SEGMENTS} datagrams and 64 KB in a super-frame`, () => {
    const many = Array.from({ length: 100 }, (_, k) => dgram4(64, k));
    expect(run(many).counts).toEqual([USO_MAX_SEGMENTS, 100 - USO_MAX_SEGMENTS]);
    const big = Array.from({ length: 60 }, (_, k) => dgram4(1400, k));
    const r = run(big);
    const fit = Math.floor((65535 - 28) / 1400); // 46 in one IPv4 packet
    expect(r.counts).toEqual([fit, 60 - fit]);
    for (const f of r.frames) expect(f.length - 14).toBeLessThanOrEqual(65535);
    expect(onTheWire(r)).toEqual(big);
  });

  it("merges IPv6 datagrams too (payload length, no ID), and cutting gives them back", () => {
    const ds = Array.from({ length: 10 }, (_, k) => dgram6(200, k));
    const r = run(ds);
    expect(r.counts).toEqual([10]);
    expect((r.frames[0]![18]! << 8) | r.frames[0]![19]!).toBe(8 + 2000);
    expect(onTheWire(r)).toEqual(ds);
  });

  it("startsRun (the TAP's look before merging) agrees with coalesceUdp on the first pair", () => {
    const pairs: [Uint8Array, Uint8Array][] = [
      [dgram4(64, 1), dgram4(64, 2)],
      [dgram4(64, 1), dgram4(20, 2)],
      [dgram4(64, 1), dgram4(64, 3)],
      [dgram4(64, 1), dgram4(64, 2, { port: 7001 })],
      [dgram4(20, 1), dgram4(64, 2)],
      [dgram4(0, 1), dgram4(0, 2)],
      [dgram6(200, 1), dgram6(200, 2)],
      [dgram4(64, 1), dgram6(64, 2)],
    ];
    expect(pairs.map(([a, b]) => startsRun(a, b))).toEqual([true, true, false, false, false, false, true, false]);
    for (const [a, b] of pairs) expect(run([a, b]).superFrames).toBe(startsRun(a, b) ? 1 : 0);
  });

  it("a super-frame left from a partial write keeps its count and never merges again", () => {
    const first = run(Array.from({ length: 5 }, (_, k) => dgram4(64, k)));
    const later = [dgram4(64, 5), dgram4(64, 6)];
    const r = run([first.frames[0]!, ...later], [first.marks[0]!, 0, 0], [5, 1, 1]);
    expect(r.counts).toEqual([5, 2]);
    expect(r.frames[0]).toBe(first.frames[0]);
  });
});
