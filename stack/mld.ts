/**
 * MLDv2 for a host (RFC 3810), with the version 1 compatibility a host needs (§8.2.1, RFC 2710):
 * multicast routers and snooping switches learn which IPv6 groups this stack listens to. Every
 * group the IPv6 layer joins is reported, solicited-node groups included (a snooping switch
 * would otherwise keep neighbour solicitations from us), except ff02::1 and groups of node-local
 * or reserved scope (§6).
 *
 * - A join or a leave is a State Change Report (CHANGE_TO_EXCLUDE / CHANGE_TO_INCLUDE, no
 *   sources) sent at once and `robustness - 1` more times at random within the Unsolicited Report
 *   Interval (§6.1).
 * - A general query arms one interface timer random in [0, Maximum Response Delay]; when it
 *   fires one Current State Report lists every group as MODE_IS_EXCLUDE (§6.2, rule 1). A group
 *   specific query is answered for that group alone, unless the interface answer comes sooner.
 * - A version 1 query switches to version 1 for the Older Version Querier Present Timeout
 *   (§8.2.1, 260 s): reports per group to the group, Done to ff02::2 on leave, and a version 1
 *   report heard from another node stops our pending one (RFC 2710 §4).
 * Messages leave with hop limit 1 and a hop-by-hop Router Alert (§5), from our link-local
 * address, or from :: while it is still tentative (§5.2.13, RFC 3590 §4).
 */
import type { GroupListener, IpPacket } from "./ip.js";
import type { Timer, TimerQueue } from "./core/timers.js";
import type { Random } from "./core/random.js";
import { Counters } from "./core/stats.js";
import { resolveOptions } from "./core/validate.js";
import {
  ALL_MLDV2_ROUTERS,
  CHANGE_TO_EXCLUDE,
  CHANGE_TO_INCLUDE,
  MLD_QUERY,
  MLD_V1_DONE,
  MLD_V1_LEN,
  MLD_V1_REPORT,
  MLD_V2_RECORD_LEN,
  MLD_V2_REPORT,
  MODE_IS_EXCLUDE,
  emitMldV2Records,
  parseMldQuery,
} from "./wire/mld.js";
import { IPV6, NH_HOP_BY_HOP, emitIpv6, emitRouterAlertHopByHop } from "./wire/ipv6.js";
import { ETH } from "./wire/ethernet.js";
import { IPPROTO_ICMPV6, emitIcmp } from "./wire/icmp.js";
import { ALL_NODES, ALL_ROUTERS, IPV6_ANY, bytesEqual, copyBytes, ipKey, ipv6MulticastMac, isIPv6LinkLocal, isZero } from "./wire/addr.js";

export interface MldOptions {
  /** Transmissions of each State Change Report (the Robustness Variable, §9.1). Default 2. */
  robustness?: number;
  /** Unsolicited Report Interval (§9.11). Default 1000 ms. */
  unsolicitedReportIntervalMs?: number;
  /** Older Version Querier Present Timeout (§9.12: robustness x query interval + response interval). Default 260000 ms. */
  olderVersionQuerierPresentMs?: number;
}

export const MLD_OPTIONS = {
  robustness: [2, 1, 10],
  unsolicitedReportIntervalMs: [1000, 0, 3_600_000],
  olderVersionQuerierPresentMs: [260_000, 1000, 3_600_000],
} as const;

/** What MLD needs of the IPv6 layer. */
export interface MldIp {
  /** Our preferred link-local address, if any yet. */
  linkLocal(): Uint8Array | undefined;
  sendRaw(frame: Uint8Array, dstMac: Uint8Array | undefined, nextHop: Uint8Array | undefined): boolean;
}

interface Listener {
  group: Uint8Array;
  timer: Timer;
  /** State Change Report transmissions still due. */
  changes: number;
  /** The pending change: CHANGE_TO_EXCLUDE (joined) or CHANGE_TO_INCLUDE (left, the entry stays until sent). */
  change: number;
  /** A query asked about this group: a Current State Record is due when the timer fires. */
  queried: boolean;
}

/** Records in one report: it must fit the IPv6 minimum MTU with the hop-by-hop header (§5.2.15). */
const MAX_RECORDS = Math.floor((1280 - IPV6.HEADER_LEN - 8 - 8) / MLD_V2_RECORD_LEN);

