// The TAP netif's transmit bookkeeping when the kernel takes only part of a batch (EAGAIN), with
// UDP super-frames in it: the addon is replaced by a recorder that accepts as many frames as the
// test says, so the partial write happens on demand. (The real device, cutting and all, is in
// tap.kernel.test.ts; this covers what a real TAP almost never refuses.)
import { describe, expect, it } from "vitest";
import { TapNetif, type TapOptions } from "../../../stack/netif/tap.js";
import type { TapAddon } from "../../../stack/netif/tap/binding.js";
import { ipv4Frame, udpDatagram } from "../../helpers/frames.js";

interface Write {
  lengths: number[];
  /** gso_type of each frame's virtio-net header. */
  gsoTypes: number[];
}

function recorder() {
  const writes: Write[] = [];
  /** Frames the next writeFrames calls accept (then EAGAIN); default all. */
  const accept: number[] = [];
  const addon = {
    writeFrames(_fd: number, frames: readonly Uint8Array[], start: number, hdrLen: number, out: Uint32Array, hdrs?: Uint8Array) {
      const n = Math.min(frames.length - start, accept.shift() ?? Number.MAX_SAFE_INTEGER);
      const taken = frames.slice(start, start + n);
      writes.push({ lengths: taken.map((f) => f.length), gsoTypes: taken.map((_, i) => (hdrs ? hdrs[(start + i) * hdrLen + 1]! : 0)) });
      out[0] = 0;
      out[1] = 0;
      out[2] = taken.reduce((a, f) => a + f.length, 0);
      return n;
    },
    setOffload: () => 0,
    uringSupported: () => false,
    close: () => {},
  } as unknown as TapAddon;
  // The constructor is private to the module's API, not to a test.
  const Ctor = TapNetif as unknown as new (name: string, fd: number, mtu: number, opts: TapOptions, addon: TapAddon, rxQueue: number, uso: boolean) => TapNetif;
  const tap = new Ctor("fake0", 99, 1500, { offload: true }, addon, 0, true);
  return { tap, writes, accept };
}

const dgram = (ident: number) => ipv4Frame(17, udpDatagram(5000, 7000, new Uint8Array(64).fill(ident)), { ident });
const other = (ident: number) => ipv4Frame(17, udpDatagram(5001, 7000, new Uint8Array(10)), { ident });
const tick = () => new Promise((r) => setImmediate(r));

describe("TAP transmit queue with UDP super-frames (the addon replaced by a recorder)", () => {
  it("a super-frame left by a partial write keeps its datagram count, and frames sent meanwhile count one each", async () => {
    const { tap, writes, accept } = recorder();
    expect(tap.udpSegmentation).toBe(true);
    accept.push(1); // the kernel takes one frame, then says EAGAIN
    tap.send(other(1));
    for (let i = 0; i < 5; i++) tap.send(dgram(10 + i));
    await Promise.resolve(); // the microtask flush
    expect(writes[0]).toEqual({ lengths: [other(1).length], gsoTypes: [0] });
    // While the rest waits: one frame that merges with nothing.
    tap.send(other(2));
    for (let i = 0; i < 5 && writes.length < 2; i++) await tick();
    expect(writes[1]!.lengths).toEqual([42 + 5 * 64, other(2).length]);
    expect(writes[1]!.gsoTypes).toEqual([5, 0]); // VIRTIO_NET_HDR_GSO_UDP_L4, then a plain frame
    expect(tap.stats().txFrames).toBe(1 + 5 + 1); // datagrams, not writes
    expect(tap.usoStats).toEqual({ superFrames: 1, datagrams: 5 });
  });

  it("datagrams queued after a partial write merge among themselves, never into the waiting super-frame", async () => {
    const { tap, writes, accept } = recorder();
    accept.push(0, 0); // EAGAIN twice before anything goes
    for (let i = 0; i < 3; i++) tap.send(dgram(20 + i));
    await Promise.resolve();
    for (let i = 0; i < 3; i++) tap.send(dgram(23 + i));
    for (let i = 0; i < 10 && writes.at(-1)?.lengths.length !== 2; i++) await tick();
    expect(writes.at(-1)!.lengths).toEqual([42 + 3 * 64, 42 + 3 * 64]);
    expect(tap.stats().txFrames).toBe(6);
    expect(tap.usoStats).toEqual({ superFrames: 2, datagrams: 6 });
  });
});
