// Issue 15 diagnostics: where tenant 1's slow requests spend their time while tenant 0 is
// flooded. The noisy-neighbour bench's setup (scripts/bench/noisy.mjs: `paf serve --tenants`,
// two TAPs in two namespaces, tenant 0 with NOISY_LIMITS), with three records of the same
// seconds: a capture on tenant 1's TAP (each request's server time, on the wire), the server's
// event-loop timeline (timeline.mjs preload: TAP batches per tenant, scheduler turns, GC
// pauses) and, if perf is there, the kernel's sched_switch events of the server's main thread
// (when it was off its CPU: preempted "offR", or asleep "offS", which includes the wait for a
// CPU after its wake-up). noisy-trace.py lays them over each other for the slowest 2 %.
//
//   node scripts/diag/noisy-trace.mjs [--flood http|udp|none] [--seconds 3] [--cpu-us 500] [--cpu-pct 20] [--dir DIR] [--examples N]
//
// The capture and perf load the 2 cores too: compare floods with each other here, and take
// latency figures from the bench. Needs root; its namespaces are removed at exit.
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ROOT, nsRun, serveHandle, sh, sleep, track, cleanup, udpbench } from "../bench/lib.mjs";
import { NOISY_LIMITS, latency, tenantTaps } from "../bench/noisy.mjs";

const { values } = parseArgs({
  options: {
    flood: { type: "string", default: "http" },
    seconds: { type: "string", default: "3" },
    "cpu-us": { type: "string", default: String(NOISY_LIMITS.tenant.cpuPerTurnUs) },
    "cpu-pct": { type: "string", default: String(NOISY_LIMITS.tenant.cpuPercent) },
    dir: { type: "string", default: "/tmp/paf-noisy-trace" },
    examples: { type: "string", default: "4" },
  },
});
if (!["http", "udp", "none"].includes(values.flood)) throw new Error(`--flood: http, udp or none, not ${values.flood}`);
const SECONDS = Math.min(20, Math.max(1, Number(values.seconds)));
const DIR = values.dir;
mkdirSync(DIR, { recursive: true });
const CLI = join(ROOT, "dist", "cli", "main.js");
const has = async (cmd) => (await sh("bash", ["-c", `command -v ${cmd} || true`])).trim() !== "";

try {
  const limits = { ...NOISY_LIMITS, tenant: { ...NOISY_LIMITS.tenant, cpuPerTurnUs: Number(values["cpu-us"]), cpuPercent: Number(values["cpu-pct"]) } };
  const { ns0, ns1, taps, cfg } = await tenantTaps(DIR, limits);
  const timeline = join(DIR, "timeline.json");
  const paf = serveHandle(
    track(
      spawn(process.execPath, ["--import", join(ROOT, "scripts", "diag", "timeline.mjs"), CLI, "serve", "--tenants", cfg], {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, PAF_TIMELINE_OUT: timeline },
      }),
    ),
  );
  await paf.ready;
  const pid = paf.child.pid;
  await latency(ns1, 1); // warm up
  const floodSecs = SECONDS + 3;
  const flood =
    values.flood === "http"
      ? nsRun(ns0, "wrk", ["-t1", "-c64", `-d${floodSecs}s`, "http://198.18.0.2/"], (floodSecs + 30) * 1000)
      : values.flood === "udp"
        ? nsRun(ns0, udpbench(), ["flood", "198.18.0.2", "9", "64", String(floodSecs), "240000"], (floodSecs + 30) * 1000)
        : Promise.resolve();
  await sleep(500);
  const pcap = join(DIR, "t1.pcap");
  const dump = track(spawn("ip", ["netns", "exec", ns1, "tcpdump", "-i", taps[1], "-w", pcap, "-s", "128", "--time-stamp-precision=nano", "tcp port 80"], { stdio: "ignore" }));
  await sleep(500);
  const perfData = join(DIR, "sched.data");
  const perf = (await has("perf"))
    ? track(
        spawn(
          "perf",
          ["record", "-a", "-k", "CLOCK_MONOTONIC", "-e", "sched:sched_switch", "--filter", `prev_pid == ${pid} || next_pid == ${pid}`, "-o", perfData, "--", "sleep", String(SECONDS + 0.3)],
          {
            stdio: "ignore",
          },
        ),
      )
    : undefined;
  paf.child.kill("SIGUSR2");
  const lat = await latency(ns1, SECONDS);
  paf.child.kill("SIGUSR2");
  if (perf) await new Promise((r) => (perf.exitCode !== null ? r() : perf.on("exit", r)));
  await sleep(300);
  dump.kill("SIGINT");
  await flood;
  await paf.stop();
  const args = [join(ROOT, "scripts", "diag", "noisy-trace.py"), pcap, timeline, "--examples", values.examples];
  if (perf) args.push("--sched", perfData, "--pid", String(pid));
  process.stdout.write(`tenant 1 (paf bench, 1 client): p50 ${lat.p50} ms, p99 ${lat.p99} ms, ${lat.done} requests\n`);
  process.stdout.write(await sh("python3", args, 120_000));
} finally {
  cleanup();
}
