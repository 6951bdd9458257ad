// The TAP's two readers side by side, against the kernel in a namespace this file creates:
// io_uring (a multishot read into a ring of the TAP's slots, Linux 6.7+) and read(2). Both must
// hand up every frame in order through pauses and batches the receiver cuts short, and never
// write into a slot the receiver kept (adopt): with io_uring the kernel reads into free slots
// while JavaScript holds a batch, so that is where a slip would show.
import { release } from "node:os";
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { ifname, requirePrivileged, useNetns, waitFor } from "../../helpers/netns.js";
import { TapNetif } from "../../../stack/netif/tap.js";
import { loadTapAddon } from "../../../stack/netif/tap/binding.js";
import { parseIpv4 } from "../../../stack/wire/ipv4.js";
import { parseUdp } from "../../../stack/wire/udp.js";

const run = requirePrivileged();
const PY = "/usr/bin/python3";
const N = 3000;
/** Every 10th datagram is this large (one frame: the link's MTU is 60000), so adopt() takes it. */
const BIG = 40_000;
const SMALL = 200;
const sizeOf = (seq: number) => (seq % 10 === 9 ? BIG : SMALL);

/** Sends datagrams 0..n-1 to 198.18.0.2:9999: a 4-byte sequence number, then byte k = (seq + k) & 0xff. */
const SENDER = `
import socket, sys, time
n = int(sys.argv[1]); base = bytes(range(256)) * 200
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
for i in range(n):
    size = ${BIG} if i % 10 == 9 else ${SMALL}
    o = (i + 4) % 256
    s.sendto(i.to_bytes(4, 'big') + base[o:o + size - 4], ('198.18.0.2', 9999))
    if i % 50 == 49: time.sleep(0.002)
`;

/** The datagram's sequence number if its payload is intact, else -1. */
function check(payload: Uint8Array): number {
  if (payload.length < 4) return -1;
  const seq = ((payload[0]! << 24) | (payload[1]! << 16) | (payload[2]! << 8) | payload[3]!) >>> 0;
  if (payload.length !== sizeOf(seq)) return -1;
  for (let k = 4; k < payload.length; k++) if (payload[k] !== ((seq + k) & 0xff)) return -1;
  return seq;
}

function udpPayload(frame: Uint8Array): Uint8Array | undefined {
  if (frame[12] !== 0x08 || frame[13] !== 0x00) return undefined;
  const ip = parseIpv4(frame.subarray(14));
  if (typeof ip === "string" || ip.protocol !== 17) return undefined;
  const udp = parseUdp(ip.payload);
  if (typeof udp === "string" || udp.dstPort !== 9999) return undefined;
  return udp.payload;
}

/** Whether this kernel should do it: Linux 6.7+ with io_uring not disabled. */
function kernelHasMultishotRead(): boolean {
  const [major = 0, minor = 0] = release().split(".").map(Number);
  let disabled = "0";
  try {
    disabled = readFileSync("/proc/sys/kernel/io_uring_disabled", "utf8").trim();
  } catch {}
  return (major > 6 || (major === 6 && minor >= 7)) && disabled === "0";
}

const opened = new Set<TapNetif>();

