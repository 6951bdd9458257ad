/**
 * IGMPv2 for a host (RFC 2236): multicast routers and snooping switches learn from our reports
 * which groups this stack listens to.
 *
 * - Joining a group sends a Version 2 Membership Report at once, repeated `robustness - 1` times
 *   at random within the Unsolicited Report Interval (§3: "repeat once or twice after short
 *   delays"); leaving sends a Leave Group to 224.0.0.2 if we were the last to report (§3, §6).
 * - A query (general: group 0, or group-specific) starts, per group, a timer random in
 *   [0, Max Response Time]; a running timer is only shortened (§3). When it fires we report.
 * - Another host's report for the group while our timer runs stops it: one report per link is
 *   enough, and we are not the last reporter then (the Leave is theirs to send).
 * - A version 1 query (Max Response Time 0) means a version 1 router: for the Version 1 Router
 *   Present Timeout (§4, 400 s) reports are version 1 ones and no Leave is sent.
 * Messages leave with TTL 1 and the Router Alert option (§2), never for 224.0.0.1 (§6).
 */
import type { IpPacket, UpperProtocol, GroupListener } from "./ip.js";
import type { Timer, TimerQueue } from "./core/timers.js";
import type { Random } from "./core/random.js";
import { Counters } from "./core/stats.js";
import { resolveOptions } from "./core/validate.js";
import { IGMP, IGMP_LEAVE, IGMP_QUERY, IGMP_V1_REPORT, IGMP_V2_REPORT, IPPROTO_IGMP, emitIgmp, parseIgmp } from "./wire/igmp.js";
import { IPV4_ROUTER_ALERT_HEADER_LEN, emitIpv4 } from "./wire/ipv4.js";
import { ETH } from "./wire/ethernet.js";
import { IPV4_ANY, copyBytes, ipv4MulticastMac, ipv4ToU32, isZero, parseIPv4 } from "./wire/addr.js";

export interface IgmpOptions {
  /** Reports sent when joining a group (the Robustness Variable, §8.1). Default 2. */
  robustness?: number;
  /** Unsolicited Report Interval (§8.10): the join report is repeated at random within it. Default 10000 ms. */
  unsolicitedReportIntervalMs?: number;
  /** Version 1 Router Present Timeout (§8.11). Default 400000 ms. */
  v1RouterPresentTimeoutMs?: number;
}

export const IGMP_OPTIONS = {
  robustness: [2, 1, 10],
  unsolicitedReportIntervalMs: [10_000, 0, 3_600_000],
  v1RouterPresentTimeoutMs: [400_000, 1000, 3_600_000],
} as const;

/** What IGMP needs of the IPv4 layer. */
export interface IgmpIp {
  /** Our primary address (the source of reports; 0.0.0.0 without one). */
  readonly address: Uint8Array | undefined;
  sendRaw(frame: Uint8Array, dstMac: Uint8Array): boolean;
}

interface Membership {
  group: Uint8Array;
  timer: Timer;
  /** Unsolicited reports still to send after a join. */
  unsolicited: number;
  /** We sent the last report heard for this group (so the Leave is ours, §3). */
  lastReporter: boolean;
}

const ALL_ROUTERS = parseIPv4("224.0.0.2");

/** The defaults, resolved once (frozen: shared by every stack made without limits.igmp). */
const DEFAULTS: Required<IgmpOptions> = Object.freeze(resolveOptions<IgmpOptions>("limits.igmp", {}, IGMP_OPTIONS));

export class Igmp implements UpperProtocol, GroupListener {
  readonly counters = new Counters("igmp");
  /** Made at the first join: an idle stack (of thousands) holds none. */
  private groupsMap: Map<number, Membership> | undefined;
  private get groups(): Map<number, Membership> {
    return (this.groupsMap ??= new Map());
  }
  private readonly o: Required<IgmpOptions>;
  /** Until when a version 1 router is assumed present (clock ms). */
  private v1Until = -Infinity;

  constructor(
    private readonly ip: IgmpIp,
    private readonly timers: TimerQueue,
    private readonly random: Random,
    opts: IgmpOptions = {},
  ) {
    this.o = Object.keys(opts).length === 0 ? DEFAULTS : resolveOptions<IgmpOptions>("limits.igmp", opts, IGMP_OPTIONS);
  }

  joined(g: Uint8Array): void {
    const k = ipv4ToU32(g);
    if (this.groupsMap?.has(k)) return;
    const m: Membership = { group: copyBytes(g), timer: undefined as unknown as Timer, unsolicited: this.o.robustness - 1, lastReporter: false };
    m.timer = this.timers.timer(() => this.onTimer(m));
    this.groups.set(k, m);
    this.report(m);
    if (m.unsolicited > 0) this.timers.arm(m.timer, this.randomDelay(this.o.unsolicitedReportIntervalMs));
  }

