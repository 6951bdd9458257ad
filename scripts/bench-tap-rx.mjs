#!/usr/bin/env node
// Frames/s that TapNetif hands to JavaScript, with the kernel as the sender.
//
// Build first (plain JS over the compiled tree, so it runs on Node 20 without a TS loader):
//   npx node-gyp rebuild && npx tsc -p tsconfig.json
// Run (root: it creates a namespace paf-b..., deleted at the end, also on failure or Ctrl-C):
//   node scripts/bench-tap-rx.mjs [--mode rx|reflect|echo] [--batch 64] [--flush microtask|immediate]
//                                 [--seconds 3] [--size 1400] [--vnet] [--window 256]
//
// Modes:
//   rx       the kernel floods 198.18.0.2 with UDP (scripts/bench/udpbench.c, sendmmsg, 64 per call;
//            iperf3 cannot be the sender: even with -u it needs a TCP control connection to a server
//            at 198.18.0.2, and here there is no TCP, only a raw TAP); we count the frames.
//   reflect  the same flood, and every frame is copied, turned around and sent back to a udpbench
//            sink in the namespace: receive + transmit frames/s, and how many the kernel got.
//   echo     udpbench echo keeps --window datagrams in flight to 198.18.0.2 and we turn each one
//            around: round trips/s, which is where the flush strategy and batch size show.
// The kernel side has a permanent neighbour entry for 198.18.0.2, so no ARP is involved.
// Prints a human line and, last, one JSON line.
import { parseArgs } from "node:util";
import { TapNetif } from "../dist/stack/netif/tap.js";
import { netns, nsRun, sh, udpbench, sleep, cleanup } from "./bench/lib.mjs";

const { values } = parseArgs({
  options: {
    mode: { type: "string", default: "rx" },
    batch: { type: "string", default: "64" },
    flush: { type: "string", default: "microtask" },
    seconds: { type: "string", default: "3" },
    size: { type: "string", default: "1400" },
    window: { type: "string", default: "256" },
    vnet: { type: "boolean", default: false },
  },
});
const mode = values.mode;
const batch = Number(values.batch);
const secs = Math.min(Number(values.seconds), 30); // bounded whatever is asked
const size = Number(values.size);
if (!["rx", "reflect", "echo"].includes(mode)) throw new Error(`--mode rx|reflect|echo, not ${mode}`);
if (!["microtask", "immediate"].includes(values.flush)) throw new Error("--flush microtask|immediate");

const MAC = "02:00:00:00:00:02";
const SINK_PORT = 9001;

