// TCP against the Linux kernel over a real TAP, both as server and as client, IPv4 and IPv6:
// bulk transfers checked by digest, half-close, RST, refused connections, zero window,
// keepalive, and a 20 MB transfer under 3% random loss both ways (nftables).
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { Netns, privileged, sh } from "../../helpers/netns.js";
import { TapNetif } from "../../../stack/netif/tap.js";
import { Stack } from "../../../stack/stack.js";
import type { TcpFlow } from "../../../stack/tcp/flow.js";

const run = privileged();
const PEER = join(import.meta.dirname, "tcp_peer.py");

/** Run the kernel-side peer; resolves with its JSON line. `ready` resolves when a server is listening. */
function peer(ns: Netns, args: string[], timeoutMs = 120_000) {
  const c = ns.spawn("/usr/bin/python3", [PEER, ...args]);
  let out = "";
  let err = "";
  let readyResolve!: () => void;
  const ready = new Promise<void>((r) => (readyResolve = r));
  c.stdout!.on("data", (d) => {
    out += d;
    if (out.includes("ready")) readyResolve();
  });
  c.stderr!.on("data", (d) => (err += d));
  const result = new Promise<Record<string, unknown>>((resolve, reject) => {
    const t = setTimeout(() => c.kill("SIGKILL"), timeoutMs);
    // 'close', not 'exit': the last line may still be in the pipe when the process has exited.
    c.on("close", (code) => {
      clearTimeout(t);
      const line = out.trim().split("\n").pop() ?? "";
      if (code !== 0) return reject(new Error(`tcp_peer ${args.join(" ")} exited ${code}: ${err}`));
      resolve(JSON.parse(line));
    });
  });
  return { ready, result };
}

/** A paf server that hashes everything it receives and answers with the hex digest after the peer's FIN (half-close). */
function hashServer(stack: Stack, port: number) {
  return stack.tcp.listen({ port, allowHalfOpen: true }, (f) => {
    const h = createHash("sha256");
    f.on("data", (d) => h.update(d));
    f.on("end", () => f.end(h.digest("hex")));
    f.on("error", () => {});
  });
}

/**
 * A server that keeps every chunk as handed up and hashes them only at the end, answering with
 * the SHA-256: memory the stack wrote over after handing it up (a receive slot read into again)
 * would show in the hash. The chunks are in `kept`.
 */
function keepingServer(stack: Stack, port: number, kept: Buffer[]) {
  return stack.tcp.listen({ port, allowHalfOpen: true }, (f) => {
    f.on("data", (d: Buffer) => kept.push(d));
    f.on("end", () => {
      const h = createHash("sha256");
      for (const d of kept) h.update(d);
      f.end(h.digest("hex"));
    });
    f.on("error", () => {});
  });
}

function readAll(f: TcpFlow): Promise<{ sha: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const h = createHash("sha256");
    let n = 0;
    f.on("data", (d: Buffer) => {
      h.update(d);
      n += d.length;
    });
    f.on("end", () => resolve({ sha: h.digest("hex"), bytes: n }));
    f.on("error", reject);
  });
}

function randomUpload(f: TcpFlow, size: number): Promise<string> {
  const h = createHash("sha256");
  return new Promise((resolve, reject) => {
    let left = size;
    const pump = () => {
      while (left > 0) {
        const b = createHash("sha512").update(String(left)).digest();
        const chunk = Buffer.concat(Array(Math.min(1024, Math.ceil(left / 64))).fill(b)).subarray(0, Math.min(65536, left));
        h.update(chunk);
        left -= chunk.length;
        if (!f.write(chunk)) return void f.once("drain", pump);
      }
      f.end();
      resolve(h.digest("hex"));
    };
    f.on("error", reject);
    pump();
  });
}

