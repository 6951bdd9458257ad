// UDP figures: datagrams/s the stack receives from the kernel over TAP, raw TAP frames/s, and
// echo round trips/s; each next to the kernel's own figure over veth, measured in this run.
import { Stack } from "../../dist/stack/stack.js";
import { TapNetif } from "../../dist/stack/netif/tap.js";
import { netns, vethPair, nsRun, sh, udpbench, sleep } from "./lib.mjs";

const SECS = 3;

async function tapNs(tag) {
  const ns = await netns(tag);
  const tap = "pafb" + tag;
  // PAF_BENCH_USO=0: without the TAP's UDP segmentation (to see what it does to the echo and send rows).
  const netif = TapNetif.open(tap, { netns: `/var/run/netns/${ns}`, up: true, offload: true, udpSegmentation: process.env.PAF_BENCH_USO !== "0" });
  return { ns, tap, netif };
}

async function kernelSide(ns, tap, mac) {
  await sh("ip", ["-n", ns, "addr", "add", "198.18.0.1/24", "dev", tap]);
  // A permanent neighbour entry: the flood measures datagrams, not ARP.
  if (mac) await sh("ip", ["-n", ns, "neigh", "replace", "198.18.0.2", "lladdr", mac, "dev", tap, "nud", "permanent"]);
}

const macText = (m) => [...m].map((b) => b.toString(16).padStart(2, "0")).join(":");

export async function benchUdp() {
  const bin = udpbench();
  const rows = [];

  // 1. Raw TAP receive: frames/s delivered to JavaScript, no protocol processing.
  {
    const { ns, tap, netif } = await tapNs("r");
    let frames = 0;
    netif.start({ frame: () => frames++ });
    await kernelSide(ns, tap, "02:00:00:00:00:02");
    const r = await nsRun(ns, bin, ["flood", "198.18.0.2", "9", "1400", String(SECS)]);
    await sleep(100);
    rows.push({ name: "TAP receive, 1400-byte UDP payloads (frames/s)", paf: frames / r.seconds, sent: r.pps });
    await netif.close();
  }

  // 2. The stack: datagrams/s delivered to a UDP socket.
  let kernelSink;
  {
    const { ns, tap, netif } = await tapNs("u");
    const stack = Stack.create({ netif, ipv4: { address: "198.18.0.2/24" } });
    let got = 0;
    let first = 0;
    let last = 0;
    const s = stack.udp.createSocket("udp4");
    s.on("message", () => {
      if (got++ === 0) first = performance.now();
      last = performance.now();
    });
    s.bind(9);
    await kernelSide(ns, tap, macText(stack.mac));
    const r = await nsRun(ns, bin, ["flood", "198.18.0.2", "9", "1400", String(SECS)]);
    await sleep(100);
    const pps = got / ((last - first) / 1000 || 1);
    // Kernel reference: the same sender to a recvmmsg sink over veth.
    const { A, B } = await vethPair("k");
    const sink = nsRun(B, bin, ["sink", "9", String(SECS + 2)]);
    await sleep(300);
    await nsRun(A, bin, ["flood", "198.18.1.2", "9", "1400", String(SECS)]);
    kernelSink = await sink;
    rows.push({ name: "UDP datagrams/s received (1400-byte payloads)", paf: pps, kernel: kernelSink.pps, sent: r.pps, drops: stack.stats().netif });

    // 3. Echo round trips/s: window 1 (latency bound) and 32 in flight.
    for (const t of ["udp4"]) {
      const e = stack.udp.createSocket(t);
      e.on("message", (m, ri) => e.send(m, ri.port, ri.address));
      e.bind(7);
    }
    const server = nsRun(B, bin, ["server", "7", String(4 * SECS + 3)]);
    await sleep(300);
    for (const w of [1, 32]) {
      const p = await nsRun(ns, bin, ["echo", "198.18.0.2", "7", "64", String(SECS), String(w)]);
      const k = await nsRun(A, bin, ["echo", "198.18.1.2", "7", "64", String(SECS), String(w)]);
      rows.push({ name: `UDP echo round trips/s, 64 bytes, ${w} in flight`, paf: p.rtps, kernel: k.rtps });
    }
    await server;

    // 4. The stack sends: datagrams/s a kernel recvmmsg sink takes from paf over the TAP (with
    // the TAP's UDP segmentation, runs of datagrams leave in one write), next to the kernel's
    // own sender over veth into the same kind of sink (row 2's kernel column). Bounded: SECS
    // seconds, bursts of 64 with a turn of the event loop between them.
    const txSink = nsRun(ns, bin, ["sink", "9", String(SECS + 2)]);
    await sleep(300);
    const tx = stack.udp.createSocket("udp4");
    tx.bind(0);
    const payload = Buffer.alloc(1400, 0x61);
    const endAt = performance.now() + SECS * 1000;
    let sent = 0;
    await new Promise((resolve) => {
      const burst = () => {
        for (let i = 0; i < 64; i++, sent++) tx.send(payload, 9, "198.18.0.1");
        if (performance.now() < endAt) setImmediate(burst);
        else resolve();
      };
      burst();
    });
    const taken = await txSink;
    rows.push({ name: "UDP datagrams/s sent to a kernel socket (1400-byte payloads; kernel: its own sender over veth)", paf: taken.pps, kernel: kernelSink.pps, sent: Math.round(sent / SECS) });
    await stack.close();
  }
  return rows;
}
