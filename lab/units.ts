/**
 * The units of tc(8), for impairments written as on the command line: percentages ("3%"),
 * times ("40ms", "1.5s", "250us"), rates ("100mbit", "1gbit", "10mbps" = megabytes/s, SI: 1000)
 * and sizes ("32kb", "1500b", "64kbit", binary: 1024, as tc's sizes). Each throws a RangeError
 * that quotes the value.
 */
import { DEFAULT_RATE_QUEUE_LIMIT, DEFAULT_REORDER_DELAY_MS, type FaultSpec } from "../stack/netif/faulty.js";

/** "3%" or "0.03" -> 0.03 (a probability 0..1). */
export function parsePercent(v: string): number {
  const m = /^(\d+(?:\.\d+)?|\.\d+)(%?)$/.exec(v.trim());
  if (!m) throw new RangeError(`"${v}" is not a percentage (e.g. 3% or 0.03)`);
  const p = m[2] ? Number(m[1]) / 100 : Number(m[1]);
  if (p > 1) throw new RangeError(`"${v}" is more than 100%`);
  return p;
}

const TIME: Record<string, number> = { "": 1, ms: 1, msec: 1, s: 1000, sec: 1000, us: 0.001, usec: 0.001 };

/** "40ms", "1.5s", "250us", "40" (ms) -> milliseconds. */
export function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(v.trim());
  const unit = m ? TIME[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new RangeError(`"${v}" is not a time (e.g. 40ms, 1.5s, 250us)`);
  return Number(m[1]) * unit;
}

const RATE: Record<string, number> = { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9, tbit: 1e12, bps: 8, kbps: 8e3, mbps: 8e6, gbps: 8e9, tbps: 8e12 };

/** tc's rates: "100mbit" (bits/s), "10mbps" (bytes/s), "1000000" (bits/s) -> bits per second. */
export function parseRate(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(v.trim());
  const unit = m ? (m[2] === "" ? 1 : RATE[m[2]!.toLowerCase()]) : undefined;
  if (!m || unit === undefined) throw new RangeError(`"${v}" is not a rate (e.g. 100mbit, 1gbit, 500kbit; mbps is megabytes/s)`);
  const r = Number(m[1]) * unit;
  if (r <= 0) throw new RangeError(`"${v}": the rate must be more than 0`);
  return r;
}

const SIZE: Record<string, number> = { "": 1, b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, kbit: 1024 / 8, mbit: 1024 ** 2 / 8 };

/** tc's sizes: "32kb", "1500b", "1500", "64kbit" -> bytes. */
export function parseSize(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(v.trim());
  const unit = m ? SIZE[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new RangeError(`"${v}" is not a size (e.g. 1500b, 32kb, 1mb)`);
  return Math.round(Number(m[1]) * unit);
}

const pct = (p: number): string => `${+(p * 100).toFixed(4)}%`;
const rate = (bps: number): string => (bps >= 1e9 ? `${+(bps / 1e9).toFixed(3)}gbit` : bps >= 1e6 ? `${+(bps / 1e6).toFixed(3)}mbit` : bps >= 1e3 ? `${+(bps / 1e3).toFixed(3)}kbit` : `${bps}bit`);

/** A FaultSpec in tc's words, e.g. "loss 3% delay 40ms rate 100mbit"; "none" if it does nothing. */
export function describeFaults(s: FaultSpec): string {
  const out: string[] = [];
  if (s.drop) out.push(`loss ${pct(s.drop)}`);
  const ge = s.gilbertElliott;
  if (ge) out.push(`loss gemodel p ${pct(ge.p)} r ${pct(ge.r)} 1-h ${pct(ge.lossBad ?? 1)} 1-k ${pct(ge.lossGood ?? 0)}`);
  if (s.duplicate) out.push(`duplicate ${pct(s.duplicate)}`);
  if (s.reorder) out.push(`reorder ${pct(s.reorder)} (${s.reorderDelayMs ?? DEFAULT_REORDER_DELAY_MS}ms)`);
  if (s.corrupt) out.push(`corrupt ${pct(s.corrupt)}`);
  if (s.delayMs || s.jitterMs) out.push(`delay ${s.delayMs ?? 0}ms${s.jitterMs ? ` jitter ${s.jitterMs}ms` : ""}`);
  if (s.rateBps) out.push(`rate ${rate(s.rateBps)} burst ${s.burstBytes ?? 0}b queue ${s.queueLimit ?? DEFAULT_RATE_QUEUE_LIMIT}`);
  if (s.limit !== undefined) out.push(`limit ${s.limit}`);
  return out.length ? out.join(" ") : "none";
}