async function lossyTransfer(ns: Netns, stack: Stack, TAP: string, offload: boolean): Promise<void> {
  // Loss must happen between the two TCPs: drops in the sender's own output path are reported
  // back to the kernel's TCP and retried locally, so they are no loss at all. The kernel
  // endpoint therefore sits behind a router namespace whose forward hook drops 3% each way:
  //   paf --TAP-- [ns: router 198.18.0.1 | 198.18.1.1] --veth-- [kernel 198.18.1.2]
  const k = await Netns.create("tcpk");
  try {
    await sh("bash", [
      "-c",
      [
        `ip link add pafr${process.pid % 10000} netns ${ns.name} type veth peer name pafk${process.pid % 10000} netns ${k.name}`,
        `ip -n ${ns.name} addr add 198.18.1.1/24 dev pafr${process.pid % 10000}`,
        `ip -n ${ns.name} link set pafr${process.pid % 10000} up`,
        `ip -n ${k.name} addr add 198.18.1.2/24 dev pafk${process.pid % 10000}`,
        `ip -n ${k.name} link set pafk${process.pid % 10000} up`,
        `ip -n ${k.name} route add default via 198.18.1.1`,
        `ip netns exec ${ns.name} sysctl -qw net.ipv4.ip_forward=1`,
        // Segment-sized packets on the veth (no TSO/GSO/GRO super-packets to drop 40 at a time).
        `ip netns exec ${k.name} ethtool -K pafk${process.pid % 10000} tso off gso off gro off`,
        `ip netns exec ${ns.name} ethtool -K pafr${process.pid % 10000} tso off gso off gro off`,
        `ip netns exec ${ns.name} nft add table inet paflossy`,
        `ip netns exec ${ns.name} nft add chain inet paflossy lossfw '{ type filter hook forward priority 0; }'`,
        // From paf: with TSO, paf's frames are 64 KB super-packets until the router's veth cuts
        // them, after the forward hook; drop at the kernel endpoint's input instead (segments).
        offload
          ? `ip netns exec ${k.name} nft add table inet paflossy && ip netns exec ${k.name} nft add chain inet paflossy lossin '{ type filter hook input priority 0; }' && ip netns exec ${k.name} nft add rule inet paflossy lossin iifname "pafk${process.pid % 10000}" numgen random mod 100 '<' 3 counter drop`
          : `ip netns exec ${ns.name} nft add rule inet paflossy lossfw iifname "${TAP}" numgen random mod 100 '<' 3 counter drop`,
        `ip netns exec ${ns.name} nft add rule inet paflossy lossfw oifname "${TAP}" numgen random mod 100 '<' 3 counter drop`,
      ].join(" && "),
    ]);
    const before = stack.stats().tcp!;
    const t0 = Date.now();
    const iv = process.env.PAF_DEBUG
      ? setInterval(
          () =>
            console.log(
              "LOSSY",
              Date.now() - t0,
              JSON.stringify(stack.stats().tcp),
              JSON.stringify(stack.tcp.layer.connections().map((t) => [t.state, t.sndUna - t.iss, t.sndNxt - t.iss, t.sndMax - t.iss, t.rcvNxt - t.irs, t.cc.cwnd, t.sndWnd, t.rtt.rto, t.ooo.bytes])),
            ),
          2000,
        )
      : undefined;
    onTestFinished(() => clearInterval(iv));
    // kernel -> paf upload (paf reassembles and SACKs), then paf <-> kernel both ways at once.
    const res = await peer(k, ["send", "198.18.0.2", "5001", String(20_000_000)], 120_000).result;
    expect(res.reply).toBe(res.sha);
    const p = peer(k, ["serve", "5006", String(20_000_000)]);
    await p.ready;
    const f = await stack.tcp.connect({ host: "198.18.1.2", port: 5006, allowHalfOpen: true });
    const [got, sent] = await Promise.all([readAll(f), randomUpload(f, 20_000_000)]);
    const r = await p.result;
    expect(r.got).toBe(sent);
    expect(got.sha).toBe(r.sent);
    const ms = Date.now() - t0;
    expect(ms).toBeLessThan(150_000);
    const after = stack.stats().tcp!;
    const d = (key: string) => (after[key] ?? 0) - (before[key] ?? 0);
    expect(d("ooo_queued")).toBeGreaterThan(0);
    expect(d("retransmitted_segments")).toBeGreaterThan(0);
    const counters = (await ns.exec("nft", ["list", "table", "inet", "paflossy"])).stdout + (offload ? (await k.exec("nft", ["list", "table", "inet", "paflossy"])).stdout : "");
    const dropped = [...counters.matchAll(/packets (\d+)/g)].map((m) => Number(m[1]));
    expect(dropped.length).toBe(2);
    expect(dropped.every((n) => n > 100)).toBe(true);
    console.log(
      `lossy${offload ? " (TSO)" : ""}: 3 x 20 MB in ${ms} ms; router dropped ${dropped.join(" / ")} packets (to paf / from paf); paf retransmitted ${d("retransmitted_segments")} segments (${d("fast_retransmits")} fast retransmits, ${d("rto_timeouts")} RTOs), queued ${d("ooo_queued")} out-of-order`,
    );
  } finally {
    await k.destroy();
  }
}