  left(g: Uint8Array): void {
    const k = ipv4ToU32(g);
    const m = this.groupsMap?.get(k);
    if (!m) return;
    this.timers.cancel(m.timer);
    this.groups.delete(k);
    if (m.lastReporter && !this.v1RouterPresent()) {
      this.send(IGMP_LEAVE, ALL_ROUTERS, m.group);
      this.counters.inc("leaves_sent");
    }
  }

  input(pkt: IpPacket): void {
    const c = this.counters;
    const r = parseIgmp(pkt.payload);
    if (typeof r === "string") return c.drop(r);
    switch (r.type) {
      case IGMP_QUERY:
        return this.onQuery(r.maxResp, r.group, pkt.payload.length);
      case IGMP_V1_REPORT:
      case IGMP_V2_REPORT:
        return this.onReport(r.group);
      default:
        return c.drop("unknown_type"); // leaves (for routers), version 3 reports
    }
  }

  close(): void {
    for (const m of this.groupsMap?.values() ?? []) this.timers.cancel(m.timer);
    this.groupsMap?.clear();
  }

  private onQuery(maxResp: number, group: Uint8Array, length: number): void {
    this.counters.inc("queries_received");
    // §4: Max Response Time 0 in an 8-byte query is a version 1 router (its queries wait 10 s).
    if (maxResp === 0 && length === IGMP.LEN) {
      this.v1Until = this.timers.now() + this.o.v1RouterPresentTimeoutMs;
      maxResp = 100;
    }
    // A version 3 query (12 bytes or more) with a Max Resp Code >= 128 uses a floating-point form (RFC 3376 §4.1.1).
    if (length >= 12 && maxResp >= 128) maxResp = ((maxResp & 0x0f) | 0x10) << (((maxResp >> 4) & 0x07) + 3);
    const limitMs = maxResp * 100;
    if (isZero(group)) {
      for (const m of this.groupsMap?.values() ?? []) this.answerWithin(m, limitMs);
      return;
    }
    const m = this.groupsMap?.get(ipv4ToU32(group));
    if (m) this.answerWithin(m, limitMs);
  }

  /** §3: a timer random in [0, limit], unless one already runs that fires sooner. */
  private answerWithin(m: Membership, limitMs: number): void {
    const delay = this.randomDelay(limitMs);
    if (m.timer.armed && m.timer.deadline - this.timers.now() <= delay) return;
    this.timers.arm(m.timer, delay);
  }

  private onReport(group: Uint8Array): void {
    const m = this.groupsMap?.get(ipv4ToU32(group));
    if (!m) return;
    if (m.timer.armed) {
      this.timers.cancel(m.timer);
      m.unsolicited = 0;
      this.counters.inc("reports_suppressed");
    }
    m.lastReporter = false;
  }

  private onTimer(m: Membership): void {
    this.report(m);
    if (m.unsolicited > 0 && --m.unsolicited > 0) this.timers.arm(m.timer, this.randomDelay(this.o.unsolicitedReportIntervalMs));
  }

  private report(m: Membership): void {
    const v1 = this.v1RouterPresent();
    this.send(v1 ? IGMP_V1_REPORT : IGMP_V2_REPORT, m.group, m.group);
    m.lastReporter = true;
    this.counters.inc(v1 ? "v1_reports_sent" : "reports_sent");
  }

  private v1RouterPresent(): boolean {
    return this.timers.now() < this.v1Until;
  }

  private randomDelay(maxMs: number): number {
    return maxMs <= 0 ? 0 : this.random.u32() % (maxMs + 1);
  }

  /** Reports go to the group itself, leaves to all-routers: TTL 1, Router Alert, DF, ident 0. */
  private send(type: number, dst: Uint8Array, group: Uint8Array): void {
    const hl = IPV4_ROUTER_ALERT_HEADER_LEN;
    const f = new Uint8Array(ETH.HEADER_LEN + hl + IGMP.LEN);
    emitIgmp(f, ETH.HEADER_LEN + hl, type, 0, group);
    // TOS 0xc0 (Internetwork Control), as Linux sends its IGMP.
    emitIpv4(f, ETH.HEADER_LEN, { ident: 0, ttl: 1, tos: 0xc0, dontFragment: true, protocol: IPPROTO_IGMP, src: this.ip.address ?? IPV4_ANY, dst, payloadLen: IGMP.LEN, routerAlert: true });
    this.ip.sendRaw(f, ipv4MulticastMac(dst));
  }
}
