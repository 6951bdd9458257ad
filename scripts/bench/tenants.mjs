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

async function runOne(args, node = []) {
  const { stdout } = await execFileP(process.execPath, [...node, RUN, ...args], { timeout: 180_000, maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split("\n").pop());
}

/** See README "Tenants": V8's allocation-site pretenuring, taught by the tenants' setup, halves throughput. */
const NO_PRETENURING = ["--no-allocation-site-pretenuring"];

export async function benchTenants() {
  const load = {};
  for (const n of [10, 100, 1000]) {
    for (const kind of ["paf", "kernel"]) load[`${kind}${n}`] = await runOne(["load", String(n), String(SECONDS), String(LOOPS), kind]);
  }
  for (const n of [10, 1000]) {
    for (const kind of ["paf", "kernel"]) load[`${kind}${n}np`] = await runOne(["load", String(n), String(SECONDS), String(LOOPS), kind], NO_PRETENURING);
  }
  const idle = await runOne(["idle", "1000"], ["--expose-gc"]);
  const rows = [];
  for (const n of [10, 100, 1000]) {
    rows.push({ name: `HTTP req/s in one process, ${n} tenants (${2 * n} stacks), ${LOOPS} loops (kernel: loopback)`, paf: load[`paf${n}`].rps, kernel: load[`kernel${n}`].rps });
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