describe.skipIf(!run).each([
  { reader: "io_uring", ioUring: true },
  { reader: "read(2)", ioUring: false },
])("TAP reader $reader", ({ ioUring }) => {
  const ctx = useNetns("tapr");
  afterEach(async () => {
    for (const t of opened) await t.close();
    opened.clear();
  });

  it("is the one asked for where the kernel can", () => {
    const supported = loadTapAddon().uringSupported();
    if (kernelHasMultishotRead()) expect(supported).toBe(true);
    const tap = TapNetif.open(ifname("tr"), { netns: ctx.ns.path, ioUring });
    opened.add(tap);
    tap.start({ frame: () => {} });
    expect(tap.readerMode).toBe(ioUring && supported ? "io_uring" : "read");
  });

  it("hands up 3000 datagrams in order and intact through pauses and cut batches; kept frames are never written over", async () => {
    const tap = TapNetif.open(ifname("tr"), { netns: ctx.ns.path, up: true, mtu: 60_000, ioUring });
    opened.add(tap);
    const seqs: number[] = [];
    const bad: number[] = [];
    const kept: Uint8Array[] = [];
    let asked = 0;
    let cut = 0;
    let paused = false;
    tap.start({
      frame: (f) => {
        const p = udpPayload(f);
        if (!p) return;
        const seq = check(p);
        if (seq < 0) bad.push(seqs.length);
        seqs.push(seq);
        // Keep every large frame without a copy: its slot is the receiver's from now on.
        if (f.length >= 32 * 1024 && tap.adopt(f)) kept.push(p);
        // A pause and resume within a batch (a receiver may do that) must not give the batch's
        // slots back to the kernel while the rest of the batch is still being handed up.
        if (seq % 97 === 0 && !paused) {
          tap.pause();
          tap.resume();
        }
        // Pause for a while twice: what arrives meanwhile must wait, not be lost.
        if ((seq === 700 || seq === 2100) && !paused) {
          paused = true;
          tap.pause();
          setTimeout(() => {
            paused = false;
            tap.resume();
          }, 40);
        }
      },
      // Every 7th question says the turn is used up: the rest of the batch waits for poll().
      overBudget: () => ++asked % 7 === 0,
      ready: () => {
        cut++;
        const again = () => {
          if (tap.poll(5)) setImmediate(again);
        };
        setImmediate(again);
      },
    });
    await ctx.ns.ip("addr", "add", "198.18.0.1/24", "dev", tap.name);
    await ctx.ns.ip("link", "set", "dev", tap.name, "mtu", "60000");
    await ctx.ns.neigh(tap.name, "198.18.0.2", "02:00:00:00:00:02");
    await ctx.ns.exec(PY, ["-c", SENDER, String(N)], 30_000);
    await waitFor(() => seqs.length >= N, `${N} datagrams (got ${seqs.length})`, 20_000);
    expect(bad).toEqual([]);
    expect(seqs).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(cut).toBeGreaterThan(10);
    expect(kept.length).toBe(N / 10);
    expect(tap.rxAdopted).toBe(N / 10);
    // Everything kept is as it arrived, though 3000 frames were read after the first of them.
    expect(kept.map(check)).toEqual(Array.from({ length: N / 10 }, (_, i) => i * 10 + 9));
    expect(tap.stats().rxDropped).toBe(0);
    await tap.close();
    expect(tap.readerMode).toBe("stopped");
  });

  it("says input is pending while paused with frames waiting, and hands them up on resume", async () => {
    const tap = TapNetif.open(ifname("tr"), { netns: ctx.ns.path, up: true, mtu: 60_000, ioUring });
    opened.add(tap);
    const seqs: number[] = [];
    tap.start({
      frame: (f) => {
        const p = udpPayload(f);
        if (p) seqs.push(check(p));
      },
    });
    await ctx.ns.ip("addr", "add", "198.18.0.1/24", "dev", tap.name);
    await ctx.ns.ip("link", "set", "dev", tap.name, "mtu", "60000");
    await ctx.ns.neigh(tap.name, "198.18.0.2", "02:00:00:00:00:02");
    expect(tap.inputPending()).toBe(false);
    tap.pause();
    await ctx.ns.exec(PY, ["-c", SENDER, "300"], 30_000);
    await new Promise((r) => setTimeout(r, 50));
    expect(seqs).toEqual([]);
    expect(tap.inputPending()).toBe(true);
    tap.resume();
    await waitFor(() => seqs.length >= 300, "300 datagrams");
    expect(seqs).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(tap.inputPending()).toBe(false);
    await tap.close();
  });
});
