// make bench: the userspace stack over TAP next to the kernel over veth, side by side, in one run.
// Writes bench-results/latest.md (a Markdown table) and prints it. Needs root (namespaces).
import { writeFileSync, mkdirSync } from "node:fs";
import { cpus } from "node:os";
import { benchUdp } from "./bench/udp.mjs";
import { benchTcp } from "./bench/tcp.mjs";
import { benchHttp } from "./bench/http.mjs";
import { benchConn } from "./bench/conn.mjs";
import { benchTenants } from "./bench/tenants.mjs";
import { spawnSync } from "node:child_process";
import { cleanup, cpuCheck, V8_FLAGS } from "./bench/lib.mjs";

// The stack of the TCP rows runs in this process: with the flags of the `paf` command.
if (!V8_FLAGS.every((f) => process.execArgv.includes(f))) {
  const r = spawnSync(process.execPath, [...V8_FLAGS, ...process.execArgv, ...process.argv.slice(1)], { stdio: "inherit" });
  process.exit(r.status ?? 1);
}

if (process.getuid?.() !== 0) {
  console.error("make bench needs root (it creates network namespaces and TAP devices)");
  process.exit(2);
}

const fmt = (x) => (x === undefined ? "–" : x >= 100 ? Math.round(x).toLocaleString("en-US") : x.toFixed(2));
const rows = [];
// The same fixed work timed on each CPU before and after: on a VM the CPUs need not be equally
// fast, nor stay so during a run, and a ratio of two runs on CPUs apart in speed says little.
const checks = [cpuCheck()];
try {
  const only = process.env.PAF_BENCH_ONLY;
  if (!only || only === "udp") rows.push(...(await benchUdp()));
  if (!only || only === "tcp") rows.push(...(await benchTcp()));
  if (!only || only === "conn") rows.push(...(await benchConn()));
  if (!only || only === "http" || only === "latency") rows.push(...(await benchHttp({ latencyOnly: only === "latency" })));
  if (!only || only === "tenants") rows.push(...(await benchTenants()));
  checks.push(cpuCheck());
} finally {
  cleanup();
}
const fmtCheck = (c) => c.map((ms, i) => `cpu${i} ${Math.round(ms)} ms`).join(", ");
const all = checks.flat();
const spread = all.length ? Math.max(...all) / Math.min(...all) : 1;
const date = new Date().toISOString().slice(0, 10);
const lines = [
  `Measured ${date} on ${cpus().length} cores (${cpus()[0]?.model ?? "unknown CPU"}), Node ${process.version}.`,
  "",
  all.length
    ? `CPU check (the same work on each CPU), before: ${fmtCheck(checks[0])}; after: ${checks[1] ? fmtCheck(checks[1]) : "–"}${spread > 1.15 ? ` — the CPUs were up to ${spread.toFixed(2)}x apart: ratios of separate processes are less reliable in this run` : ""}.`
    : "CPU check: not run (taskset is missing).",
  "",
  "| figure | paf (userspace, TAP) | kernel (veth) | paf / kernel |",
  "| --- | ---: | ---: | ---: |",
  ...rows.map((r) => `| ${r.name} | ${fmt(r.paf)} | ${fmt(r.kernel)} | ${r.kernel ? (r.paf / r.kernel).toFixed(2) : "–"} |`),
];
const md = lines.join("\n") + "\n";
mkdirSync("bench-results", { recursive: true });
writeFileSync("bench-results/latest.md", md);
writeFileSync("bench-results/latest.json", JSON.stringify({ date, cores: cpus().length, cpuCheckMs: checks, rows }, null, 2));
console.log(md);
for (const r of rows) if (r.sent) console.log(`(${r.name}: the sender offered ${fmt(r.sent)}/s)`);
