// The TAP's two writers side by side, against the kernel in a namespace this file creates:
// io_uring (a flush's frames linked in batches of up to 64 per system call, Linux 6.7+) and
// writev(2), one frame per call. A flush of hundreds of frames must reach the kernel in order and
// intact, with and without the virtio-net header, and a frame the kernel refuses in the middle of
// a batch (too short for Ethernet: EINVAL) must be counted and dropped while the frames after it
// are still written, in order: with io_uring the refusal ends the linked batch, which is where a
// slip would lose or reorder frames.
import { afterEach, describe, expect, it } from "vitest";
import { ifname, requirePrivileged, useNetns, waitFor } from "../../helpers/netns.js";
import { TapNetif } from "../../../stack/netif/tap.js";
import { loadTapAddon } from "../../../stack/netif/tap/binding.js";
import { parseIPv4, parseMac } from "../../../stack/wire/addr.js";
import { ipv4Frame, udpDatagram } from "../../helpers/frames.js";

const run = requirePrivileged();
const PY = "/usr/bin/python3";
const N = 1000;
/** Every JUNK-th send is a frame too short for Ethernet, which the kernel refuses. */
const JUNK = 37;
const sizeOf = (seq: number) => 8 + ((seq * 131) % 1300);

/** Receives datagrams on 198.18.0.1:5000 until n or a 3 s silence; prints each payload in hex, a line each, then "end". */
const RECEIVER = `
import socket, sys
n = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(('198.18.0.1', 5000)); s.settimeout(3)
print('ready', flush=True)
got = []
try:
    while len(got) < n: got.append(s.recv(65535).hex())
except socket.timeout: pass
print('\\n'.join(got)); print('end', flush=True)
`;

/** Datagram seq: a 4-byte sequence number, then byte k = (seq + k) & 0xff. */
function payload(seq: number): Uint8Array {
  const p = new Uint8Array(sizeOf(seq));
  for (let k = 4; k < p.length; k++) p[k] = (seq + k) & 0xff;
  new DataView(p.buffer).setUint32(0, seq);
  return p;
}

const opened = new Set<TapNetif>();

describe.skipIf(!run).each([
  { writer: "io_uring", ioUring: true, vnetHdr: false },
  { writer: "io_uring", ioUring: true, vnetHdr: true },
  { writer: "writev", ioUring: false, vnetHdr: false },
  { writer: "writev", ioUring: false, vnetHdr: true },
])("TAP writer $writer (vnetHdr $vnetHdr)", ({ ioUring, vnetHdr }) => {
  const ctx = useNetns("tapw");
  afterEach(async () => {
    for (const t of opened) await t.close();
    opened.clear();
  });

  it("is the one asked for where the kernel can", () => {
    const tap = TapNetif.open(ifname("tw"), { netns: ctx.ns.path, ioUring, vnetHdr });
    opened.add(tap);
    expect(tap.writerMode).toBe(ioUring && loadTapAddon().uringSupported() ? "io_uring" : "writev");
  });

  it(`a flush of ${N} datagrams with a refused frame every ${JUNK}th arrives in order and intact; the refused ones are counted`, async () => {
    const tap = TapNetif.open(ifname("tw"), { netns: ctx.ns.path, up: true, ioUring, vnetHdr, queueLimit: 4 * N });
    opened.add(tap);
    await ctx.ns.kernelSide(tap.name);
    const link = JSON.parse((await ctx.ns.ip("-j", "link", "show", "dev", tap.name)).stdout) as { address: string }[];
    const dstMac = parseMac(link[0]!.address);
    const rx = ctx.ns.spawn(PY, ["-c", RECEIVER, String(N)], { timeoutMs: 30_000 });
    let text = "";
    rx.stdout!.on("data", (d) => (text += d));
    await waitFor(() => text.startsWith("ready"), "the receiver", 5000);
    const src = parseIPv4("198.18.0.2");
    const dst = parseIPv4("198.18.0.1");
    let junk = 0;
    // One tick: everything is queued before the flush (which writes as it grows past 256).
    for (let seq = 0; seq < N; seq++) {
      if (seq % JUNK === JUNK - 1) {
        expect(tap.send(new Uint8Array(10).fill(0xee))).toBe(true);
        junk++;
      }
      const f = ipv4Frame(17, udpDatagram(40000, 5000, payload(seq), src, dst), { src, dst, dstMac, ident: seq & 0xffff });
      expect(tap.send(f)).toBe(true);
    }
    await new Promise<void>((resolve) => rx.on("exit", () => resolve()));
    const lines = text.trim().split("\n");
    expect(lines.at(-1)).toBe("end");
    const got = lines.slice(1, -1);
    const want = Array.from({ length: N }, (_, seq) => Buffer.from(payload(seq)).toString("hex"));
    expect(got.length).toBe(N);
    expect(got).toEqual(want);
    const st = tap.stats();
    expect(st.txDropped).toBe(junk);
    expect(st.txFrames).toBe(N);
    expect(tap.lastError?.message).toMatch(/refused .*errno 22/);
  });
});
