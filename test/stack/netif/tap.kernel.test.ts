// The TAP netif on its own, against the real kernel in a namespace this file creates: frames both
// ways (UDP from the kernel, ARP and ICMP echo answered by it), the virtio-net header, batching,
// truncation, bounded transmit queue, a device deleted under us, clear errors, idempotent close,
// and a persistent TAP opened by a user without privileges.
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ifname, Netns, requirePrivileged, sh, useNetns, waitFor } from "../../helpers/netns.js";
import { TapNetif, type TapOptions } from "../../../stack/netif/tap.js";
import { NetifError, type RxMeta } from "../../../stack/netif/netif.js";
import { packageRoot } from "../../../stack/netif/tap/binding.js";
import { emitEthernet, ETHERTYPE_ARP, ETHERTYPE_IPV4 } from "../../../stack/wire/ethernet.js";
import { emitArp, parseArp } from "../../../stack/wire/arp.js";
import { emitIpv4, parseIpv4 } from "../../../stack/wire/ipv4.js";
import { emitIcmp, parseIcmp, ICMPV4_ECHO_REPLY, ICMPV4_ECHO_REQUEST } from "../../../stack/wire/icmp.js";
import { emitUdp, parseUdp, udpChecksumOk } from "../../../stack/wire/udp.js";
import { BROADCAST_MAC, formatMac, parseIPv4, parseMac } from "../../../stack/wire/addr.js";
import { Stack } from "../../../stack/stack.js";

const run = requirePrivileged();

const OUR_MAC = parseMac("02:00:00:00:00:02");
const OUR_IP = parseIPv4("198.18.0.2");
const KERNEL_IP = parseIPv4("198.18.0.1");
const PY = "/usr/bin/python3";

interface Got {
  frame: Uint8Array;
  meta: RxMeta | undefined;
}

/**
 * TAPs opened by kernelPeer, closed after each test whatever happened in it: a test that fails
 * before its own close() would leave its TAP up with 198.18.0.1/24, whose route then takes the
 * next tests' traffic (one failed assertion made nine later tests of this file time out).
 */
const opened = new Set<TapNetif>();

/** A TAP in `ns` whose kernel side is 198.18.0.1/24, with 198.18.0.2 -> OUR_MAC pinned (no ARP). */
async function kernelPeer(ns: Netns, opts: TapOptions = {}) {
  const tap = TapNetif.open(ifname("pt"), { netns: ns.path, up: true, ...opts });
  opened.add(tap);
  const got: Got[] = [];
  const batches: number[] = [];
  let inBatch = 0;
  tap.start({
    frame: (f, meta) => {
      inBatch++;
      // The view is only valid during the call: keep a copy.
      got.push({ frame: Uint8Array.prototype.slice.call(f), meta: meta ? { ...meta } : undefined });
    },
    batchEnd: () => {
      batches.push(inBatch);
      inBatch = 0;
    },
  });
  await ns.ip("addr", "add", "198.18.0.1/24", "dev", tap.name);
  await ns.neigh(tap.name, "198.18.0.2", formatMac(OUR_MAC));
  const link = JSON.parse((await ns.ip("-j", "link", "show", tap.name)).stdout) as { address: string; flags: string[] }[];
  return { tap, got, batches, kernelMac: parseMac(link[0]!.address), flags: link[0]!.flags };
}

/** The kernel in `ns` sends UDP datagrams with these payloads to 198.18.0.2:port. */
async function kernelSendsUdp(ns: Netns, payloads: string[], port = 9999): Promise<void> {
  const code = "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor p in sys.argv[1:]: s.sendto(p.encode(),('198.18.0.2'," + port + "))";
  await ns.exec(PY, ["-c", code, ...payloads], 10_000);
}

/** UDP payloads (as text) of the IPv4 frames received for `port`. */
function udpPayloads(got: Got[], port = 9999): string[] {
  const out: string[] = [];
  for (const { frame } of got) {
    if (frame[12] !== 0x08 || frame[13] !== 0x00) continue;
    const ip = parseIpv4(frame.subarray(14));
    if (typeof ip === "string" || ip.protocol !== 17) continue;
    const udp = parseUdp(ip.payload);
    if (typeof udp === "string" || udp.dstPort !== port) continue;
    out.push(Buffer.from(udp.payload).toString());
  }
  return out;
}

function arpRequestFrame(tpa: Uint8Array, spa = parseIPv4("198.18.0.77")): Uint8Array {
  const f = new Uint8Array(60);
  emitEthernet(f, BROADCAST_MAC, OUR_MAC, ETHERTYPE_ARP);
  emitArp(f.subarray(14), { op: 1, sha: OUR_MAC, spa, tha: new Uint8Array(6), tpa });
  return f;
}

const isArpReply = (f: Uint8Array): boolean => f[12] === 0x08 && f[13] === 0x06 && f[21] === 2;

