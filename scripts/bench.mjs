// make bench: the userspace stack over TAP next to the kernel over veth, side by side, in one run.
// Writes bench-results/latest.md (a Markdown table) and prints it. Needs root (namespaces).
import { writeFileSync, mkdirSync } from "node:fs";
import { cpus } from "node:os";
import { benchUdp } from "./bench/udp.mjs";
import { benchTcp } from "./bench/tcp.mjs";
import { benchHttp } from "./bench/http.mjs";
import { benchConn } from "./bench/conn.mjs";
import { benchTenants } from "./bench/tenants.mjs";
import { cleanup } from "./bench/lib.mjs";

if (process.getuid?.() !== 0) {
  console.error("make bench needs root (it creates network namespaces and TAP devices)");
  process.exit(2);
}

const fmt = (x) => (x === undefined ? "–" : x >= 100 ? Math.round(x).toLocaleString("en-US") : x.toFixed(2));
const rows = [];
try {
  const only = process.env.PAF_BENCH_ONLY;
  if (!only || only === "udp") rows.push(...(await benchUdp()));
  if (!only || only === "tcp") rows.push(...(await benchTcp()));
  if (!only || only === "conn") rows.push(...(await benchConn()));
  if (!only || only === "http" || only === "latency") rows.push(...(await benchHttp({ latencyOnly: only === "latency" })));
  if (!only || only === "tenants") rows.push(...(await benchTenants()));
} finally {
  cleanup();
}
const date = new Date().toISOString().slice(0, 10);
const lines = [
  `Measured ${date} on ${cpus().length} cores (${cpus()[0]?.model ?? "unknown CPU"}), Node ${process.version}.`,
  "",
  "| figure | paf (userspace, TAP) | kernel (veth) | paf / kernel |",
  "| --- | ---: | ---: | ---: |",
  ...rows.map((r) => `| ${r.name} | ${fmt(r.paf)} | ${fmt(r.kernel)} | ${r.kernel ? (r.paf / r.kernel).toFixed(2) : "–"} |`),
];
const md = lines.join("\n") + "\n";
mkdirSync("bench-results", { recursive: true });
writeFileSync("bench-results/latest.md", md);
writeFileSync("bench-results/latest.json", JSON.stringify({ date, cores: cpus().length, rows }, null, 2));
console.log(md);
for (const r of rows) if (r.sent) console.log(`(${r.name}: the sender offered ${fmt(r.sent)}/s)`);