async function main() {
  const bin = udpbench();
  const ns = await netns("rx");
  const tapName = `pafbrx${process.pid % 10000}`;
  const netif = TapNetif.open(tapName, { netns: `/var/run/netns/${ns}`, up: true, batch, flush: values.flush, vnetHdr: values.vnet });
  try {
    await sh("ip", ["-n", ns, "addr", "add", "198.18.0.1/24", "dev", tapName]);
    await sh("ip", ["-n", ns, "neigh", "replace", "198.18.0.2", "lladdr", MAC, "dev", tapName, "nud", "permanent"]);
    await sleep(200); // let IPv6 autoconfiguration chatter pass

    let frames = 0;
    let bytes = 0;
    let batches = 0;
    let sendRefused = 0;
    const turnAround = (f, toSink) => {
      // Swap MACs, IPv4 addresses and (for echo) ports: every checksum stays valid. For the sink,
      // aim at its port and drop the (optional in IPv4) UDP checksum instead.
      const o = Uint8Array.prototype.slice.call(f); // the netif owns what we send: copy
      o.set(f.subarray(6, 12), 0);
      o.set(f.subarray(0, 6), 6);
      o.set(f.subarray(30, 34), 26);
      o.set(f.subarray(26, 30), 30);
      if (toSink) {
        o[36] = SINK_PORT >> 8;
        o[37] = SINK_PORT & 0xff;
        o[40] = o[41] = 0;
      } else {
        o.set(f.subarray(36, 38), 34);
        o.set(f.subarray(34, 36), 36);
      }
      if (!netif.send(o)) sendRefused++;
    };
    const isUdp4 = (f) => f.length >= 42 && f[12] === 0x08 && f[13] === 0x00 && f[23] === 17;
    netif.start({
      frame(f) {
        frames++;
        bytes += f.length;
        if (mode !== "rx" && isUdp4(f)) turnAround(f, mode === "reflect");
      },
      batchEnd() {
        batches++;
      },
    });

    let gen;
    let sink;
    const t0 = process.hrtime.bigint();
    const cpu0 = process.cpuUsage();
    if (mode === "echo") {
      gen = await nsRun(ns, bin, ["echo", "198.18.0.2", "7", String(size), String(secs), values.window], (secs + 20) * 1000);
    } else {
      const sinkP = mode === "reflect" ? nsRun(ns, bin, ["sink", String(SINK_PORT), String(secs + 1)], (secs + 20) * 1000) : undefined;
      gen = await nsRun(ns, bin, ["flood", "198.18.0.2", "9", String(size), String(secs)], (secs + 20) * 1000);
      await sleep(100); // what is still queued in the TAP
      sink = await sinkP;
    }
    const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    const link = JSON.parse(await sh("ip", ["-n", ns, "-s", "-j", "link", "show", tapName]))[0];
    const st = netif.stats();
    const seconds = gen.seconds;
    const result = {
      bench: "tap-rx",
      mode,
      batch,
      flush: values.flush,
      vnetHdr: values.vnet,
      payload: size,
      seconds,
      rxFrames: st.rxFrames,
      rxFramesPerSec: Math.round(frames / seconds),
      rxGbitPerSec: +((bytes * 8) / seconds / 1e9).toFixed(3),
      framesPerBatch: +(frames / Math.max(1, batches)).toFixed(1),
      kernelSent: gen.sent,
      kernelSentPerSec: gen.pps ?? Math.round(gen.sent / seconds),
      // Frames the kernel had to drop because we did not read fast enough (TAP queue full).
      kernelTapTxDropped: link.stats64?.tx?.dropped ?? null,
      txFrames: st.txFrames,
      txDropped: st.txDropped + sendRefused,
      ...(mode === "reflect" ? { txFramesPerSec: Math.round(st.txFrames / seconds), sinkReceived: sink.received } : {}),
      ...(mode === "echo" ? { roundTripsPerSec: gen.rtps, window: gen.window } : {}),
      // CPU this process spent (user+sys) over the run, and what that suggests we could take if
      // the sender were faster: with 2 cores the sender and we share the machine.
      cpuSeconds: +cpuSeconds.toFixed(2),
      cpuUserSeconds: +(cpu.user / 1e6).toFixed(2),
      framesPerCpuSecond: Math.round(frames / cpuSeconds),
      wallSeconds: +elapsed.toFixed(2),
    };
    const extra =
      mode === "echo" ? `, ${result.roundTripsPerSec} round trips/s (window ${result.window})` : mode === "reflect" ? `, ${result.txFramesPerSec} tx frames/s, sink got ${sink.received}` : "";
    console.log(
      `TapNetif ${mode}: ${result.rxFramesPerSec} frames/s, ${result.rxGbitPerSec} Gbit/s (batch ${batch}, flush ${values.flush}, ${result.framesPerBatch} frames per batch; kernel sent ${result.kernelSentPerSec}/s, TAP queue drops ${result.kernelTapTxDropped}; ${result.cpuSeconds} CPU s (${result.cpuUserSeconds} user) = ${result.framesPerCpuSecond} frames per CPU second)${extra}`,
    );
    console.log(JSON.stringify(result));
  } finally {
    await netif.close();
    cleanup();
  }
}

main().catch((e) => {
  console.error(e);
  cleanup();
  process.exit(1);
});
