// Issue 16 diagnostics: `make bench`'s wrk HTTP/1.1 rows (paf serve --tap in a namespace vs
// paf serve --host on a veth pair), repeated and interleaved, with node flags per variant and the
// loopstats.mjs preload reporting the server's event-loop delay, GC and batch sizes per run.
//
//   node scripts/diag/http-tail.mjs [--runs 3] [--duration 5] [--sides paf,kernel]
//        [--variant "NAME=FLAGS"]... [--no-stats] [--bench [--rate R]] [--pcap SECONDS] [--log DIR] [--warmup SECONDS]
// --bench adds a paf bench run after each wrk run: closed loop, 16 clients, 3 s after a 1 s
// warm-up; with --rate R open loop at R req/s, 64 clients (the same offered load to both sides;
// the server's stats then include the warm-up second).
// --pcap: a capture of one extra wrk run on the TAP (to DIR or /tmp), and with --log the server's
// GC pauses and batches of that run in DIR/NAME-paf.events.json (see pcap-latency.py).
//
// e.g. --variant base= --variant semi32=--max-semi-space-size=32. Prints one JSON line per run
// and a table at the end. Needs root; namespaces (paf-b*) and servers are removed at exit.
import { spawn } from "node:child_process";
import { readFileSync, rmSync, existsSync, createWriteStream, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ROOT, V8_FLAGS, netns, vethPair, nsRun, sleep, track, cleanup, serveHandle, schedstat, wrkRps } from "../bench/lib.mjs";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    duration: { type: "string", default: "5" },
    sides: { type: "string", default: "paf,kernel" },
    variant: { type: "string", multiple: true, default: ["base="] },
    "no-stats": { type: "boolean", default: false },
    bench: { type: "boolean", default: false },
    rate: { type: "string" },
    pcap: { type: "string" },
    connections: { type: "string", default: "64" },
    log: { type: "string" },
    warmup: { type: "string", default: "1" },
  },
});
const RUNS = Math.min(20, Number(values.runs));
const DUR = Math.min(30, Number(values.duration));
const sides = values.sides.split(",");
const CLI = join(ROOT, "dist", "cli", "main.js");
const PRELOAD = join(ROOT, "scripts", "diag", "loopstats.mjs");
const statsFile = join(tmpdir(), `paf-diag-${process.pid}.jsonl`);

function startServe(nodeFlags, args, nsName, log, env = {}) {
  const node = [...V8_FLAGS, ...nodeFlags, ...(values["no-stats"] ? [] : ["--import", PRELOAD]), CLI, "serve", ...args];
  const [cmd, argv] = nsName ? ["ip", ["netns", "exec", nsName, process.execPath, ...node]] : [process.execPath, node];
  const c = track(
    spawn(cmd, argv, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env, PAF_DIAG_OUT: statsFile, ...(log && values.pcap ? { PAF_DIAG_EVENTS: log.replace(/\.log$/, ".events.json") } : {}) },
    }),
  );
  if (log) {
    // the server's own output (e.g. --trace-gc-nvp), kept for reading afterwards
    const f = createWriteStream(log);
    c.stdout.pipe(f);
  }
  return serveHandle(c);
}

/** CPU busy fraction of the machine over `ms` (/proc/stat), all cores. */
async function busy(msWin = 1000) {
  const read = () => {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + f[4];
    return { idle, total: f.reduce((a, b) => a + b, 0) };
  };
  const a = read();
  await sleep(msWin);
  const b = read();
  return 1 - (b.idle - a.idle) / (b.total - a.total);
}

/** Wait (at most 60 s) for the machine to be quiet: others' load (a parallel test run) skews tails. */
async function quiet() {
  let b = 1;
  for (let i = 0; i < 60 && (b = await busy()) > 0.1; i++);
  return +b.toFixed(2);
}