function echoRequestFrame(dstMac: Uint8Array, ident: number, seq: number, data: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + 20 + 8 + data.length);
  emitEthernet(f, dstMac, OUR_MAC, ETHERTYPE_IPV4);
  f.set(data, 42);
  emitIcmp(f, 34, 8 + data.length, ICMPV4_ECHO_REQUEST, 0, ((ident << 16) | seq) >>> 0);
  emitIpv4(f, 14, { ident: 1, ttl: 64, protocol: 1, src: OUR_IP, dst: KERNEL_IP, payloadLen: 8 + data.length });
  return f;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!run)("TapNetif with the kernel as peer", () => {
  const ctx = useNetns("tap");
  afterEach(async () => {
    for (const t of opened) await t.close(); // idempotent
    opened.clear();
  });

  it("creates the TAP inside the namespace given by path and returns this thread to its own namespace", async () => {
    const before = readlinkSync("/proc/thread-self/ns/net");
    const { tap, flags } = await kernelPeer(ctx.ns);
    expect(readlinkSync("/proc/thread-self/ns/net")).toBe(before);
    expect(flags).toContain("UP"); // opts.up
    await expect(sh("ip", ["link", "show", tap.name])).rejects.toThrow(/does not exist/); // not in ours
    // rxKeptUntilBatchEnd: a slot is read into again only at the next read (TCP joins segments of a batch).
    expect(tap.features).toEqual({ checksumOffload: false, maxFrameSize: 1514, tso: 0, rxKeptUntilBatchEnd: true });
    await tap.close();
  });

  it("receives a UDP datagram the kernel sends to 198.18.0.2 as one IPv4/UDP Ethernet frame", async () => {
    const { tap, got, kernelMac } = await kernelPeer(ctx.ns);
    await kernelSendsUdp(ctx.ns, ["hello from the kernel"]);
    await waitFor(() => udpPayloads(got).length > 0, "the UDP frame");
    expect(udpPayloads(got)).toEqual(["hello from the kernel"]);
    const f = got.find((g) => udpPayloads([g]).length)!.frame;
    expect([...f.subarray(0, 6)]).toEqual([...OUR_MAC]); // to the pinned neighbour
    expect([...f.subarray(6, 12)]).toEqual([...kernelMac]);
    const ip = parseIpv4(f.subarray(14));
    if (typeof ip === "string") throw new Error(ip);
    expect([...ip.src, ...ip.dst]).toEqual([...KERNEL_IP, ...OUR_IP]);
    expect(tap.stats().rxFrames).toBe(got.length);
    expect(tap.stats().rxBytes).toBe(got.reduce((n, g) => n + g.frame.length, 0));
    await tap.close();
  });

  it("sends an ARP request (RFC 826) and an ICMP echo request (RFC 792) that the kernel answers", async () => {
    const { tap, got, kernelMac } = await kernelPeer(ctx.ns);
    expect(tap.send(arpRequestFrame(KERNEL_IP))).toBe(true);
    await waitFor(() => got.some((g) => isArpReply(g.frame)), "the kernel's ARP reply");
    const a = parseArp(got.find((g) => isArpReply(g.frame))!.frame.subarray(14));
    if (typeof a === "string") throw new Error(a);
    expect([...a.sha]).toEqual([...kernelMac]);
    expect([...a.spa, ...a.tpa]).toEqual([...KERNEL_IP, ...parseIPv4("198.18.0.77")]);

    const data = new TextEncoder().encode("paf echo payload");
    expect(tap.send(echoRequestFrame(kernelMac, 0x1234, 7, data))).toBe(true);
    const isReply = (f: Uint8Array): boolean => {
      const ip = parseIpv4(f.subarray(14));
      return f[12] === 0x08 && f[13] === 0 && typeof ip !== "string" && ip.protocol === 1 && ip.payload[0] === ICMPV4_ECHO_REPLY;
    };
    await waitFor(() => got.some((g) => isReply(g.frame)), "the kernel's echo reply");
    const ip = parseIpv4(got.find((g) => isReply(g.frame))!.frame.subarray(14));
    if (typeof ip === "string") throw new Error(ip);
    const icmp = parseIcmp(ip.payload);
    if (typeof icmp === "string") throw new Error(icmp);
    expect(icmp.rest).toBe(((0x1234 << 16) | 7) >>> 0);
    expect(Buffer.from(icmp.body).toString()).toBe("paf echo payload");
    expect(tap.stats()).toMatchObject({ txFrames: 2, txBytes: 60 + 42 + data.length, txDropped: 0 });
    await tap.close();
  });

  it("strips and prepends the virtio-net header with vnetHdr, and reports checksum validity", async () => {
    const { tap, got } = await kernelPeer(ctx.ns, { vnetHdr: true });
    await kernelSendsUdp(ctx.ns, ["with a vnet header"]);
    await waitFor(() => udpPayloads(got).length > 0, "the UDP frame");
    const g = got.find((x) => udpPayloads([x]).length)!;
    expect([...g.frame.subarray(0, 6)]).toEqual([...OUR_MAC]); // the header is gone
    expect(typeof g.meta?.csumValid).toBe("boolean");
    expect(tap.send(arpRequestFrame(KERNEL_IP))).toBe(true); // written behind a zeroed header
    await waitFor(() => got.some((x) => isArpReply(x.frame)), "the kernel's ARP reply");
    expect(tap.stats().rxBytes).toBe(got.reduce((n, x) => n + x.frame.length, 0)); // header not counted
    await tap.close();
  });

  it("with the vnet header (no offloads) the kernel completes a checksum sent partial (TxMeta.csumPartial); the same frame unmarked is a checksum error", async () => {
    const { tap, kernelMac } = await kernelPeer(ctx.ns, { vnetHdr: true });
    expect(tap.features.checksumOffload).toBe(true);
    // Counts datagrams to 198.18.0.1:5000 for 2 s, then prints them and the kernel's UDP InCsumErrors.
    const code = [
      "import socket",
      "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('198.18.0.1',5000)); s.settimeout(2)",
      "print('ready',flush=True); got=[]",
      "try:",
      "  while True: got.append(s.recv(9000).decode())",
      "except socket.timeout: pass",
      "u=[l.split() for l in open('/proc/net/snmp') if l.startswith('Udp:')]",
      "print(' '.join(got), dict(zip(u[0][1:],u[1][1:]))['InCsumErrors'],flush=True)",
    ].join("\n");
    const rx = ctx.ns.spawn(PY, ["-c", code], { timeoutMs: 10_000 });
    let text = "";
    rx.stdout!.on("data", (d) => (text += d));
    await waitFor(() => text.startsWith("ready"), "the receiver");
    const frame = (payload: string) => {
      const data = new TextEncoder().encode(payload);
      const f = new Uint8Array(42 + data.length);
      emitEthernet(f, kernelMac, OUR_MAC, ETHERTYPE_IPV4);
      f.set(data, 42);
      emitUdp(f, 34, 40000, 5000, data.length, OUR_IP, KERNEL_IP, true); // the pseudo-header sum only
      emitIpv4(f, 14, { ident: 1, ttl: 64, protocol: 17, src: OUR_IP, dst: KERNEL_IP, payloadLen: 8 + data.length });
      return f;
    };
    expect(tap.send(frame("marked"), { csumPartial: true })).toBe(true);
    expect(tap.send(frame("unmarked"))).toBe(true);
    await new Promise<void>((resolve) => rx.on("exit", () => resolve()));
    const [payloads, csumErrors] = text.trim().split("\n").pop()!.split(" ");
    expect(payloads).toBe("marked");
    expect(Number(csumErrors)).toBe(1);
    await tap.close();
  });

  it("sets the kernel's offloads both ways on every open: a persistent TAP once opened with offload, then without, gets checksummed datagrams", async () => {
    const name = ifname("pp");
    await ctx.ns.ip("tuntap", "add", name, "mode", "tap");
    const offloads = async () => (await ctx.ns.exec("ethtool", ["-k", name])).stdout.match(/^tx-checksumming: (\w+)/m)?.[1];
    let stack: Stack | undefined;
    try {
      await TapNetif.open(name, { netns: ctx.ns.path, up: true, offload: true }).close();
      expect(await offloads()).toBe("on"); // persistent: the device keeps what the last open set
      const tap = TapNetif.open(name, { netns: ctx.ns.path, up: true });
      expect(await offloads()).toBe("off");
      stack = Stack.create({ netif: tap, mac: OUR_MAC, ipv4: { address: "198.18.0.2/24" } });
      const sock = stack.udp.createSocket("udp4");
      const got: string[] = [];
      sock.on("message", (m) => got.push(m.toString()));
      sock.bind(9999);
      await ctx.ns.ip("addr", "add", "198.18.0.1/24", "dev", name);
      await ctx.ns.neigh(name, "198.18.0.2", formatMac(OUR_MAC));
      await kernelSendsUdp(ctx.ns, ["one", "two", "three"]);
      await waitFor(() => got.length === 3, "three datagrams past the stack's checksum check", 3000).catch(() => undefined);
      expect(stack.stats().udp!["drop_bad_checksum"] ?? 0).toBe(0);
      expect(got).toEqual(["one", "two", "three"]);
    } finally {
      await stack?.close();
      await ctx.ns.ip("link", "del", name).catch(() => undefined);
    }
  });

  it("raises the kernel's queue toward the stack (txqueuelen) to rxQueue, never lowers it; 0 leaves it", async () => {
    const name = ifname("pq");
    await ctx.ns.ip("tuntap", "add", name, "mode", "tap");
    const qlen = async () => Number((await ctx.ns.exec("ip", ["link", "show", name])).stdout.match(/qlen (\d+)/)?.[1]);
    try {
      expect(await qlen()).toBe(1000); // Linux's default
      let tap = TapNetif.open(name, { netns: ctx.ns.path, rxQueue: 0 });
      expect(tap.rxQueue).toBe(1000);
      await tap.close();
      expect(await qlen()).toBe(1000);
      tap = TapNetif.open(name, { netns: ctx.ns.path });
      expect(tap.rxQueue).toBe(4096); // the default
      await tap.close();
      expect(await qlen()).toBe(4096);
      await ctx.ns.ip("link", "set", name, "txqueuelen", "8000");
      tap = TapNetif.open(name, { netns: ctx.ns.path, rxQueue: 2000 });
      expect(tap.rxQueue).toBe(8000);
      await tap.close();
      expect(await qlen()).toBe(8000);
    } finally {
      await ctx.ns.ip("link", "del", name).catch(() => undefined);
    }
  });

  it("hands frames up in batches of at most `batch`, each closed by batchEnd", async () => {
    const { tap, got, batches } = await kernelPeer(ctx.ns, { batch: 4 });
    const payloads = Array.from({ length: 40 }, (_, i) => `datagram ${i}`);
    await kernelSendsUdp(ctx.ns, payloads);
    await waitFor(() => udpPayloads(got).length === 40, "40 datagrams");
    expect(udpPayloads(got)).toEqual(payloads); // in order, none lost
    expect(Math.max(...batches)).toBeLessThanOrEqual(4);
    expect(batches.reduce((a, b) => a + b, 0)).toBe(got.length);
    await tap.close();
  });

  it("read(2): after lone frames (then read one per wakeup, without the read that finds the queue empty) a waiting burst comes whole, in batches of 64 again within four wakeups", async () => {
    // The read(2) reader's own economy (io_uring makes no system call per frame to save).
    const { tap, got, batches } = await kernelPeer(ctx.ns, { ioUring: false });
    expect(tap.readerMode).toBe("read");
    // One datagram at a time, each read before the next is sent: every wakeup finds one frame.
    const lone = Array.from({ length: 8 }, (_, i) => `lone ${i}`);
    for (const [i, p] of lone.entries()) {
      await kernelSendsUdp(ctx.ns, [p]);
      await waitFor(() => udpPayloads(got).length === i + 1, p);
    }
    // 300 more wait in the kernel's queue while reading is paused, then all at once.
    tap.pause();
    const burst = Array.from({ length: 300 }, (_, i) => `burst ${i}`);
    await kernelSendsUdp(ctx.ns, burst);
    const before = batches.length;
    tap.resume();
    await waitFor(() => udpPayloads(got).length === 308, "the burst");
    expect(udpPayloads(got)).toEqual([...lone, ...burst]); // in order, none lost
    // A few wakeups of one frame each (the queue not asked), then whole batches of 64 again: at
    // the latest the fourth wakeup after a lone frame reads on to EAGAIN.
    const after = batches.slice(before);
    const full = after.indexOf(64);
    expect(full).toBeGreaterThanOrEqual(0);
    expect(full).toBeLessThanOrEqual(4);
    expect(after.slice(0, full).every((n) => n === 1)).toBe(true);
    expect(after.length).toBeLessThanOrEqual(full + Math.ceil((300 - full) / 64));
    await tap.close();
  });

  it("drops and counts a frame longer than its slot (read() truncates it) and keeps the next ones", async () => {
    const { tap, got } = await kernelPeer(ctx.ns, { frameSize: 256 });
    await kernelSendsUdp(ctx.ns, ["x".repeat(1000), "small"]);
    await waitFor(() => udpPayloads(got).includes("small"), "the small datagram");
    expect(udpPayloads(got)).toEqual(["small"]);
    expect(tap.stats().rxDropped).toBe(1);
    expect(Math.max(...got.map((g) => g.frame.length))).toBeLessThan(256);
    await tap.close();
  });

  it("bounds the transmit queue: beyond queueLimit send() returns false and counts txDropped", async () => {
    const { tap } = await kernelPeer(ctx.ns, { queueLimit: 4 });
    const results = Array.from({ length: 10 }, () => tap.send(arpRequestFrame(KERNEL_IP)));
    expect(results).toEqual([true, true, true, true, false, false, false, false, false, false]);
    expect(tap.stats().txDropped).toBe(6);
    await sleep(0); // the flush runs once for the tick
    expect(tap.stats().txFrames).toBe(4);
    expect(tap.send(arpRequestFrame(KERNEL_IP))).toBe(true); // room again
    await tap.close();
  });

  it("says whether frames wait unread in the kernel's queue (inputPending), paused or not", async () => {
    const { tap, got } = await kernelPeer(ctx.ns);
    await waitFor(() => !tap.inputPending(), "the queue empty after the start");
    tap.pause();
    await kernelSendsUdp(ctx.ns, ["one", "two"]);
    await sleep(20);
    expect(tap.inputPending()).toBe(true); // they wait in the kernel
    const before = udpPayloads(got).length;
    tap.resume();
    await waitFor(() => udpPayloads(got).length === before + 2, "both datagrams after resume");
    expect(tap.inputPending()).toBe(false);
    await tap.close();
    expect(tap.inputPending()).toBe(false); // closed: nothing to read, no error
  });

  it("reports a device deleted under it once, through onError, and stops reading", async () => {
    const errors: NetifError[] = [];
    const { tap } = await kernelPeer(ctx.ns, { onError: (e) => errors.push(e) });
    await ctx.ns.ip("link", "del", tap.name);
    await waitFor(() => errors.length > 0, "onError");
    await sleep(50);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(NetifError);
    expect(errors[0]!.code).toMatch(/^E/);
    expect(errors[0]!.message).toMatch(/deleted/);
    await tap.close();
  });

  it("close() is idempotent, stops delivery, refuses sends and releases the device", async () => {
    const { tap, got } = await kernelPeer(ctx.ns);
    await kernelSendsUdp(ctx.ns, ["before close"]);
    await waitFor(() => udpPayloads(got).length === 1, "the first datagram");
    const p1 = tap.close();
    const p2 = tap.close();
    await Promise.all([p1, p2]);
    await tap.close();
    const n = got.length;
    // Not persistent: closing the only fd deletes the device, so the kernel cannot even send.
    await expect(ctx.ns.ip("link", "show", tap.name)).rejects.toThrow(/does not exist/);
    await kernelSendsUdp(ctx.ns, ["after close"]).catch(() => undefined);
    await sleep(200);
    expect(got.length).toBe(n);
    expect(tap.send(arpRequestFrame(KERNEL_IP))).toBe(false);
    expect(tap.stats().txDropped).toBe(1);
  });

  it("keeps working when the device is moved to another namespace after opening", async () => {
    const { tap, got } = await kernelPeer(ctx.ns);
    const other = await Netns.create("tapmv");
    try {
      await ctx.ns.ip("link", "set", tap.name, "netns", other.name);
      await other.kernelSide(tap.name, "198.18.0.1/24", undefined);
      await other.neigh(tap.name, "198.18.0.2", formatMac(OUR_MAC));
      await kernelSendsUdp(other, ["from the other namespace"]);
      await waitFor(() => udpPayloads(got).length === 1, "the datagram");
      expect(udpPayloads(got)).toEqual(["from the other namespace"]);
      await tap.close();
    } finally {
      await other.destroy();
    }
  });
});

