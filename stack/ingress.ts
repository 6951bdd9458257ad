/**
 * A stack's admission of received frames, as a tenant of a shared process: frames per second and
 * bytes per second, checked on the raw frame before any layer parses it, so traffic over the
 * stack's limits costs a few comparisons and a count. Under contention the rates are shared
 * fairly between sources (an IP source address with its protocol, or the ARP sender), so one
 * flooding source cannot take the stack's whole budget from the others (fairrate.ts).
 */
import { resolveOptions } from "./core/validate.js";
import { ADMIT, FairRate, NEED_SOURCE, OVER_RATE, SourceRate, addressKey } from "./core/fairrate.js";

export interface TenantOptions {
  /** Frames per second the stack takes in; more are dropped before parsing. Default 1,000,000. */
  packetsPerSec?: number;
  /**
   * Bytes per second (of frames) the stack takes in. Default 12,500,000,000 (100 Gbit/s): above
   * what one stack's receive path takes (a Reno sender into a TAP reached 29 Gbit/s), so that a
   * bulk transfer is not cut by it (at the 20 Gbit/s it was until 2026-12-03, one Reno sender
   * lost segments every few milliseconds); lower it to share a link between tenants.
   * `packetsPerSec` bounds the work.
   */
  bytesPerSec?: number;
  /** The burst the rates allow, as ms of the rate saved up. Default 100. */
  burstMs?: number;
  /**
   * While the stack is over half its burst (contended), the share of its rates (percent) one
   * source may take: an IPv4/IPv6 source address with its protocol, or an ARP sender. Default 50.
   */
  sourceSharePct?: number;
  /** Sources tracked for their shares (the least recently seen is forgotten). Default 1024. */
  maxSources?: number;
  /**
   * Frames per second any one source (an IPv4/IPv6 source address with its protocol) may send,
   * with `burstMs` of it saved up; 0 (the default): no such bound. Unlike `sourceSharePct` it holds
   * with or without contention. On a TAP it is enforced by the kernel (an eBPF filter, when the
   * process may load one: root), so a flood from one source costs the process nothing at all;
   * otherwise the stack drops before parsing. Counted in `drop_source_rate`.
   */
  sourcePacketsPerSec?: number;
  /**
   * CPU time (µs) the stack's input, with the application work it brings, may use per turn of
   * the event loop; beyond it the rest waits for a later turn (alone: the next one; while other
   * stacks of its scheduler have work too: until its credit is back). Default 1000.
   */
  cpuPerTurnUs?: number;
  /**
   * The share of one CPU (percent) the stack's input, with the application work it brings, may
   * use over time, with `burstMs` of it saved up, as cgroups' cpu.max bounds a group of
   * processes. Past it the stack is throttled: its input waits, frames held in the netif's bounded
   * queue (a TAP's kernel queue, a switch port's), until the time is back (counted in
   * `cpu_throttled` and `cpu_throttled_ms`). Unlike `cpuPerTurnUs` it holds whether other stacks
   * are busy or not, so a flooded tenant leaves the process idle time for the others' requests.
   * Timers and application work not brought by input are not bounded. Default 100 (no bound).
   */
  cpuPercent?: number;
}

export type TenantOptionsResolved = Required<TenantOptions>;

export function resolveTenantOptions(o?: TenantOptions): TenantOptionsResolved {
  return o === undefined ? DEFAULTS : resolve(o);
}

function resolve(o: TenantOptions): TenantOptionsResolved {
  return resolveOptions<TenantOptions>("limits.tenant", o, {
    packetsPerSec: [1_000_000, 1, 1e9],
    bytesPerSec: [12_500_000_000, 1500, 1e12],
    burstMs: [100, 1, 10_000],
    sourceSharePct: [50, 1, 100],
    maxSources: [1024, 1, 1 << 20],
    sourcePacketsPerSec: [0, 0, 10_000_000],
    cpuPerTurnUs: [1000, 10, 1_000_000],
    cpuPercent: [100, 1, 100],
  });
}