const ms = (v, u) => Number(v) * (u === "us" ? 0.001 : u === "s" ? 1000 : 1);
function parseWrk(s) {
  const pick = (p) => {
    const m = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`).exec(s);
    return m ? ms(m[1], m[2]) : undefined;
  };
  const max = /Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)/.exec(s);
  return {
    rps: wrkRps(s),
    p50: pick(50),
    p90: pick(90),
    p99: pick(99),
    max: max ? ms(max[1], max[2]) : undefined,
    errors: /Socket errors:.*|Non-2xx.*/.exec(s)?.[0],
  };
}

/** The server's main thread as the kernel scheduler saw it: ns on CPU, ns runnable but waiting, involuntary switches. */
function sched(pid) {
  const st = schedstat(pid);
  try {
    const inv = Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/task/${pid}/status`, "utf8"))?.[1]);
    return st && { ...st, inv };
  } catch {
    return undefined;
  }
}

async function statsOf(server, fn) {
  const s0 = sched(server.child.pid);
  const withSched = (x) => {
    const s1 = sched(server.child.pid);
    if (s0 && s1) x.sched = { cpuMs: Math.round((s1.run - s0.run) / 1e6), runqWaitMs: Math.round((s1.wait - s0.wait) / 1e6), involuntary: s1.inv - s0.inv };
    return x;
  };
  if (values["no-stats"]) return withSched({ r: await fn() });
  rmSync(statsFile, { force: true });
  server.child.kill("SIGUSR2");
  await sleep(50);
  const r = await fn();
  server.child.kill("SIGUSR2");
  for (let i = 0; i < 40 && !existsSync(statsFile); i++) await sleep(50);
  const st = existsSync(statsFile) ? JSON.parse(readFileSync(statsFile, "utf8").trim().split("\n").pop()) : undefined;
  return withSched({ r, st });
}

async function pafBench(ns, url) {
  const json = join(tmpdir(), `paf-diag-bench-${process.pid}.json`);
  const load = values.rate ? ["--clients", "64", "--rate", values.rate] : ["--clients", "16"];
  await nsRun(ns, process.execPath, [...V8_FLAGS, CLI, "bench", url, ...load, "--warmup", "1", "--duration", "3", "--requests", "1000000", "--timeout", "5000", "--json", json], 40_000).catch(
    () => {},
  );
  const r = JSON.parse(readFileSync(json, "utf8"));
  rmSync(json, { force: true });
  return { rps: r.completed / r.durationSeconds, p50: r.latencyMs.p50, p90: r.latencyMs.p90, p99: r.latencyMs.p99, max: r.latencyMs.max };
}

