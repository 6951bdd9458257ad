// Tenants: many isolated stacks in one process (issue 15's goals), each measurement in a fresh
// process (tenants-run.mjs): aggregate HTTP req/s with 10, 100 and 1000 tenants (a VirtualSwitch,
// a server stack and a client stack each, all on the same addresses; 64 keep-alive request loops
// spread over them, wrk-like raw clients and, for 10 and 1000 tenants, node:http's client too)
// next to the same load on kernel loopback; heap per idle stack and creation time; and the noisy
// neighbour over TAPs (noisy.mjs).
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { join } from "node:path";
import { ROOT, V8_FLAGS, pinnableCpus, pinned } from "./lib.mjs";
import { benchNoisy, noisyRows } from "./noisy.mjs";

const execFileP = promisify(execFile);
const RUN = join(ROOT, "scripts", "bench", "tenants-run.mjs");
const SECONDS = 4;
const LOOPS = 64;
/** Each load figure is the median of this many runs, the configurations interleaved (one 4 s run swings by a third on this machine). */
const ROUNDS = Number(process.env.PAF_BENCH_TENANT_ROUNDS ?? 3);

/**
 * One measurement in a fresh process, on CPU `cpu` alone when given. A round runs every
 * configuration on the same CPU, and the rounds take the CPUs in turn: a process stays on the
 * CPU it starts on, and this VM's two CPUs were at times 1.4-3x apart in speed, which made single
 * 1000-tenant runs bimodal (15-20 k or 30-44 k req/s) and ratios of runs on different CPUs a coin toss.
 */
async function runOne(args, node = [], cpu = undefined) {
  const [cmd, argv] = pinned(cpu, process.execPath, [...V8_FLAGS, ...node, RUN, ...args]);
  const { stdout } = await execFileP(cmd, argv, { timeout: 180_000, maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split("\n").pop());
}

/** The median of per-round ratios a[r] / b[r] (each pair measured on one CPU, back to back). */
function pairedRatio(a, b) {
  const r = a.map((x, i) => x.rps / b[i].rps).sort((x, y) => x - y);
  return r[Math.floor(r.length / 2)];
}

/** The run of median `key` (req/s by default) among `runs` (its other figures, p99, go with it). */
function median(runs, key = "rps") {
  const sorted = [...runs].sort((a, b) => a[key] - b[key]);
  return sorted[Math.floor(sorted.length / 2)];
}

export async function benchTenants() {
  // The servers are node:http in every configuration. The raw clients (one connection per loop,
  // a fixed GET, the response read to its Content-Length, as wrk does) measure them and the
  // stacks; node:http's client (a ClientRequest, IncomingMessage and parser per request) is
  // the load generator most programs would write, and its own allocation is most of what
  // changes between 10 and 1000 tenants (README "Tenants").
  // The two halves of each 1000/10 ratio run back to back (a CPU's speed drifts within a round).
  const configs = [];
  for (const [client, suffix] of [
    ["raw", ""],
    ["node", "node"],
  ]) {
    for (const kind of ["paf", "kernel"]) for (const n of [10, 1000]) configs.push({ key: `${kind}${n}${suffix}`, n, kind, client });
  }
  for (const kind of ["paf", "kernel"]) configs.push({ key: `${kind}100`, n: 100, kind, client: "raw" });
  const runs = {};
  const cpus = pinnableCpus();
  if (cpus.length === 0) console.error("tenants: taskset is missing, runs are not pinned to a CPU (their ratios are less steady)");
  /** Round r's CPU: the CPUs in turn (undefined: not pinned). */
  const cpuOf = (r) => (cpus.length ? cpus[r % cpus.length] : undefined);
  for (let r = 0; r < ROUNDS; r++) {
    for (const c of configs) (runs[c.key] ??= []).push(await runOne(["load", String(c.n), String(SECONDS), String(LOOPS), c.kind, c.client], [], cpuOf(r)));
  }
  const load = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, median(v)]));
  // Creation is mostly first touches of new memory (page faults, whose cost drifts with the
  // host): the median of ROUNDS fresh processes, as for the load figures.
  const idles = [];
  for (let r = 0; r < ROUNDS; r++) idles.push(await runOne(["idle", "1000"], ["--expose-gc"], cpuOf(r)));
  const idle = { createMs: median(idles, "createMs").createMs, heapPerStackBytes: median(idles, "heapPerStackBytes").heapPerStackBytes };
  const rows = [];
  for (const n of [10, 100, 1000]) {
    rows.push({
      name: `HTTP req/s in one process${cpus.length ? " on one CPU" : ""}, ${n} tenants (${2 * n} stacks), ${LOOPS} raw keep-alive loops (kernel: loopback; median of ${ROUNDS})`,
      paf: load[`paf${n}`].rps,
      kernel: load[`kernel${n}`].rps,
    });
  }
  const pin = cpus.length ? "one CPU per round, " : "";
  rows.push({
    name: `req/s with 1000 tenants / with 10 tenants (${pin}median of the rounds' ratios)`,
    paf: pairedRatio(runs.paf1000, runs.paf10),
    kernel: pairedRatio(runs.kernel1000, runs.kernel10),
  });
  rows.push({ name: "HTTP p99 latency, ms, 1000 tenants", paf: load.paf1000.p99, kernel: load.kernel1000.p99, lowerIsBetter: true });
  for (const n of [10, 1000]) {
    rows.push({ name: `HTTP req/s, ${n} tenants, ${LOOPS} loops of node:http's client`, paf: load[`paf${n}node`].rps, kernel: load[`kernel${n}node`].rps });
  }
  rows.push({ name: "req/s with 1000 tenants / with 10 tenants, node:http's client", paf: pairedRatio(runs.paf1000node, runs.paf10node), kernel: pairedRatio(runs.kernel1000node, runs.kernel10node) });
  rows.push({ name: `heap per idle stack, KB (1000 stacks; median of ${ROUNDS})`, paf: idle.heapPerStackBytes / 1024, lowerIsBetter: true });
  rows.push({ name: `stack creation, ms each (1000 stacks; median of ${ROUNDS} processes)`, paf: idle.createMs, lowerIsBetter: true });
  rows.push(...noisyRows(await benchNoisy()));
  return rows;
}