/** The defaults, resolved once (frozen, shared). */
const DEFAULTS: TenantOptionsResolved = Object.freeze(resolve({}));

/** The largest frame (a TSO super-frame and its headers): the byte burst always lets one through. */
const MAX_FRAME = 65535 + 14 + 4;

export class Ingress {
  private readonly packets: FairRate;
  private readonly bytes: FairRate;
  /** Frames dropped by each bound (plain numbers: a flood is counted at the cost of an add). */
  dropPacketRate = 0;
  dropByteRate = 0;
  dropSourceShare = 0;
  dropSourceRate = 0;
  /** The per-source bound, when the stack enforces it (the netif could not: see sourceBurst). */
  private readonly perSource: SourceRate | undefined;

  /** `sourceLimitHere`: enforce `sourcePacketsPerSec` (if set) here; false: the netif does. */
  constructor(o: TenantOptionsResolved, now: number, sourceLimitHere = true) {
    if (sourceLimitHere && o.sourcePacketsPerSec > 0) this.perSource = new SourceRate(o.sourcePacketsPerSec, sourceBurst(o), o.maxSources);
    const share = o.sourceSharePct / 100;
    this.packets = new FairRate(o.packetsPerSec, Math.max(1, (o.packetsPerSec * o.burstMs) / 1000), share, o.maxSources, now);
    this.bytes = new FairRate(o.bytesPerSec, Math.max(MAX_FRAME, (o.bytesPerSec * o.burstMs) / 1000), share, o.maxSources, now);
  }

  /** May this frame in? If not, counted by the bound that refused it (stats().tenant.drop_*). */
  admit(frame: Uint8Array, now: number): boolean {
    let src: number | undefined;
    if (this.perSource) {
      // As the kernel's filter does: IPv4 and IPv6 sources only (ARP and the rest pass).
      src = sourceOf(frame);
      if (isIpSource(src) && !this.perSource.take(src, now)) {
        this.dropSourceRate++;
        return false;
      }
    }
    let r = this.bytes.take(frame.length, now);
    if (r === NEED_SOURCE) r = this.bytes.take(frame.length, now, (src ??= sourceOf(frame)));
    if (r !== ADMIT) {
      if (r === OVER_RATE) this.dropByteRate++;
      else this.dropSourceShare++;
      return false;
    }
    r = this.packets.take(1, now);
    if (r === NEED_SOURCE) r = this.packets.take(1, now, src ?? sourceOf(frame));
    if (r !== ADMIT) {
      if (r === OVER_RATE) this.dropPacketRate++;
      else this.dropSourceShare++;
      return false;
    }
    return true;
  }
}

/** The frames one source may send at once under `sourcePacketsPerSec`: `burstMs` of the rate, at least one. */
export function sourceBurst(o: TenantOptionsResolved): number {
  return Math.max(1, Math.round((o.sourcePacketsPerSec * o.burstMs) / 1000));
}

/**
 * Who sent a frame, as a number, read at fixed offsets (no parsing): the IPv4 or IPv6 source
 * address with the protocol (next header) byte, the ARP sender's IPv4 address, else the EtherType.
 */
export function sourceOf(f: Uint8Array): number {
  if (f.length < 14) return 0;
  const type = (f[12]! << 8) | f[13]!;
  if (type === 0x0800 && f.length >= 34) return addressKey(f, 26, 4) * 256 + f[23]!;
  if (type === 0x86dd && f.length >= 54) return 2 ** 52 + (addressKey(f, 22, 16) - 2 ** 32) * 256 + f[20]!;
  if (type === 0x0806 && f.length >= 42) return 2 ** 51 + addressKey(f, 28, 4);
  return 2 ** 50 + type;
}

/** A sourceOf() key naming an IPv4 or IPv6 source (below 2^50, or from 2^52), not ARP or an EtherType. */
export function isIpSource(key: number): boolean {
  return key < 2 ** 50 || key >= 2 ** 52;
}
