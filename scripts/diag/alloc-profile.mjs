// Where paf allocates on its hot paths, between the kernel and a stack on a TAP in a throwaway
// namespace, with V8's sampling heap profiler on (collected objects included): the top allocation
// sites (three frames each), and the exact JS heap total (alloc.mjs).
//
//   node scripts/diag/alloc-profile.mjs bulk [MB] [rows]   one TCP transfer each way: per MB, per segment
//   node scripts/diag/alloc-profile.mjs http [SECS] [rows] demoApp on the stack under wrk -c64: per request
//
// Root; the namespace is removed at the end, also on failure.
// PAF_HEAPPROF_DIR=dir also writes rx.heapprofile and tx.heapprofile there (Chrome DevTools).
import { join } from "node:path";
import { Stack } from "../../dist/stack/stack.js";
import { TapNetif } from "../../dist/stack/netif/tap.js";
import { serve, stackListener, httpService, demoApp } from "../../dist/index.js";
import { netns, nsRun, sh, udpbench, sleep, sendBytes, cleanup, receiverIn, wrkRequests } from "../bench/lib.mjs";
import { allocMeter } from "../bench/alloc.mjs";
import { profilePhase } from "../bench/inspect.mjs";

const [mode = "bulk", amount, rows] = process.argv.slice(2);
if (mode !== "bulk" && mode !== "http") throw new Error(`usage: alloc-profile.mjs bulk [MB] [rows] | http [SECONDS] [rows] (got ${mode})`);
const MB = mode === "bulk" ? Number(amount ?? 300) : 0;
const SECS = mode === "http" ? Number(amount ?? 3) : 0;
const ROWS = Number(rows ?? 15);
if (mode === "bulk" && !(MB > 0 && MB <= 10_000)) throw new Error(`MB: 1-10000 (got ${amount})`);
if (mode === "http" && !(SECS > 0 && SECS <= 60)) throw new Error(`SECONDS: 1-60 (got ${amount})`);
const BYTES = MB * 1e6;

async function phase(name, run, per = MB, unit = "MB") {
  const dir = process.env.PAF_HEAPPROF_DIR;
  const stop = await profilePhase({ heap: dir ? join(dir, `${name}.heapprofile`) : true, young: true, samplingInterval: 1024 });
  const m = allocMeter();
  const { extra, count = per } = await run();
  const { heap } = m.stop();
  const profile = await stop();
  const sites = new Map();
  let sampled = 0;
  const walk = (n, path) => {
    const f = n.callFrame;
    const here = `${f.functionName || "(anon)"} ${f.url.split("/").slice(-2).join("/")}:${f.lineNumber + 1}`;
    const p = [here, ...path].slice(0, 3);
    if (n.selfSize) {
      const k = p.join(" < ");
      sites.set(k, (sites.get(k) ?? 0) + n.selfSize);
      sampled += n.selfSize;
    }
    for (const c of n.children) walk(c, p);
  };
  walk(profile.head, []);
  console.log(`${name}: ${(heap / count).toFixed(0)} bytes of JS heap per ${unit} (${heap} bytes, ${count} ${unit}s; ${extra})`);
  for (const [k, b] of [...sites].sort((a, b) => b[1] - a[1]).slice(0, ROWS)) console.log(`  ${((b / sampled) * 100).toFixed(1).padStart(5)} %  ${k}`);
}

const bin = udpbench();
const ns = await netns("a");
try {
  const netif = TapNetif.open("pafba", { netns: `/var/run/netns/${ns}`, up: true, offload: true });
  const stack = Stack.create({ netif, ipv4: { address: "198.18.0.2/24" } });
  await sh("ip", ["-n", ns, "addr", "add", "198.18.0.1/24", "dev", "pafba"]);
  if (mode === "http") await http(stack);
  else await bulk(stack);
  await stack.close();
} finally {
  cleanup();
}
process.exit(0);

async function http(stack) {
  serve(httpService(demoApp()), stackListener(stack, { port: 80 }));
  await sleep(200);
  const wrk = (secs) => nsRun(ns, "wrk", ["-t2", "-c64", `-d${secs}s`, "http://198.18.0.2/"]);
  await wrk(2); // warm-up: JIT, 64 connections open
  await phase(
    "http",
    async () => {
      return { extra: "wrk -t2 -c64, demoApp GET /", count: wrkRequests(await wrk(SECS)) };
    },
    0,
    "request",
  );
}

async function bulk(stack) {
  stack.tcp.listen({ port: 9 }, (f) => f.resume().on("end", () => f.end()));
  await sleep(200);
  const segs = () => stack.stats().tcp;
  // Warm up (JIT), not measured.
  await nsRun(ns, bin, ["tcpsend", "198.18.0.2", "9", String(100e6)]);
  await phase("rx", async () => {
    const s0 = segs().rx_segments ?? 0;
    await nsRun(ns, bin, ["tcpsend", "198.18.0.2", "9", String(BYTES)]);
    const n = (segs().rx_segments ?? 0) - s0;
    return { extra: `${n} segments received, ${(BYTES / n / 1000).toFixed(1)} KB each` };
  });
  const sink = receiverIn(ns, [bin, "tcpsink", "5001", "60"]);
  await sink.isReady;
  await phase("tx", async () => {
    const s0 = segs().tx_segments ?? 0;
    await sendBytes(stack, "198.18.0.1", 5001, BYTES);
    const n = (segs().tx_segments ?? 0) - s0;
    return { extra: `${n} segments sent, ${(BYTES / n / 1000).toFixed(1)} KB each` };
  });
  await sink.done;
}
