// Noisy neighbour: `paf serve --tenants` with tenants on the same addresses, each on its own
// TAP in its own namespace, one process. Tenant 1's latency (p99 of paf bench, 1 client) idle,
// then while tenant 0 takes a UDP flood, then an HTTP flood (wrk -c64); and tenant 0's own
// prober (curl from a second address of its namespace, 1 s limit each) under both floods.
// Tenant 0 has limits on (tenant rates, fair shares per source, connections per host, a CPU
// cap); tenant 2 has the same limits but no CPU cap, and takes the same HTTP flood once more,
// to show what the cap does.
// The kernel reference: the same app in one process on kernel sockets (`paf serve --host
// 0.0.0.0`), its two "tenants" two veth links to the two client namespaces, the same floods.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { ROOT, V8_FLAGS, netns, nsRun, schedstat, serveHandle, sh, sleep, track, udpbench, wrkRps } from "./lib.mjs";

const CLI = join(ROOT, "dist", "cli", "main.js");
const SECONDS = Number(process.env.PAF_NOISY_SECONDS ?? 4);
/** The UDP flood's rate (the figure); 0: as fast as the sender can. */
const FLOOD_PPS = Number(process.env.PAF_NOISY_FLOOD_PPS ?? 240_000);

/** Node flags for the paf server (e.g. PAF_NOISY_NODEFLAGS="--cpu-prof --cpu-prof-dir=/tmp/p" to profile it). */
const NODE_FLAGS = [...V8_FLAGS, ...(process.env.PAF_NOISY_NODEFLAGS ?? "").split(" ").filter(Boolean)];

/**
 * The limits tenant 0 runs with (documented in the README's tenants section). For A/B runs:
 * PAF_NOISY_CPU_US its CPU share per turn, PAF_NOISY_CPU_PCT its CPU cap (percent of a CPU).
 */
export const NOISY_LIMITS = {
  tenant: {
    packetsPerSec: 30_000,
    bytesPerSec: 100_000_000,
    sourceSharePct: 50,
    sourcePacketsPerSec: 15_000,
    cpuPerTurnUs: Number(process.env.PAF_NOISY_CPU_US ?? 500),
    cpuPercent: Number(process.env.PAF_NOISY_CPU_PCT ?? 20),
  },
  tcp: { maxConnectionsPerHost: 64, newConnectionsPerSec: 2000 },
};

/** Tenant 2's limits: tenant 0's without the CPU cap. */
function uncapped(limits) {
  const { cpuPercent: _, ...tenant } = limits.tenant ?? {};
  return { ...limits, tenant };
}

/**
 * The server's main thread: ms per second it waited for a CPU (run queue), from
 * /proc/PID/task/PID/schedstat, over whatever `work` does. On 2 cores the load generators and
 * the server compete for them: this says how much of a latency is the scheduler's.
 */
async function runqueue(pid, work) {
  const s0 = schedstat(pid);
  const t0 = performance.now();
  const r = await work();
  const s1 = schedstat(pid);
  const secs = (performance.now() - t0) / 1000;
  return { ...r, runqMsPerSec: s0 && s1 ? (s1.wait - s0.wait) / 1e6 / secs : undefined };
}

/** Tenant 1's latency from `paf bench` with one client in `ns` for `seconds`: p50, p99 (ms), requests done and failed. */
export async function latency(ns, seconds, addr = "198.18.0.2") {
  const json = join(tmpdir(), `paf-noisy-${process.pid}-${Math.random().toString(36).slice(2)}.json`);
  await nsRun(
    ns,
    process.execPath,
    [...V8_FLAGS, CLI, "bench", `http://${addr}/`, "--clients", "1", "--duration", String(seconds), "--requests", "1000000", "--timeout", "2000", "--json", json],
    (seconds + 30) * 1000,
  ).catch(() => {});
  try {
    const r = JSON.parse(readFileSync(json, "utf8"));
    return { p50: r.latencyMs.p50, p99: r.latencyMs.p99, done: r.completed, failed: r.failed };
  } finally {
    rmSync(json, { force: true });
  }
}

/** Prober loops side by side: one loop gets 4-6 requests through a flood, too few to tell 0 % from 50 %. */
const PROBER_LOOPS = 4;

/**
 * curl from 198.18.0.3 (the legitimate user of tenant 0): PROBER_LOOPS loops of requests, 1 s
 * each, for `seconds`: the share that succeeded, of `n` in all.
 */
async function prober(ns, seconds, addr = "198.18.0.2") {
  const loop = `end=$((SECONDS+${seconds})); ok=0; n=0; while [ $SECONDS -lt $end ]; do n=$((n+1)); c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 --interface 198.18.0.3 http://${addr}/); [ "$c" = 200 ] && ok=$((ok+1)); done; echo $ok $n`;
  const out = await sh("ip", ["netns", "exec", ns, "bash", "-c", `for i in $(seq ${PROBER_LOOPS}); do (${loop}) & done; wait`], (seconds + 20) * 1000);
  let ok = 0;
  let n = 0;
  for (const line of out.trim().split("\n")) {
    const [a, b] = line.trim().split(" ").map(Number);
    ok += a;
    n += b;
  }
  return { ok, n, share: n ? ok / n : 0 };
}