describe.skipIf(!run)("TCP with the Linux kernel as peer, over TAP", () => {
  let ns: Netns;
  let stack: Stack;
  let netif: TapNetif;
  const TAP = "paftt" + (process.pid % 10000);

  beforeAll(async () => {
    ns = await Netns.create("tcp");
    netif = TapNetif.open(TAP, { netns: ns.path, up: true });
    stack = Stack.create({ netif, ipv4: { address: "198.18.0.2/24", gateway: "198.18.0.1" }, ipv6: { address: "2001:db8::2/64" }, limits: { tcp: { keepAliveIntervalMs: 300, keepAliveProbes: 3 } } });
    await ns.kernelSide(TAP);
    await stack.ready();
    hashServer(stack, 5001);
  });
  afterAll(async () => {
    try {
      await stack?.close();
    } finally {
      await ns?.destroy();
    }
  });

  for (const host of ["198.18.0.2", "2001:db8::2"]) {
    it(`kernel client -> paf server: 20 MB upload checked by SHA-256, then the reply after half-close (${host})`, async () => {
      const r = await peer(ns, ["send", host, "5001", String(20_000_000)]).result;
      expect(r.reply).toBe(r.sha);
    });
  }

  for (const [host, local] of [
    ["198.18.0.1", "v4"],
    ["2001:db8::1", "v6"],
  ] as const) {
    it(`paf client -> kernel server: 20 MB each way at once, checked by SHA-256 (${local})`, async () => {
      const pool0 = netif.txBufferStats();
      const tx0 = netif.stats().txFrames;
      const p = peer(ns, ["serve", "5002", String(20_000_000)]);
      await p.ready;
      // Half-open allowed: the peer's FIN (its 20 MB done) must not end our upload still in progress.
      const f = await stack.tcp.connect({ host, port: 5002, allowHalfOpen: true });
      const [got, sent] = await Promise.all([readAll(f), randomUpload(f, 20_000_000)]);
      const r = await p.result;
      expect(got.bytes).toBe(20_000_000);
      expect(got.sha).toBe(r.sent);
      expect(r.got).toBe(sent);
      // Every frame sent came from the TAP's transmit buffers, nearly all of them used again
      // (so the intact data above crossed reused buffers).
      const pool = netif.txBufferStats();
      const reused = pool.reused - pool0.reused;
      expect(reused).toBeGreaterThan(0.9 * (netif.stats().txFrames - tx0));
      expect(pool.made - pool0.made).toBeLessThan(reused / 10);
    });
  }

  it("kernel -> paf without offloads: the segments a batch brings go up joined, fewer chunks than segments, intact (20 MB kept, hashed at the end)", async () => {
    // Hashed only at the end: a joined chunk or a single segment copied from a slot the TAP had
    // already read into again would show.
    const kept: Buffer[] = [];
    const server = keepingServer(stack, 5003, kept);
    const t0 = stack.stats().tcp ?? {};
    const r = await peer(ns, ["send", "198.18.0.2", "5003", String(20_000_000)]).result;
    server.close();
    expect(r.reply).toBe(r.sha);
    const t1 = stack.stats().tcp ?? {};
    const segs = (t1.rx_segments ?? 0) - (t0.rx_segments ?? 0);
    const joined = (t1.rx_coalesced ?? 0) - (t0.rx_coalesced ?? 0);
    // 20 MB in segments of at most 1,448 bytes: 13,800 or more. Each chunk handed up is one
    // segment, or several joined: as many chunks as segments less those joined to another.
    expect(segs).toBeGreaterThan(13_800);
    expect(kept.length).toBeLessThanOrEqual(segs - joined);
    console.log(`no offloads: ${segs} segments, ${joined} joined, ${kept.length} chunks`);
    expect(kept.length).toBeLessThan(segs / 2);
  });

  it("connecting to a closed port fails with ECONNREFUSED (RST answers the SYN)", async () => {
    await expect(stack.tcp.connect({ host: "198.18.0.1", port: 9 })).rejects.toMatchObject({ code: "ECONNREFUSED" });
    await expect(stack.tcp.connect({ host: "2001:db8::1", port: 9 })).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });

  it("the kernel connecting to a closed paf port gets RST (connection refused)", async () => {
    const r = await ns.exec("/usr/bin/python3", [
      "-c",
      "import socket\ntry:\n socket.create_connection(('198.18.0.2', 9), timeout=3)\n print('connected')\nexcept ConnectionRefusedError:\n print('refused')",
    ]);
    expect(r.stdout.trim()).toBe("refused");
  });

  it("a reset from the kernel surfaces as ECONNRESET", async () => {
    const p = peer(ns, ["serve", "5003", "0", "--rst"]);
    await p.ready;
    const f = await stack.tcp.connect({ host: "198.18.0.1", port: 5003 });
    const e = await new Promise<Error & { code?: string }>((resolve) => f.on("error", resolve));
    expect(e.code).toBe("ECONNRESET");
    await p.result;
  });

  it("zero window: a kernel peer that stops reading stalls the sender (window probes), then all data arrives", async () => {
    const p = peer(ns, ["slowread", "5004", "2"]);
    await p.ready;
    const f = await stack.tcp.connect({ host: "198.18.0.1", port: 5004 });
    const before = stack.stats().tcp!["window_probes"] ?? 0;
    const sent = await randomUpload(f, 4_000_000);
    const r = await p.result;
    expect(r.got).toBe(4_000_000);
    expect(r.sha).toBe(sent);
    expect((stack.stats().tcp!["window_probes"] ?? 0) - before).toBeGreaterThan(0);
  });

  it("keepalive detects a peer that disappeared (ETIMEDOUT)", async () => {
    const p = peer(ns, ["slowread", "5005", "30"]);
    await p.ready;
    const f = await stack.tcp.connect({ host: "198.18.0.1", port: 5005 });
    f.setKeepAlive(true, 300);
    // The peer vanishes: drop everything from it.
    await sh("bash", [
      "-c",
      `ip netns exec ${ns.name} nft add table inet pafka && ip netns exec ${ns.name} nft add chain inet pafka out '{ type filter hook output priority 0; }' && ip netns exec ${ns.name} nft add rule inet pafka out tcp sport 5005 drop`,
    ]);
    const e = await new Promise<Error & { code?: string }>((resolve) => f.on("error", resolve));
    expect(e.code).toBe("ETIMEDOUT");
    expect(stack.stats().tcp!["keepalive_probes"]).toBeGreaterThanOrEqual(3);
    await sh("bash", ["-c", `ip netns exec ${ns.name} nft delete table inet pafka`]);
    p.result.catch(() => undefined);
  });

  it("20 MB each way under 3% random loss both ways (nftables numgen on a router namespace) arrives intact", () => lossyTransfer(ns, stack, TAP, false), 180_000);
});

