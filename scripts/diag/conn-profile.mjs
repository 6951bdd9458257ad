// New TCP connections on paf over a TAP, alone (the paf half of scripts/bench/conn.mjs), to
// profile: node --cpu-prof --cpu-prof-dir=DIR scripts/diag/conn-profile.mjs [seconds] [in flight]
// PAF_HEAPPROF=FILE: a sampling profile of everything allocated meanwhile (what the GC collects).
import { Stack } from "../../dist/stack/stack.js";
import { TapNetif } from "../../dist/stack/netif/tap.js";
import { netns, nsRun, sh, udpbench, sleep, cleanup } from "../bench/lib.mjs";

const SECS = Number(process.argv[2] ?? 3);
const CONC = Number(process.argv[3] ?? 64);
try {
  const bin = udpbench();
  const ns = await netns("cp");
  const tap = "pafcp";
  const stack = Stack.create({ netif: TapNetif.open(tap, { netns: `/var/run/netns/${ns}`, up: true, offload: true }), ipv4: { address: "198.18.0.2/24" } });
  stack.tcp.listen({ port: 80 }, (f) => f.on("error", () => {}).end());
  await sh("ip", ["-n", ns, "addr", "add", "198.18.0.1/24", "dev", tap]);
  await sleep(200);
  const heap = process.env.PAF_HEAPPROF;
  let session;
  if (heap) {
    const { Session } = await import("node:inspector/promises");
    session = new Session();
    session.connect();
    await session.post("HeapProfiler.enable");
    await session.post("HeapProfiler.startSampling", { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  }
  const r = await nsRun(ns, bin, ["tcpconnect", "198.18.0.2", "80", String(SECS), String(CONC)]);
  if (session) {
    const { writeFileSync } = await import("node:fs");
    const { profile } = await session.post("HeapProfiler.stopSampling");
    writeFileSync(heap, JSON.stringify(profile));
  }
  console.log(JSON.stringify({ ...r, tcp: stack.stats().tcp }));
  await stack.close();
} finally {
  cleanup();
}