/**
 * The tenants' links: a namespace each with a TAP whose kernel side is 198.18.0.1/24 (and, for
 * tenant 0, 198.18.0.3, its prober's address), and a `paf serve --tenants` config in `dir`
 * putting every tenant on 198.18.0.2, tenant 0 with `limits`; with `third`, a tenant 2 with
 * those limits but no CPU cap.
 */
export async function tenantTaps(dir, limits = NOISY_LIMITS, third = false) {
  const ns0 = await netns("n0");
  const ns1 = await netns("n1");
  const ns2 = third ? await netns("n2") : undefined;
  const taps = ["pafnz0", "pafnz1", "pafnz2"];
  for (const [ns, tap] of [[ns0, taps[0]], [ns1, taps[1]], ...(ns2 ? [[ns2, taps[2]]] : [])]) {
    await sh("ip", ["-n", ns, "tuntap", "add", tap, "mode", "tap"]);
    await sh("ip", ["-n", ns, "link", "set", tap, "up"]);
    await sh("ip", ["-n", ns, "addr", "add", "198.18.0.1/24", "dev", tap]);
  }
  await sh("ip", ["-n", ns0, "addr", "add", "198.18.0.3/24", "dev", taps[0]]);
  const cfg = join(dir, "tenants.json");
  writeFileSync(
    cfg,
    JSON.stringify({
      tenants: [
        { name: "t0", tap: taps[0], netns: ns0, ipv4: "198.18.0.2/24", limits },
        { name: "t1", tap: taps[1], netns: ns1, ipv4: "198.18.0.2/24" },
        ...(ns2 ? [{ name: "t2", tap: taps[2], netns: ns2, ipv4: "198.18.0.2/24", limits: uncapped(limits) }] : []),
      ],
    }),
  );
  return { ns0, ns1, ns2, taps, cfg };
}