export class Mld implements GroupListener {
  readonly counters = new Counters("mld");
  private readonly listeners = new Map<string, Listener>();
  private readonly o: Required<MldOptions>;
  private readonly generalTimer: Timer;
  /** Until when a version 1 querier is assumed present (clock ms). */
  private v1Until = -Infinity;

  constructor(
    private readonly ip: MldIp,
    private readonly timers: TimerQueue,
    private readonly random: Random,
    opts: MldOptions = {},
  ) {
    this.o = resolveOptions<MldOptions>("limits.mld", opts, MLD_OPTIONS);
    this.generalTimer = timers.timer(() => this.reportAll());
  }

  joined(g: Uint8Array): void {
    if (!reportable(g)) return;
    const k = ipKey(g);
    let l = this.listeners.get(k);
    if (!l) {
      const entry: Listener = { group: copyBytes(g), timer: undefined as unknown as Timer, changes: 0, change: CHANGE_TO_EXCLUDE, queried: false };
      entry.timer = this.timers.timer(() => this.onTimer(entry));
      this.listeners.set(k, entry);
      l = entry;
    }
    this.stateChange(l, CHANGE_TO_EXCLUDE);
  }

  left(g: Uint8Array): void {
    const l = this.listeners.get(ipKey(g));
    if (!l) return;
    if (this.v1()) {
      this.timers.cancel(l.timer);
      this.listeners.delete(ipKey(g));
      this.sendV1(MLD_V1_DONE, ALL_ROUTERS, l.group);
      this.counters.inc("v1_dones_sent");
      return;
    }
    this.stateChange(l, CHANGE_TO_INCLUDE);
  }

  /** An MLD message (ICMPv6 type 130-132 or 143) whose checksum was verified. */
  input(type: number, pkt: IpPacket): void {
    const c = this.counters;
    if (type === MLD_QUERY) {
      // §5.1.14 and §6: queries come from a link-local address with hop limit 1.
      if (!isIPv6LinkLocal(pkt.src)) return c.drop("query_not_link_local");
      if (pkt.ttl !== 1) return c.drop("query_hop_limit");
      const q = parseMldQuery(pkt.payload);
      if (q === "truncated") return c.drop("truncated");
      c.inc(q.version === 1 ? "v1_queries_received" : "queries_received");
      return this.onQuery(q.version, q.maxRespMs, q.group);
    }
    if (type === MLD_V1_REPORT && pkt.payload.length >= MLD_V1_LEN && this.v1()) {
      // RFC 2710 §4: another listener reported: ours is not needed.
      const l = this.listeners.get(ipKey(pkt.payload.subarray(8, 24)));
      if (l?.queried && l.changes === 0) {
        this.timers.cancel(l.timer);
        l.queried = false;
        c.inc("reports_suppressed");
      }
    }
    // Version 2 reports are never suppressed; Done messages are for routers.
  }

  close(): void {
    this.timers.cancel(this.generalTimer);
    for (const l of this.listeners.values()) this.timers.cancel(l.timer);
    this.listeners.clear();
  }

  private stateChange(l: Listener, change: number): void {
    l.change = change;
    l.changes = this.o.robustness;
    this.onTimer(l);
  }

  private onQuery(version: 1 | 2, maxRespMs: number, group: Uint8Array): void {
    const now = this.timers.now();
    if (version === 1) this.v1Until = now + this.o.olderVersionQuerierPresentMs;
    const delay = this.randomDelay(maxRespMs);
    if (isZero(group)) {
      if (version === 2) {
        // §6.2 rule 1: one interface timer, shortened only.
        if (!this.generalTimer.armed || this.generalTimer.deadline - now > delay) this.timers.arm(this.generalTimer, delay);
        return;
      }
      for (const l of this.listeners.values()) if (l.change === CHANGE_TO_EXCLUDE) this.askAbout(l, this.randomDelay(maxRespMs));
      return;
    }
    const l = this.listeners.get(ipKey(group));
    if (!l || l.change !== CHANGE_TO_EXCLUDE) return;
    // §6.2 rule 2: a pending interface answer that comes sooner covers this group too.
    if (version === 2 && this.generalTimer.armed && this.generalTimer.deadline - now <= delay) return;
    this.askAbout(l, delay);
  }

