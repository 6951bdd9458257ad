// TCP bulk throughput: kernel -> paf and paf -> kernel over TAP, next to kernel -> kernel over
// veth, with the same load tool (udpbench tcpsend / tcpsink) in the same run.
import { Stack } from "../../dist/stack/stack.js";
import { TapNetif } from "../../dist/stack/netif/tap.js";
import { V8_FLAGS, netns, vethPair, nsRun, sh, udpbench, sleep, sendBytes, receiverIn, ROOT } from "./lib.mjs";
import { allocMeter } from "./alloc.mjs";
import { spawn } from "node:child_process";
import { join } from "node:path";

// 2 GB a transfer (1-3 s each here): 300 MB (0.2-0.5 s) measured mostly the slow start and the
// JIT's warm-up (kernel -> stack with a Reno sender: 8.5 Gbit/s at 300 MB, 15.6 at 2 GB).
const BYTES = Number(process.env.PAF_BENCH_TCP_BYTES ?? 2_000_000_000);
/** The transfers whose allocation is measured (apart from the timed ones). */
const ALLOC_BYTES = 300_000_000;
/** Untimed transfers of ALLOC_BYTES before the timed kernel -> stack one (see benchTcp). */
const WARM_UPS = 3;

/** The kernel's discarding receiver (udpbench tcpsink) on `port` in `ns`. */
const sinkIn = (ns, bin, port) => receiverIn(ns, [bin, "tcpsink", String(port), "60"]);

/**
 * JS heap allocated by this process (the stack) per MB of a bulk transfer each way, and per TCP
 * segment, measured on transfers of their own (the meter's bookkeeping stays out of the timed ones).
 */
async function pafAlloc(stack, ns, bin) {
  const seg = () => stack.stats().tcp;
  const rx0 = seg().rx_segments ?? 0;
  let m = allocMeter();
  await nsRun(ns, bin, ["tcpsend", "198.18.0.2", "9", String(ALLOC_BYTES)]);
  const rx = m.stop().heap;
  const rxSegments = (seg().rx_segments ?? 0) - rx0;
  const sink = sinkIn(ns, bin, 5003);
  await sink.isReady;
  const tx0 = seg().tx_segments ?? 0;
  m = allocMeter();
  await sendBytes(stack, "198.18.0.1", 5003, ALLOC_BYTES);
  const tx = m.stop().heap;
  const txSegments = (seg().tx_segments ?? 0) - tx0;
  await sink.done;
  const mb = ALLOC_BYTES / 1e6;
  return { rxKBperMB: rx / 1000 / mb, txKBperMB: tx / 1000 / mb, rxSegments, txSegments, rxPerSegment: rx / rxSegments, txPerSegment: tx / txSegments };
}

/** The same measure of Node's own sockets on kernel TCP: a node:net receiver in B, then a sender in A. */
async function nodeAlloc(A, B, bin) {
  const script = join(ROOT, "scripts", "bench", "node-tcp.mjs");
  const recv = receiverIn(B, [process.execPath, ...V8_FLAGS, script, "sink", "198.18.1.2", "5003"]);
  await recv.isReady;
  await nsRun(A, bin, ["tcpsend", "198.18.1.2", "5003", String(ALLOC_BYTES)]);
  const rx = await recv.done;
  const sink = sinkIn(B, bin, 5004);
  await sink.isReady;
  const tx = await nsRun(A, process.execPath, [...V8_FLAGS, script, "send", "198.18.1.2", "5004", String(ALLOC_BYTES)]);
  await sink.done;
  const mb = ALLOC_BYTES / 1e6;
  return { rxKBperMB: rx.heap / 1000 / mb, txKBperMB: tx.heap / 1000 / mb };
}

