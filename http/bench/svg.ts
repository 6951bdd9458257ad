/**
 * `paf bench --plot FILE`: the latency distribution as a stand-alone SVG. The percentile curve is
 * drawn on a "nines" x axis (0, 90, 99, 99.9 ... percent, i.e. log10(1 / (1 - p))), latency in
 * milliseconds on a linear y axis; p50, p90, p99, p99.9 and max are marked with their values, and
 * the caption gives the request count, requests/s and errors. Labels print the JSON's numbers
 * as they are, so the plot and the JSON can be checked against each other.
 */
import type { BenchReport } from "./schema.js";

const W = 860;
const H = 520;
const M = { left: 80, right: 150, top: 60, bottom: 96 };

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** A "nice" axis maximum and step (1, 2, 2.5, 5 x 10^k) with about `ticks` steps. */
function niceAxis(max: number, ticks = 5): { max: number; step: number } {
  if (!(max > 0)) return { max: 1, step: 0.2 };
  const raw = max / ticks;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw)!;
  return { max: Math.ceil(max / step - 1e-9) * step, step };
}

const nines = (percentile: number): number => (percentile >= 100 ? Infinity : Math.log10(100 / (100 - percentile)));
const num = (x: number): string => String(Math.round(x * 10) / 10);

export function renderSvg(r: BenchReport): string {
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const xNines = Math.max(3, Math.ceil(Math.log10(Math.max(10, r.completed))));
  const y = niceAxis(r.latencyMs.max * 1.05);
  const X = (percentile: number): number => M.left + (Math.min(nines(percentile), xNines) / xNines) * pw;
  const Y = (msv: number): number => M.top + ph - (msv / y.max) * ph;
  const o: string[] = [];
  o.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  o.push(`<title>paf bench latency: ${esc(r.method)} ${esc(r.url)}</title>`);
  o.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  const what = `${r.protocol}${r.tls ? " over TLS" : ""}, ${r.transport === "paf" ? "paf userspace stack" : "kernel TCP"}, ${r.options.clients} clients${r.protocol === "h2" ? ` x ${r.options.streams} streams` : ""}`;
  o.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">Latency by percentile: ${esc(r.method)} ${esc(r.url)}</text>`);
  o.push(`<text x="${W / 2}" y="44" text-anchor="middle" fill="#444">${esc(what)}</text>`);
  // Grid and y axis (milliseconds).
  o.push(`<g stroke="#ddd">`);
  for (let v = 0; v <= y.max + 1e-9; v += y.step) o.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${num(Y(v))}" y2="${num(Y(v))}"/>`);
  for (let k = 0; k <= xNines; k++) o.push(`<line x1="${num(M.left + (k / xNines) * pw)}" x2="${num(M.left + (k / xNines) * pw)}" y1="${M.top}" y2="${M.top + ph}"/>`);
  o.push(`</g>`);
  o.push(`<g stroke="black"><line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + ph}"/><line x1="${M.left}" y1="${M.top + ph}" x2="${M.left + pw}" y2="${M.top + ph}"/></g>`);
  o.push(`<g text-anchor="end">`);
  for (let v = 0; v <= y.max + 1e-9; v += y.step) o.push(`<text x="${M.left - 6}" y="${num(Y(v) + 4)}">${+v.toPrecision(6)}</text>`);
  o.push(`</g>`);
  o.push(`<text transform="translate(22 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">latency (ms)</text>`);
  // x axis: percentiles on the nines scale.
  o.push(`<g text-anchor="middle">`);
  for (let k = 0; k <= xNines; k++) {
    const p = 100 * (1 - 10 ** -k);
    o.push(`<text x="${num(M.left + (k / xNines) * pw)}" y="${M.top + ph + 18}">${+p.toPrecision(k + 2)}%</text>`);
  }
  o.push(`</g>`);
  o.push(`<text x="${M.left + pw / 2}" y="${M.top + ph + 40}" text-anchor="middle">percentile (log scale: each step is one more nine)</text>`);
  // The curve.
  if (r.percentiles.length) {
    const pts = r.percentiles.map((p) => `${num(X(p.percentile))},${num(Y(p.ms))}`).join(" ");
    o.push(`<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="${pts}"/>`);
  }
  // Markers with their values.
  const marks: Array<[string, number, number]> = [
    ["p50", 50, r.latencyMs.p50],
    ["p90", 90, r.latencyMs.p90],
    ["p99", 99, r.latencyMs.p99],
    ["p99.9", 99.9, r.latencyMs.p999],
    ["max", 100, r.latencyMs.max],
  ];
  o.push(`<g font-size="12">`);
  for (const [name, p, v] of marks) {
    const cx = num(X(p));
    const cy = num(Y(v));
    o.push(`<circle cx="${cx}" cy="${cy}" r="4" fill="#d62728"/>`);
    // Labels sit up-right of their point; max (at the right edge) gets its label to the left.
    const right = p >= 100;
    o.push(
      `<text x="${num(X(p) + (right ? -8 : 6))}" y="${num(Y(v) + (right ? 16 : -6))}"${right ? ' text-anchor="end"' : ""} fill="#d62728" stroke="white" stroke-width="3" paint-order="stroke">${name} ${v} ms</text>`,
    );
  }
  o.push(`</g>`);
  // Legend: the numbers, in one column at the right.
  o.push(`<g font-size="12">`);
  const lx = M.left + pw + 16;
  marks.forEach(([name, , v], i) => {
    o.push(`<text x="${lx}" y="${M.top + 16 + i * 18}">${name}: ${v} ms</text>`);
  });
  o.push(`<text x="${lx}" y="${M.top + 16 + marks.length * 18}">mean: ${r.latencyMs.mean} ms</text>`);
  o.push(`</g>`);
  // Caption.
  const errs = Object.entries(r.errors)
    .filter(([, n]) => n)
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
  o.push(
    `<text x="${M.left}" y="${H - 30}">${r.requests} requests (${r.completed} completed, ${r.failed} failed${errs ? `: ${esc(errs)}` : ""}) in ${r.durationSeconds.toFixed(2)} s, ${r.throughput.requestsPerSecond} req/s</text>`,
  );
  o.push(`<text x="${M.left}" y="${H - 12}" fill="#666">latency of completed requests, from request start to last body byte; paf bench, ${esc(r.startedAt)}</text>`);
  o.push(`</svg>`);
  return o.join("\n") + "\n";
}