  private askAbout(l: Listener, delay: number): void {
    l.queried = true;
    if (l.timer.armed && l.timer.deadline - this.timers.now() <= delay) return;
    this.timers.arm(l.timer, delay);
  }

  /** Send what is due for one group: a State Change Report (retransmitted as needed), else a Current State Report. */
  private onTimer(l: Listener): void {
    const v1 = this.v1();
    if (l.changes > 0) {
      l.changes--;
      l.queried = false;
      if (v1) {
        if (l.change === CHANGE_TO_EXCLUDE) this.sendV1(MLD_V1_REPORT, l.group, l.group);
      } else this.sendV2([{ type: l.change, group: l.group }]);
      this.counters.inc("state_changes_sent");
      if (l.changes > 0) return this.timers.arm(l.timer, this.randomDelay(this.o.unsolicitedReportIntervalMs));
      if (l.change === CHANGE_TO_INCLUDE) this.listeners.delete(ipKey(l.group));
      return;
    }
    if (!l.queried) return;
    l.queried = false;
    if (v1) this.sendV1(MLD_V1_REPORT, l.group, l.group);
    else this.sendV2([{ type: MODE_IS_EXCLUDE, group: l.group }]);
    this.counters.inc("reports_sent");
  }

  /** The interface timer fired: every group we listen to, in as few reports as fit. */
  private reportAll(): void {
    if (this.v1()) return;
    const recs: Array<{ type: number; group: Uint8Array }> = [];
    for (const l of this.listeners.values()) if (l.change === CHANGE_TO_EXCLUDE) recs.push({ type: MODE_IS_EXCLUDE, group: l.group });
    for (let i = 0; i < recs.length; i += MAX_RECORDS) {
      this.sendV2(recs.slice(i, i + MAX_RECORDS));
      this.counters.inc("reports_sent");
    }
  }

  private v1(): boolean {
    return this.timers.now() < this.v1Until;
  }

  private randomDelay(maxMs: number): number {
    return maxMs <= 0 ? 0 : this.random.u32() % (maxMs + 1);
  }

  private sendV2(records: Array<{ type: number; group: Uint8Array }>): void {
    const f = this.frame(8 + records.length * MLD_V2_RECORD_LEN, ALL_MLDV2_ROUTERS);
    const m = ETH.HEADER_LEN + IPV6.HEADER_LEN + 8;
    const len = emitMldV2Records(f, m, records);
    this.finish(f, MLD_V2_REPORT, records.length, len, ALL_MLDV2_ROUTERS);
  }

  private sendV1(type: number, dst: Uint8Array, group: Uint8Array): void {
    const f = this.frame(MLD_V1_LEN, dst);
    f.set(group, ETH.HEADER_LEN + IPV6.HEADER_LEN + 8 + 8);
    this.finish(f, type, 0, MLD_V1_LEN, dst);
  }

  private frame(len: number, dst: Uint8Array): Uint8Array {
    const f = new Uint8Array(ETH.HEADER_LEN + IPV6.HEADER_LEN + 8 + len);
    emitIpv6(f, ETH.HEADER_LEN, { nextHeader: NH_HOP_BY_HOP, hopLimit: 1, src: this.source(), dst, payloadLen: 8 + len });
    emitRouterAlertHopByHop(f, ETH.HEADER_LEN + IPV6.HEADER_LEN, IPPROTO_ICMPV6, 0);
    return f;
  }

  private finish(f: Uint8Array, type: number, rest: number, len: number, dst: Uint8Array): void {
    const src = f.subarray(ETH.HEADER_LEN + 8, ETH.HEADER_LEN + 24);
    emitIcmp(f, ETH.HEADER_LEN + IPV6.HEADER_LEN + 8, len, type, 0, rest, src, dst);
    this.ip.sendRaw(f, ipv6MulticastMac(dst), undefined);
  }

  private source(): Uint8Array {
    return this.ip.linkLocal() ?? IPV6_ANY;
  }
}

/** §6: never ff02::1, never node-local (scope 1) or reserved (scope 0) groups. */
function reportable(g: Uint8Array): boolean {
  return (g[1]! & 0x0f) > 1 && !bytesEqual(g, ALL_NODES);
}
