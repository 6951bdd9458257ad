// Tenants: many isolated stacks in one process (issue 15's goals), each measurement in a fresh
// process (tenants-run.mjs): aggregate HTTP req/s with 10, 100 and 1000 tenants (a VirtualSwitch,
// a server stack and a client stack each, all on the same addresses; 64 keep-alive request loops
// spread over them) next to the same load on kernel loopback; heap per idle stack and creation
// time; and the noisy neighbour over TAPs (noisy.mjs).
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { join } from "node:path";
import { ROOT } from "./lib.mjs";
import { benchNoisy, noisyRows } from "./noisy.mjs";

const execFileP = promisify(execFile);
const RUN = join(ROOT, "scripts", "bench", "tenants-run.mjs");
const SECONDS = 4;
const LOOPS = 64;
/** Each load figure is the median of this many runs, the configurations interleaved (one 4 s run swings by a third on this machine). */
const ROUNDS = Number(process.env.PAF_BENCH_TENANT_ROUNDS ?? 3);

async function runOne(args, node = []) {
  const { stdout } = await execFileP(process.execPath, [...node, RUN, ...args], { timeout: 180_000, maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split("\n").pop());
}

/**
 * See README "Tenants": after 2000 stacks filled the young generation, the first burst of 64
 * requests is collected in flight and V8 pretenures their allocation sites for good.
 */
const NO_PRETENURING = ["--no-allocation-site-pretenuring"];

/** The run of median req/s among `runs` (its p99 goes with it). */
function median(runs) {
  const sorted = [...runs].sort((a, b) => a.rps - b.rps);
  return sorted[Math.floor(sorted.length / 2)];
}

export async function benchTenants() {
  const configs = [];
  for (const n of [10, 100, 1000]) for (const kind of ["paf", "kernel"]) configs.push({ key: `${kind}${n}`, n, kind, node: [] });
  for (const n of [10, 1000]) for (const kind of ["paf", "kernel"]) configs.push({ key: `${kind}${n}np`, n, kind, node: NO_PRETENURING });
  const runs = {};
  for (let r = 0; r < ROUNDS; r++) {
    for (const c of configs) (runs[c.key] ??= []).push(await runOne(["load", String(c.n), String(SECONDS), String(LOOPS), c.kind], c.node));
  }
  const load = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, median(v)]));
  const idle = await runOne(["idle", "1000"], ["--expose-gc"]);
  const rows = [];
  for (const n of [10, 100, 1000]) {
    rows.push({ name: `HTTP req/s in one process, ${n} tenants (${2 * n} stacks), ${LOOPS} loops (kernel: loopback; median of ${ROUNDS})`, paf: load[`paf${n}`].rps, kernel: load[`kernel${n}`].rps });
  }
  rows.push({ name: "req/s with 1000 tenants / with 10 tenants", paf: load.paf1000.rps / load.paf10.rps, kernel: load.kernel1000.rps / load.kernel10.rps });
  for (const n of [10, 1000]) {
    rows.push({ name: `HTTP req/s, ${n} tenants, node --no-allocation-site-pretenuring`, paf: load[`paf${n}np`].rps, kernel: load[`kernel${n}np`].rps });
  }
  rows.push({ name: "req/s with 1000 tenants / with 10 tenants, --no-allocation-site-pretenuring", paf: load.paf1000np.rps / load.paf10np.rps, kernel: load.kernel1000np.rps / load.kernel10np.rps });
  rows.push({ name: "HTTP p99 latency, ms, 1000 tenants", paf: load.paf1000.p99, kernel: load.kernel1000.p99, lowerIsBetter: true });
  rows.push({ name: "heap per idle stack, KB (1000 stacks)", paf: idle.heapPerStackBytes / 1024, lowerIsBetter: true });
  rows.push({ name: "stack creation, ms each", paf: idle.createMs, lowerIsBetter: true });
  rows.push(...noisyRows(await benchNoisy()));
  return rows;
}