describe.skipIf(!run)("TCP with the kernel over a TAP with receive offloads (TUN_F_CSUM, TSO4/6)", () => {
  let ns: Netns;
  let stack: Stack;
  let netif: TapNetif;
  const TAP = "paftg" + (process.pid % 10000);

  beforeAll(async () => {
    ns = await Netns.create("tso");
    netif = TapNetif.open(TAP, { netns: ns.path, up: true, offload: true });
    stack = Stack.create({ netif, ipv4: { address: "198.18.0.2/24", gateway: "198.18.0.1" }, ipv6: { address: "2001:db8::2/64" }, limits: { tcp: { receiveBufferSize: 1 << 20 } } });
    await ns.kernelSide(TAP);
    await stack.ready();
    hashServer(stack, 5001);
  });
  afterAll(async () => {
    try {
      await stack?.close();
    } finally {
      await ns?.destroy();
    }
  });

  for (const host of ["198.18.0.2", "2001:db8::2"]) {
    it(`kernel -> paf: 20 MB arrive intact in TSO super-frames, unchecksummed by the kernel (${host})`, async () => {
      const before = stack.stats().tcp?.rx_segments ?? 0;
      const r = await peer(ns, ["send", host, "5001", String(20_000_000)]).result;
      expect(r.reply).toBe(r.sha);
      const segs = (stack.stats().tcp?.rx_segments ?? 0) - before;
      // 20 MB in 1448-byte segments would be ~13,800; super-frames carry many at once.
      expect(segs).toBeLessThan(5000);
      expect(stack.stats().tcp?.drop_bad_checksum ?? 0).toBe(0);
    });
  }

  it("kernel -> paf: super-frames' data goes up in the slots it was read into, never written again while kept (20 MB kept, hashed at the end)", async () => {
    // Hashed only at the end: a slot read into again after its frame was handed up would show.
    const kept: Buffer[] = [];
    const server = keepingServer(stack, 5002, kept);
    const adopted0 = netif.rxAdopted;
    const r = await peer(ns, ["send", "198.18.0.2", "5002", String(20_000_000)]).result;
    server.close();
    expect(r.reply).toBe(r.sha);
    // Most of it came in super-frames of 32 KB or more, each handed up without a copy.
    const adopted = netif.rxAdopted - adopted0;
    expect(adopted).toBeGreaterThan(100);
    const big = kept.filter((d) => d.length >= 32 * 1024);
    expect(big.length).toBeGreaterThan(100);
    // Each such chunk is a view of a buffer of its own (one slot), not of a shared slab.
    expect(new Set(big.map((d) => d.buffer)).size).toBe(big.length);
    expect(big.every((d) => d.buffer.byteLength < 2 * d.length + 4096)).toBe(true);
    // Past its frame a kept buffer holds zeros, not what the allocator had there.
    expect(big.every((d) => new Uint8Array(d.buffer, d.byteOffset + d.length).every((b) => b === 0))).toBe(true);
  });

  it("paf -> kernel and back at once (v4): 20 MB each way intact", async () => {
    const pool0 = netif.txBufferStats();
    const tx0 = netif.stats().txFrames;
    const p = peer(ns, ["serve", "5002", String(20_000_000)]);
    await p.ready;
    const f = await stack.tcp.connect({ host: "198.18.0.1", port: 5002, allowHalfOpen: true });
    const [got, sent] = await Promise.all([readAll(f), randomUpload(f, 20_000_000)]);
    const r = await p.result;
    expect(got.sha).toBe(r.sent);
    expect(r.got).toBe(sent);
    // paf sent super-segments (TSO): far fewer frames than 20 MB / 1448.
    expect(stack.stats().tcp?.tx_segments ?? 0).toBeLessThan(6000);
    // The super-segments (and the ACKs) went out in reused transmit buffers.
    const pool = netif.txBufferStats();
    expect(pool.reused - pool0.reused).toBeGreaterThan(0.9 * (netif.stats().txFrames - tx0));
    expect(pool.made - pool0.made).toBeLessThan((pool.reused - pool0.reused) / 10);
  });

  it("20 MB each way under 3% random loss, paf sending TSO super-segments cut by the kernel, arrives intact", () => lossyTransfer(ns, stack, TAP, true), 180_000);
});