export async function benchNoisy() {
  const bin = udpbench();
  const dir = mkdtempSync(join(tmpdir(), "paf-noisy-"));
  const { ns0, ns1, ns2, taps, cfg } = await tenantTaps(dir, NOISY_LIMITS, true);
  const paf = serveHandle(track(spawn(process.execPath, [...NODE_FLAGS, CLI, "serve", "--tenants", cfg], { stdio: ["ignore", "pipe", "pipe"] })));
  let result;
  try {
    await paf.ready; // its "listening 3 tenants" line
    await sleep(500);
    const r = await floods(bin, ns0, ns1, "198.18.0.2", "198.18.0.2", paf.child.pid, ns2);
    const tapDrops = await sh("ip", ["-n", ns0, "-s", "-j", "link", "show", taps[0]]);
    const stats = JSON.parse((await sh("ip", ["netns", "exec", ns0, "curl", "-s", "--max-time", "5", "--interface", "198.18.0.3", "http://198.18.0.2/stats"])) || "{}");
    result = { ...r, tenant0: stats.tenant, tap0: JSON.parse(tapDrops)[0]?.stats64?.tx };
  } finally {
    await paf.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  // The kernel reference runs alone, after paf has gone (PAF_NOISY_KERNEL=0: not at all, for A/B runs of paf).
  return { ...result, kernel: process.env.PAF_NOISY_KERNEL === "0" ? undefined : await kernelReference(bin) };
}

/**
 * The measurement, on whichever server: tenant 1 (ns1, addr1) idle, then under a UDP flood and an
 * HTTP flood on tenant 0 (ns0, addr0), with tenant 0's prober after tenant 1's window each time;
 * with `ns2` (paf: tenant 2, uncapped), tenant 1 under the same HTTP flood on tenant 2.
 */
async function floods(bin, ns0, ns1, addr0, addr1, pid, ns2) {
  await latency(ns1, 1, addr1); // warm up
  const idle = await runqueue(pid, () => latency(ns1, SECONDS, addr1));
  // Under each flood: tenant 1's latency first, then tenant 0's prober (its curl loops would
  // load the 2 cores and colour tenant 1's figure if they ran at the same time).
  const floodUdp = nsRun(ns0, bin, ["flood", process.env.PAF_NOISY_FLOOD_DST ?? addr0, "9", "64", String(2 * SECONDS), String(FLOOD_PPS)], (SECONDS + 30) * 1000);
  await sleep(300);
  const udp1 = await runqueue(pid, () => latency(ns1, SECONDS - 1, addr1));
  const udp0 = await prober(ns0, SECONDS - 1, addr0);
  const flood = await floodUdp;
  const wrk = nsRun(ns0, "wrk", ["-t1", "-c64", `-d${2 * SECONDS}s`, `http://${addr0}/`], (SECONDS + 30) * 1000);
  await sleep(300);
  const http1 = await runqueue(pid, () => latency(ns1, SECONDS - 1, addr1));
  const http0 = await prober(ns0, SECONDS - 1, addr0);
  const wrkOut = await wrk;
  let httpUncapped;
  if (ns2) {
    const wrk2 = nsRun(ns2, "wrk", ["-t1", "-c64", `-d${SECONDS}s`, `http://${addr0}/`], (SECONDS + 30) * 1000);
    await sleep(300);
    const t1 = await runqueue(pid, () => latency(ns1, SECONDS - 1, addr1));
    httpUncapped = { tenant1: t1, wrkRps: wrkRps(await wrk2) };
  }
  return {
    idle,
    udp: { tenant1: udp1, prober0: udp0, offeredPps: flood.pps },
    http: { tenant1: http1, prober0: http0, wrkRps: wrkRps(wrkOut) },
    httpUncapped,
  };
}

/**
 * The same scenario on kernel sockets: one `paf serve --host 0.0.0.0` process in a server
 * namespace with a veth link to each client namespace (tenant 0: 198.18.0.2, with the prober's
 * 198.18.0.3 on the client side; tenant 1: 198.18.2.2). No tenant limits exist there.
 */
async function kernelReference(bin) {
  const k = await netns("nk");
  const c0 = await netns("nk0");
  const c1 = await netns("nk1");
  const links = [
    [c0, "pafnk0", "198.18.0.2/24", "198.18.0.1/24"],
    [c1, "pafnk1", "198.18.2.2/24", "198.18.2.1/24"],
  ];
  for (const [c, dev, server, client] of links) {
    await sh("ip", ["link", "add", `${dev}s`, "netns", k, "type", "veth", "peer", "name", `${dev}c`, "netns", c]);
    await sh("ip", ["-n", k, "addr", "add", server, "dev", `${dev}s`]);
    await sh("ip", ["-n", c, "addr", "add", client, "dev", `${dev}c`]);
    await sh("ip", ["-n", k, "link", "set", `${dev}s`, "up"]);
    await sh("ip", ["-n", c, "link", "set", `${dev}c`, "up"]);
  }
  await sh("ip", ["-n", c0, "addr", "add", "198.18.0.3/24", "dev", "pafnk0c"]);
  const host = serveHandle(track(spawn("ip", ["netns", "exec", k, process.execPath, ...V8_FLAGS, CLI, "serve", "--host", "0.0.0.0", "--http", "80"], { stdio: ["ignore", "pipe", "pipe"] })));
  await host.ready;
  try {
    await sleep(300);
    return await floods(bin, c0, c1, "198.18.0.2", "198.18.2.2", host.child.pid);
  } finally {
    await host.stop();
  }
}

export function noisyRows(r) {
  const k = r.kernel;
  return [
    { name: "noisy neighbour: tenant 1 p99 ms, idle", paf: r.idle.p99, kernel: k.idle.p99, lowerIsBetter: true },
    { name: `noisy neighbour: tenant 1 p99 ms, UDP flood on tenant 0 (${Math.round(r.udp.offeredPps / 1000)} kpps offered)`, paf: r.udp.tenant1.p99, kernel: k.udp.tenant1.p99, lowerIsBetter: true },
    {
      name: `noisy neighbour: tenant 1 p99 ms, HTTP flood on tenant 0 (wrk -c64; paf: tenant 0 capped at ${NOISY_LIMITS.tenant.cpuPercent} % of a CPU, ${Math.round(r.http.wrkRps)} req/s)`,
      paf: r.http.tenant1.p99,
      kernel: k.http.tenant1.p99,
      lowerIsBetter: true,
    },
    {
      name: `noisy neighbour: tenant 1 p99 ms, the HTTP flood on tenant 2, the same limits without a CPU cap (${Math.round(r.httpUncapped.wrkRps)} req/s)`,
      paf: r.httpUncapped.tenant1.p99,
      kernel: undefined,
      lowerIsBetter: true,
    },
    // What much of that p99 is on 2 cores: the server waiting for a CPU (idle and UDP-flood
    // figures are in the JSON of scripts/bench/noisy.mjs).
    {
      name: "noisy neighbour: the server's wait for a CPU during the HTTP flood, ms per s (schedstat run queue)",
      paf: r.http.tenant1.runqMsPerSec,
      kernel: k.http.tenant1.runqMsPerSec,
      lowerIsBetter: true,
    },
    {
      name: `noisy neighbour: tenant 0 prober success under UDP flood, % (paf: limits on; ${r.udp.prober0.n} / ${k.udp.prober0.n} requests)`,
      paf: 100 * r.udp.prober0.share,
      kernel: 100 * k.udp.prober0.share,
    },
    {
      name: `noisy neighbour: tenant 0 prober success under HTTP flood, % (paf: limits on; ${r.http.prober0.n} / ${k.http.prober0.n} requests)`,
      paf: 100 * r.http.prober0.share,
      kernel: 100 * k.http.prober0.share,
    },
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { cleanup } = await import("./lib.mjs");
  try {
    console.log(JSON.stringify(await benchNoisy(), null, 1));
  } finally {
    cleanup();
  }
}