export async function benchTcp() {
  const bin = udpbench();
  const rows = [];
  const ns = await netns("t");
  const tap = "pafbt";
  const netif = TapNetif.open(tap, { netns: `/var/run/netns/${ns}`, up: true, offload: true });
  // Default limits: the buffers autotune from 256 KiB to 4 MiB.
  const stack = Stack.create({ netif, ipv4: { address: "198.18.0.2/24" } });
  await sh("ip", ["-n", ns, "addr", "add", "198.18.0.1/24", "dev", tap]);
  // kernel -> paf: paf discards.
  stack.tcp.listen({ port: 9 }, (f) => f.resume().on("end", () => f.end()));
  await sleep(200);
  // Transfers of their own first, untimed, so the timed one measures the path, not V8's warm-up
  // (the cold start has rows of its own in the HTTP bench). Three: with one (300 MB), V8 still
  // compiled 70-77 functions during the timed 2 GB (node --trace-opt; the first optimization of
  // the TAP's batch handler among them, the receive path's deoptimized at the warm-up's close)
  // and its compiler and GC threads took 0.20-0.24 s of CPU there (13.3-13.9 Gbit/s); after
  // three, 7-16 and 0.04 s (15.4-15.9 Gbit/s). Their rates are printed below.
  const warm = [];
  for (let i = 0; i < WARM_UPS; i++) warm.push(await nsRun(ns, bin, ["tcpsend", "198.18.0.2", "9", String(ALLOC_BYTES)]));
  const up = await nsRun(ns, bin, ["tcpsend", "198.18.0.2", "9", String(BYTES)]);
  // The same with a Reno sender. The machine's default, BBR, paces: towards the TAP it arms a
  // pacing timer for nearly every segment (73 k per 3 GB, against 28 k over veth, where the ACKs
  // the kernel handles in bursts read as 20-260 Gbit/s of bandwidth and the pacing seldom holds),
  // and its own CPU sets the rate; the `cpu` figures printed below show it (README, "Why a BBR
  // sender is slower towards a TAP").
  const upReno = await nsRun(ns, "env", ["UDPBENCH_CC=reno", bin, "tcpsend", "198.18.0.2", "9", String(BYTES)]);
  // paf -> kernel: the kernel discards. A transfer of its own first, untimed (the send path).
  const warmSink = sinkIn(ns, bin, 5000);
  await warmSink.isReady;
  await sendBytes(stack, "198.18.0.1", 5000, ALLOC_BYTES);
  const warmDown = await warmSink.done;
  const sink = sinkIn(ns, bin, 5001);
  await sink.isReady;
  await sendBytes(stack, "198.18.0.1", 5001, BYTES);
  const down = await sink.done;
  const alloc = await pafAlloc(stack, ns, bin);
  await stack.close();
  // kernel -> kernel over veth.
  const { A, B } = await vethPair("t");
  const ksink = sinkIn(B, bin, 5001);
  await ksink.isReady;
  const kkSend = await nsRun(A, bin, ["tcpsend", "198.18.1.2", "5001", String(BYTES)]);
  const kk = await ksink.done;
  const ksinkReno = sinkIn(B, bin, 5002);
  await ksinkReno.isReady;
  const kkRenoSend = await nsRun(A, "env", ["UDPBENCH_CC=reno", bin, "tcpsend", "198.18.1.2", "5002", String(BYTES)]);
  const kkReno = await ksinkReno.done;
  // The strongest kernel baseline: iperf3 between the same two namespaces.
  const server = spawn("ip", ["netns", "exec", B, "iperf3", "-s", "-1", "-p", "5201"], { stdio: "ignore" });
  await sleep(300);
  const ip3 = await nsRun(A, "iperf3", ["-c", "198.18.1.2", "-p", "5201", "-n", String(BYTES), "-J"]);
  server.kill();
  const kalloc = await nodeAlloc(A, B, bin);
  const ip3j = typeof ip3 === "string" ? JSON.parse(ip3) : ip3;
  const iperf = ip3j?.end?.sum_received?.bits_per_second / 1e9;
  const kernel = Math.max(kk.gbps, iperf || 0);
  rows.push({ name: "TCP bulk, kernel -> stack (Gbit/s; kernel: the best of tcpsend and iperf3 over veth)", paf: up.gbps, kernel });
  rows.push({ name: "TCP bulk, kernel -> stack, Reno sender (Gbit/s; kernel: tcpsend with Reno over veth)", paf: upReno.gbps, kernel: kkReno.gbps });
  rows.push({ name: "TCP bulk, stack -> kernel (Gbit/s)", paf: down.gbps, kernel });
  rows.push({
    name: `JS heap allocated per MB received, KB (TCP bulk kernel -> stack, ${ALLOC_BYTES / 1e6} MB; kernel: a node:net server receiving over veth)`,
    paf: alloc.rxKBperMB,
    kernel: kalloc.rxKBperMB,
    lowerIsBetter: true,
  });
  rows.push({
    name: `JS heap allocated per MB sent, KB (TCP bulk stack -> kernel, ${ALLOC_BYTES / 1e6} MB; kernel: a node:net client sending over veth)`,
    paf: alloc.txKBperMB,
    kernel: kalloc.txKBperMB,
    lowerIsBetter: true,
  });
  console.log(
    `(JS heap per TCP segment on paf: ${alloc.rxPerSegment.toFixed(0)} bytes per segment received (${alloc.rxSegments} segments, ${(ALLOC_BYTES / alloc.rxSegments / 1000).toFixed(1)} KB each: the kernel's TSO super-frames), ${alloc.txPerSegment.toFixed(0)} bytes per segment sent (${alloc.txSegments}, ${(ALLOC_BYTES / alloc.txSegments / 1000).toFixed(1)} KB each))`,
  );
  console.log(`(kernel over veth: tcpsend ${kk.gbps.toFixed(2)} Gbit/s, iperf3 ${iperf?.toFixed(2)} Gbit/s, tcpsend with Reno ${kkReno.gbps.toFixed(2)} Gbit/s)`);
  console.log(
    `(the untimed transfers first, ${ALLOC_BYTES / 1e6} MB each: kernel -> stack ${warm.map((w) => w.gbps.toFixed(2)).join(" / ")} Gbit/s, stack -> kernel ${warmDown.gbps.toFixed(2)} Gbit/s)`,
  );
  const perGB = (r) => (r.cpu / (BYTES / 1e9)).toFixed(2);
  console.log(
    `(the sender's CPU, s per GB: BBR into paf ${perGB(up)}, over veth ${perGB(kkSend)} (there it also runs the receiver's TCP); Reno into paf ${perGB(upReno)}, over veth ${perGB(kkRenoSend)})`,
  );
  return rows;
}