describe.skipIf(!run)("UDP segmentation on transmit: a run of datagrams to one peer leaves as one super-frame the kernel cuts", () => {
  const ctx = useNetns("tapu");
  // Linux takes UDP super-frames from a TAP (TUN_F_USO4/6) since 6.2.
  const [major = 0, minor = 0] = readFileSync("/proc/sys/kernel/osrelease", "utf8").split(".").map(Number);
  const kernelHasUso = major > 6 || (major === 6 && minor >= 2);
  // A receiver in the namespace: N datagrams on UDP port 5000 of each family, answered as
  // "length:first-bytes" lines, then the kernel's UDP error counters.
  const RECEIVER = [
    "import socket,sys,json",
    "n=int(sys.argv[1]); out={}",
    "for fam,addr in ((socket.AF_INET,'198.18.0.1'),(socket.AF_INET6,'2001:db8::1')):",
    "  s=socket.socket(fam,socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,1<<22); s.bind((addr,5000)); s.settimeout(5)",
    "  got=[]",
    "  print('ready',flush=True)",
    "  try:",
    "    while len(got)<n: got.append(s.recv(65535).hex())",
    "  except socket.timeout: pass",
    "  out[str(fam)]=got",
    "snmp=open('/proc/net/snmp').read().split('\\n'); u=[l.split() for l in snmp if l.startswith('Udp:')]",
    "out['udp']=dict(zip(u[0][1:],map(int,u[1][1:])))",
    "print(json.dumps(out),flush=True)",
  ].join("\n");

  for (const uso of [true, false]) {
    it(uso ? "200 datagrams per family arrive intact and in order, written as a few super-frames" : "with udpSegmentation: false, the same datagrams, one write each", async () => {
      const tap = TapNetif.open(ifname("pu"), { netns: ctx.ns.path, up: true, offload: true, udpSegmentation: uso });
      // The IPv4 IDs the stack gives the datagrams to 198.18.0.1, as it hands them to the TAP: they
      // count up but jump with the time since the last one (RFC 7739, stack/ipv4id.ts), and a run
      // is merged only where they count up by one.
      const given: number[] = [];
      const send = tap.send.bind(tap);
      tap.send = (f, meta) => {
        if (f[12] === 0x08 && f[13] === 0x00 && f[23] === 17 && f[36] === 0x13 && f[37] === 0x88) given.push((f[18]! << 8) | f[19]!);
        return send(f, meta);
      };
      const stack = Stack.create({ netif: tap, mac: OUR_MAC, ipv4: { address: "198.18.0.2/24" }, ipv6: { address: "2001:db8::2/64" } });
      try {
        expect(tap.udpSegmentation).toBe(uso && kernelHasUso);
        await ctx.ns.kernelSide(tap.name);
        await ctx.ns.neigh(tap.name, "198.18.0.2", formatMac(OUR_MAC));
        await ctx.ns.neigh(tap.name, "2001:db8::2", formatMac(OUR_MAC));
        await stack.ready();
        // The kernel's MAC first (a datagram to an unresolved neighbour waits in a short queue).
        await stack.ping("198.18.0.1");
        await stack.ping("2001:db8::1");
        const N = 200;
        const rx = ctx.ns.spawn(PY, ["-c", RECEIVER, String(N)], { timeoutMs: 30_000 });
        let text = "";
        rx.stdout!.on("data", (d) => (text += d));
        const sent: Record<string, string[]> = {};
        for (const [fam, type, dst] of [
          ["2", "udp4", "198.18.0.1"],
          ["10", "udp6", "2001:db8::1"],
        ] as const) {
          await waitFor(() => text.split("ready").length - 1 > Object.keys(sent).length, `the ${type} receiver`, 5000);
          const sock = stack.udp.createSocket(type);
          sock.bind(0);
          // One tick: the whole run queued before the TAP's flush. Sizes 300 but for the last
          // of every 50 (shorter: a run's end); each carries its sequence number.
          const list: string[] = [];
          for (let i = 0; i < N; i++) {
            const p = Buffer.alloc(i % 50 === 49 ? 77 : 300, i & 0xff);
            p.writeUInt16BE(i, 0);
            list.push(p.toString("hex"));
            sock.send(p, 5000, dst);
          }
          sent[fam] = list;
        }
        const line = await new Promise<string>((resolve) => rx.on("exit", () => resolve(text.trim().split("\n").pop() ?? "")));
        const got = JSON.parse(line) as Record<string, string[]> & { udp: Record<string, number> };
        expect(got["2"]).toEqual(sent["2"]);
        expect(got["10"]).toEqual(sent["10"]);
        expect(got.udp["InErrors"]).toBe(0);
        expect(got.udp["InCsumErrors"]).toBe(0);
        if (tap.udpSegmentation) {
          // At most 64 a super-frame, and a shorter datagram ends a run: runs of 50 per family,
          // IPv4's split where an ID jumps; a run of one is written as it is.
          expect(given).toHaveLength(N);
          const mergeable = (ids: number[] | undefined) => {
            let m = 0;
            for (let b = 0; b < N; b += 50) {
              let len = 1;
              for (let i = b + 1; i <= b + 50; i++) {
                if (i < b + 50 && (!ids || ((ids[i]! - ids[i - 1]!) & 0xffff) === 1)) len++;
                else {
                  if (len >= 2) m += len;
                  len = 1;
                }
              }
            }
            return m;
          };
          expect(tap.usoStats.superFrames).toBeGreaterThanOrEqual(8);
          expect(tap.usoStats.datagrams).toBe(mergeable(given) + mergeable(undefined));
          expect(tap.usoStats.datagrams).toBeGreaterThan(N); // IPv6's 200 at least
        } else expect(tap.usoStats).toEqual({ superFrames: 0, datagrams: 0 });
        expect(tap.stats().txFrames).toBeGreaterThanOrEqual(2 * N); // datagrams, not writes
      } finally {
        await stack.close();
      }
    });
  }

  it.skipIf(!kernelHasUso)("forwarded by the kernel onto a link without offloads, the cut datagrams are the ones sent: checksums, IPv4 IDs, order", async () => {
    // paf (offloads on) -> the namespace routes -> a second TAP without offloads, read raw here:
    // the kernel must cut each super-frame in software and complete every checksum itself.
    const tap = TapNetif.open(ifname("pu"), { netns: ctx.ns.path, up: true, offload: true });
    const out = TapNetif.open(ifname("pv"), { netns: ctx.ns.path, up: true });
    const frames: Uint8Array[] = [];
    out.start({ frame: (f) => frames.push(Uint8Array.prototype.slice.call(f)) });
    // The IPv4 IDs the stack gives its datagrams to 198.18.5.9, as it hands them to the TAP (they
    // count up, but jump with the time since the last one: RFC 7739, stack/ipv4id.ts).
    const given: number[] = [];
    const send = tap.send.bind(tap);
    tap.send = (f, meta) => {
      if (f[12] === 0x08 && f[13] === 0x00 && f[23] === 17 && f[30] === 198 && f[31] === 18 && f[32] === 5 && f[33] === 9) given.push((f[18]! << 8) | f[19]!);
      return send(f, meta);
    };
    const stack = Stack.create({ netif: tap, mac: OUR_MAC, ipv4: { address: "198.18.0.2/24", gateway: "198.18.0.1" }, ipv6: { address: "2001:db8::2/64", gateway: "2001:db8::1" } });
    try {
      await ctx.ns.kernelSide(tap.name);
      await ctx.ns.kernelSide(out.name, "198.18.5.1/24", "2001:db8:5::1/64");
      ctx.ns.execSync("sysctl", ["-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
      await ctx.ns.neigh(tap.name, "198.18.0.2", formatMac(OUR_MAC));
      await ctx.ns.neigh(tap.name, "2001:db8::2", formatMac(OUR_MAC));
      await ctx.ns.neigh(out.name, "198.18.5.9", "02:00:00:00:05:09");
      await ctx.ns.neigh(out.name, "2001:db8:5::9", "02:00:00:00:05:09");
      await stack.ready();
      await stack.ping("198.18.0.1");
      await stack.ping("2001:db8::1");
      const N = 100;
      const sent: string[] = [];
      for (const [type, dst] of [
        ["udp4", "198.18.5.9"],
        ["udp6", "2001:db8:5::9"],
      ] as const) {
        const sock = stack.udp.createSocket(type);
        sock.bind(0);
        for (let i = 0; i < N; i++) {
          const p = Buffer.alloc(i === N - 1 ? 33 : 500, i & 0xff);
          p.writeUInt16BE(i, 0);
          sent.push(`${type} ${p.toString("hex")}`);
          sock.send(p, 6000, dst);
        }
      }
      const udp = () =>
        frames.flatMap((f) => {
          const v4 = f[12] === 0x08 && f[13] === 0x00;
          const v6 = f[12] === 0x86 && f[13] === 0xdd;
          const l4 = v4 ? 34 : 54;
          if (!(v4 && f[23] === 17) && !(v6 && f[20] === 17)) return [];
          if (((f[l4 + 2]! << 8) | f[l4 + 3]!) !== 6000) return [];
          return [{ f, v4, l4 }];
        });
      await waitFor(() => udp().length >= 2 * N, `${2 * N} forwarded datagrams`, 5000).catch(() => undefined);
      const got = udp();
      expect(got.map(({ f, v4, l4 }) => `${v4 ? "udp4" : "udp6"} ${Buffer.from(f.subarray(l4 + 8)).toString("hex")}`)).toEqual(sent);
      const ids: number[] = [];
      for (const { f, v4, l4 } of got) {
        const src = v4 ? f.subarray(26, 30) : f.subarray(22, 38);
        const dst = v4 ? f.subarray(30, 34) : f.subarray(38, 54);
        expect(udpChecksumOk(f.subarray(l4), src, dst)).toBe(true);
        expect((f[l4 + 6]! << 8) | f[l4 + 7]!).not.toBe(0); // computed, not left out
        if (v4) {
          expect(typeof parseIpv4(f.subarray(14))).toBe("object"); // its header checksum is checked
          ids.push((f[18]! << 8) | f[19]!);
        }
      }
      // Each cut datagram carries the ID the stack gave it (a run is only merged where they count
      // up by one, and the kernel counts up from the first).
      expect(given).toHaveLength(N);
      expect(ids).toEqual(given);
      expect(tap.usoStats.datagrams).toBe(2 * N);
    } finally {
      await stack.close();
      await out.close();
    }
  });
});

describe.skipIf(!run)("opening a TAP keeps freed heap memory for reuse (glibc M_TRIM_THRESHOLD)", () => {
  const ctx = useNetns("tapm");
  // Whether the process's malloc was tuned, seen from outside: once M_TRIM_THRESHOLD is set, glibc
  // stops adjusting its mmap threshold, so after a 1 MiB buffer was freed, 100 more of them are
  // still mmap'd each; untuned, the freed one raised the threshold and they grow the [heap].
  const heapGrowth = async (env: Record<string, string>) => {
    const code = `
import { TapNetif } from ${JSON.stringify(join(packageRoot(), "dist", "stack", "netif", "tap.js"))};
import { readFileSync } from "node:fs";
const heapMB = () => { const m = /^([0-9a-f]+)-([0-9a-f]+) .*\\[heap\\]$/m.exec(readFileSync("/proc/self/maps", "utf8")); return m ? (parseInt(m[2], 16) - parseInt(m[1], 16)) / 2 ** 20 : 0; };
const netif = TapNetif.open(${JSON.stringify(ifname("tm"))}, { netns: ${JSON.stringify(ctx.ns.path)} });
const ab0 = process.memoryUsage().arrayBuffers;
let one = Buffer.allocUnsafeSlow(1 << 20).fill(1);
one = null;
// V8 frees a dead buffer's memory after a collection, on a thread of its own and when that
// thread gets to it: wait until the free has happened (the allocator's count is back), else
// the 100 buffers below come before it and nothing is measured.
for (let i = 0; i < 200 && process.memoryUsage().arrayBuffers > ab0 + (1 << 19); i++) {
  gc();
  await new Promise((r) => setTimeout(r, 10));
}
if (process.memoryUsage().arrayBuffers > ab0 + (1 << 19)) throw new Error("the 1 MiB buffer was not freed within 2 s");
const h0 = heapMB();
const keep = [];
for (let i = 0; i < 100; i++) keep.push(Buffer.allocUnsafeSlow(1 << 20).fill(i));
console.log(heapMB() - h0);
await netif.close();`;
    const { stdout } = await sh(process.execPath, ["--expose-gc", "--input-type=module", "-e", code], { env });
    return Number(stdout.trim());
  };

  it("tunes malloc by default; PAF_MALLOC_TRIM=off leaves it alone; a bad value is refused", async () => {
    expect(await heapGrowth({ PAF_MALLOC_TRIM: "off" })).toBeGreaterThan(90);
    expect(await heapGrowth({ PAF_MALLOC_TRIM: "" })).toBeLessThan(10);
    await expect(heapGrowth({ PAF_MALLOC_TRIM: "lots" })).rejects.toThrow(/PAF_MALLOC_TRIM=lots: expected "off" or a number of bytes/);
  });
});

describe.skipIf(!run)("TapNetif.open errors say what to do", () => {
  const ctx = useNetns("tape");

  it("a name longer than 15 characters is EINVAL", () => {
    expect(() => TapNetif.open("a-name-longer-than-15", { netns: ctx.ns.path })).toThrow(expect.objectContaining({ code: "EINVAL", message: expect.stringMatching(/1 to 15 characters/) }));
    expect(() => TapNetif.open("", { netns: ctx.ns.path })).toThrow(expect.objectContaining({ code: "EINVAL" }));
  });

  it("a TAP already open (not multi-queue) is EBUSY", async () => {
    const name = ifname("pb");
    const t = TapNetif.open(name, { netns: ctx.ns.path });
    let err: unknown;
    try {
      TapNetif.open(name, { netns: ctx.ns.path });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NetifError);
    expect(err).toMatchObject({ code: "EBUSY", message: expect.stringMatching(new RegExp(`${name}.*in use by another process`)) });
    await t.close();
    // Released: it can be opened again.
    await TapNetif.open(name, { netns: ctx.ns.path }).close();
  });

  it("a name taken by a device that is not a TAP, or a multi-queue mismatch, is EINVAL", async () => {
    expect(() => TapNetif.open("lo", { netns: ctx.ns.path })).toThrow(expect.objectContaining({ code: "EINVAL", message: expect.stringMatching(/not a TAP/) }));
    const name = ifname("pq");
    const t = TapNetif.open(name, { netns: ctx.ns.path });
    expect(() => TapNetif.open(name, { netns: ctx.ns.path, multiQueue: true })).toThrow(expect.objectContaining({ code: "EINVAL", message: expect.stringMatching(/multi_queue/) }));
    await t.close();
  });

  it("a namespace that does not exist is ENOENT with the command that creates it", () => {
    expect(() => TapNetif.open("x", { netns: "/var/run/netns/paf-does-not-exist" })).toThrow(
      expect.objectContaining({ code: "ENOENT", message: expect.stringMatching(/ip netns add paf-does-not-exist/) }),
    );
  });

  it("options out of range are EINVAL before anything is opened", () => {
    expect(() => TapNetif.open("x", { mtu: 10 })).toThrow(expect.objectContaining({ code: "EINVAL" }));
    expect(() => TapNetif.open("x", { batch: 0 })).toThrow(expect.objectContaining({ code: "EINVAL" }));
    expect(() => TapNetif.open("x", { rxQueue: -1 })).toThrow(expect.objectContaining({ code: "EINVAL" }));
    expect(() => TapNetif.open("x", { rxQueue: 1.5 })).toThrow(expect.objectContaining({ code: "EINVAL" }));
  });

  it("a user without privileges attaches to a persistent TAP it owns, and gets EPERM with a hint otherwise", async () => {
    // /dev/net/tun is 0600 on some machines (this one): give the unprivileged process a 0666
    // node of its own in a private mount namespace, leaving the real one untouched.
    const dir = mkdtempSync(join(tmpdir(), "paf-tun-"));
    const owned = ifname("po");
    const foreign = ifname("pf");
    try {
      await ctx.ns.ip("tuntap", "add", owned, "mode", "tap", "user", "65534");
      await ctx.ns.ip("link", "set", owned, "up");
      await ctx.ns.ip("tuntap", "add", foreign, "mode", "tap", "user", "0");
      const addon = join(packageRoot(), "build", "Release", "paf_tap.node");
      const js =
        `const a = require(${JSON.stringify(addon)}); const out = {};` +
        `for (const n of process.argv.slice(1)) { try { const r = a.open(n, { up: true, rxQueue: 4096 }); out[n] = { ok: r.name, rxQueue: r.rxQueue }; try { a.setSourceFilter(r.fd, 100, 10, 10); out.filter = "attached"; } catch (e) { out.filter = { code: e.code, message: e.message }; } } catch (e) { out[n] = { code: e.code, message: e.message }; } }` +
        `console.log(JSON.stringify(out));`;
      const script =
        `set -e; mount -t tmpfs paf-tun ${dir}; mknod ${dir}/tun c 10 200; chmod 0666 ${dir}/tun; mount --bind ${dir}/tun /dev/net/tun; ` +
        `exec ip netns exec ${ctx.ns.name} setpriv --reuid=65534 --regid=65534 --clear-groups ${process.execPath} -e "$0" ${owned} ${foreign}`;
      const r = await sh("unshare", ["-m", "--propagation", "private", "bash", "-c", script, js], 20_000);
      const out = JSON.parse(r.stdout) as Record<string, { ok?: string; code?: string; message?: string }>;
      // Already up: no CAP_NET_ADMIN needed. Nor to open it when its queue may not be raised.
      expect(out[owned]).toEqual({ ok: owned, rxQueue: 1000 });
      // The kernel's per-source limit needs privileges the user lacks: a clear error (the stack
      // then enforces sourcePacketsPerSec itself).
      expect(out["filter"]).toMatchObject({ code: "EPERM", message: expect.stringMatching(/CAP_BPF.*the stack then limits sources itself/) });
      expect(out[foreign]!.code).toBe("EPERM");
      expect(out[foreign]!.message).toMatch(new RegExp(`sudo ip tuntap add ${foreign} mode tap user`));
      // `paf serve` on that TAP as the same user serves, and says once how to lengthen the queue.
      const cli = join(packageRoot(), "dist", "cli", "main.js");
      const serveScript =
        `set -e; mount -t tmpfs paf-tun ${dir}; mknod ${dir}/tun c 10 200; chmod 0666 ${dir}/tun; mount --bind ${dir}/tun /dev/net/tun; ` +
        `ip netns exec ${ctx.ns.name} setpriv --reuid=65534 --regid=65534 --clear-groups timeout -s INT 3 ${process.execPath} ${cli} serve --tap ${owned} --ipv4 198.18.0.2/24 --http 8080 2>&1 || true`;
      const served = (await sh("unshare", ["-m", "--propagation", "private", "bash", "-c", serveScript], 20_000)).stdout;
      expect(served).toMatch(/listening/);
      expect(served).toContain(`the kernel holds only 1000 frames for paf to read on ${owned}`);
      expect(served).toContain(`sudo ip link set ${owned} txqueuelen 4096`);
    } finally {
      await ctx.ns.ip("link", "del", owned).catch(() => undefined);
      await ctx.ns.ip("link", "del", foreign).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