const rows = [];
try {
  const setups = {};
  if (sides.includes("paf")) setups.paf = { ns: await netns("d"), base: "198.18.0.2" };
  if (sides.includes("kernel")) {
    const { A, B } = await vethPair("d");
    setups.kernel = { ns: A, serverNs: B, base: "198.18.1.2" };
  }
  for (const v of values.variant) {
    const eq = v.indexOf("=");
    const name = v.slice(0, eq);
    // tokens "env:K=V" are environment variables of the servers (e.g. env:PAF_DIAG_BATCH=16)
    const tokens = v
      .slice(eq + 1)
      .split(" ")
      .filter(Boolean);
    const flags = tokens.filter((t) => !t.startsWith("env:"));
    const env = Object.fromEntries(tokens.filter((t) => t.startsWith("env:")).map((t) => t.slice(4).split("=")));
    const servers = {};
    for (const side of Object.keys(setups)) {
      const s = setups[side];
      if (side === "paf") {
        servers.paf = startServe(
          flags,
          ["--tap", "pafdh", "--tap-netns", s.ns, "--ipv4", "198.18.0.2/24", "--http", "80", "--https", "443"],
          undefined,
          values.log ? join(values.log, `${name}-paf.log`) : undefined,
          env,
        );
        await servers.paf.ready;
        // the TAP goes away with the server that made it: its address too
        await nsRun(s.ns, "ip", ["addr", "replace", "198.18.0.1/24", "dev", "pafdh"]);
        await nsRun(s.ns, "ip", ["link", "set", "pafdh", "up"]);
      } else {
        servers.kernel = startServe(flags, ["--host", "198.18.1.2", "--http", "80", "--https", "443"], s.serverNs, values.log ? join(values.log, `${name}-kernel.log`) : undefined, env);
        await servers.kernel.ready;
      }
    }
    await sleep(300);
    // warm-up (JIT), not counted
    for (const side of Object.keys(setups))
      await nsRun(setups[side].ns, "wrk", ["-t2", `-c${values.connections}`, `-d${Math.min(30, Number(values.warmup))}s`, `http://${setups[side].base}/`], 60_000);
    if (values.pcap && setups.paf) {
      // a bounded capture on the client side of the TAP during a wrk run
      const secs = Math.min(5, Number(values.pcap));
      const file = join(values.log ?? tmpdir(), `${name}-paf.pcap`);
      const cap = nsRun(setups.paf.ns, "timeout", [String(secs + 1), "tcpdump", "-i", "pafdh", "-s", "96", "-w", file, "tcp port 80"], 20_000).catch(() => {});
      await sleep(500);
      const { r } = await statsOf(servers.paf, async () => parseWrk(await nsRun(setups.paf.ns, "wrk", ["-t2", `-c${values.connections}`, `-d${secs}s`, "--latency", `http://${setups.paf.base}/`])));
      await cap;
      // later runs overwrite the server's events file: keep this run's beside the capture
      const ev = join(values.log ?? "", `${name}-paf.events.json`);
      if (values.log && existsSync(ev)) copyFileSync(ev, file.replace(/\.pcap$/, ".pcap.events.json"));
      console.error(`wrk during the capture: ${JSON.stringify(r)}`);
      console.error(`pcap: ${file}`);
    }
    for (let i = 0; i < RUNS; i++) {
      for (const side of Object.keys(setups)) {
        const s = setups[side];
        const idle = await quiet();
        const {
          r,
          st,
          sched: sc,
        } = await statsOf(servers[side], async () => parseWrk(await nsRun(s.ns, "wrk", ["-t2", `-c${values.connections}`, `-d${DUR}s`, "--latency", `http://${s.base}/`], (DUR + 20) * 1000)));
        const row = { variant: name, side, tool: "wrk", run: i, busyBefore: idle, ...r, sched: sc, stats: st };
        rows.push(row);
        console.log(JSON.stringify(row));
        if (values.bench) {
          const { r: b, st: bst } = await statsOf(servers[side], () => pafBench(s.ns, `http://${s.base}/`));
          const brow = { variant: name, side, tool: "pafbench", run: i, ...b, stats: bst };
          rows.push(brow);
          console.log(JSON.stringify(brow));
        }
      }
    }
    for (const s of Object.values(servers)) await s.stop();
  }
} finally {
  cleanup();
  rmSync(statsFile, { force: true });
}
const f = (x) => (x === undefined ? "-" : x.toFixed(2));
console.log(
  "\n| variant | tool | side | run | req/s | p50 ms | p90 ms | p99 ms | max ms | cpu ms | runq wait ms | invol. switches | eld p99 ms | eld max | gc n | gc total ms | gc max ms | batch frames p50/p99 | batch ms p99 |",
);
console.log("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |");
for (const r of rows) {
  const s = r.stats;
  console.log(
    `| ${r.variant} | ${r.tool} | ${r.side} | ${r.run} | ${Math.round(r.rps)} | ${f(r.p50)} | ${f(r.p90)} | ${f(r.p99)} | ${f(r.max)} | ${r.sched?.cpuMs ?? "-"} | ${r.sched?.runqWaitMs ?? "-"} | ${r.sched?.involuntary ?? "-"} | ${f(s?.eldMs.p99)} | ${f(s?.eldMs.max)} | ${s?.gc.n ?? "-"} | ${f(s?.gc.totalMs)} | ${f(s?.gc.maxMs)} | ${s?.batchFrames.n ? `${s.batchFrames.p50}/${s.batchFrames.p99}` : "-"} | ${f(s?.batchMs.p99)} |`,
  );
}
