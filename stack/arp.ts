/**
 * ARP (RFC 826): answers requests for our address, announces it (RFC 5227 §2.3), and resolves
 * IPv4 next hops through the shared neighbour cache (neighbour.ts: the same states, bounds and
 * failure report as IPv6's NDP). RFC 826's merge rule: a packet updates an existing entry for
 * its sender; only a packet for us creates one. A reply for us confirms reachability; a request
 * or a gratuitous ARP only makes the entry STALE (Linux's practice), so unsolicited ARP alone
 * never marks a neighbour reachable. Requests are broadcast; NUD probes are unicast to the MAC
 * we hold. The layer answers for every address the IPv4 layer gives it (secondary addresses too),
 * and probes an address before a DHCP client takes it (RFC 5227 §2.1: address conflict detection).
 */
import type { EthernetLayer } from "./ethernet.js";
import type { TimerQueue } from "./core/timers.js";
import type { TxMeta } from "./netif/netif.js";
import type { Random } from "./core/random.js";
import type { Timer } from "./core/timers.js";
import { Counters } from "./core/stats.js";
import { ARP_REPLY, ARP_REQUEST, ARP, emitArp, parseArp } from "./wire/arp.js";
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETH } from "./wire/ethernet.js";
import { BROADCAST_MAC, IPV4_ANY, ZERO_MAC, copyBytes, ipv4ToU32, u32ToIPv4 } from "./wire/addr.js";
import { NEIGHBOUR_OPTIONS, NeighbourCache, type NeighbourEntry, type NeighbourLink, type NeighbourOptions } from "./neighbour.js";
import { resolveOptions } from "./core/validate.js";

/** The IPv4 neighbour cache's bounds and timers (see NeighbourOptions for the defaults). */
export type ArpOptions = NeighbourOptions;

/** RFC 5227 §1.1's probe timing (the RFC's constants are the defaults where they are used). */
export interface ArpProbeTiming {
  /** Random wait before the first probe, up to this (PROBE_WAIT, 1 s). */
  probeWaitMs: number;
  /** Probes sent (PROBE_NUM, 3). */
  probes: number;
  /** Spacing between probes, random in [min, max] (PROBE_MIN 1 s, PROBE_MAX 2 s). */
  probeMinMs: number;
  probeMaxMs: number;
  /** Wait after the last probe before the address is deemed free (ANNOUNCE_WAIT, 2 s). */
  announceWaitMs: number;
}

interface OwnAddress {
  u32: number;
  bytes: Uint8Array;
  mask: number;
}

interface Probe {
  ip: number;
  sent: number;
  timer: Timer;
  done: (conflict: boolean) => void;
}

/** The neighbour options' defaults, resolved once (frozen: shared by every stack made without limits.arp). */
const DEFAULTS: Required<ArpOptions> = Object.freeze(resolveOptions<ArpOptions>("limits.arp", {}, NEIGHBOUR_OPTIONS));

/** IPv4 next hops are their own cache keys and copies (a u32). */
const sameU32 = (ip: number): number => ip;

/** What the neighbour cache needs of ARP: one object per stack, not a closure per need. */
class ArpLink implements NeighbourLink<number> {
  constructor(
    private readonly arp: ArpLayer,
    private readonly eth: EthernetLayer,
    readonly unreachable: (frames: Uint8Array[]) => void,
  ) {}
  keyOf(ip: number): number {
    return ip;
  }
  solicit(ip: number, mac: Uint8Array | undefined): void {
    this.arp.solicit(ip, mac);
  }
  send(frame: Uint8Array, mac: Uint8Array, meta: TxMeta | undefined): boolean {
    return this.eth.send(frame, mac, ETHERTYPE_IPV4, meta);
  }
}

export class ArpLayer {
  readonly counters = new Counters("arp");
  private readonly cache: NeighbourCache<number>;
  /** Replaced on every change, never changed in place (exactly sized). */
  private own: readonly OwnAddress[] = [];
  /** Address probes in progress (made at the first probe). */
  private probes: Set<Probe> | undefined;

  constructor(
    private readonly eth: EthernetLayer,
    private readonly timers: TimerQueue,
    private readonly random: Random,
    /** Packets that never left because their next hop did not answer (reported to their senders). */
    unreachable: (frames: Uint8Array[]) => void,
    opts: ArpOptions = {},
  ) {
    const o = opts === undefined || Object.keys(opts).length === 0 ? DEFAULTS : resolveOptions<ArpOptions>("limits.arp", opts, NEIGHBOUR_OPTIONS);
    this.cache = new NeighbourCache<number>(new ArpLink(this, eth, unreachable), sameU32, timers, random, this.counters, o);
  }

  /** The neighbour cache asks who has `ip` (broadcast), or checks `mac` still does (a unicast NUD probe). */
  solicit(ip: number, mac: Uint8Array | undefined): void {
    this.sendArp(ARP_REQUEST, mac ?? BROADCAST_MAC, ZERO_MAC, u32ToIPv4(ip), this.sourceFor(ip));
  }

  /**
   * Answer for `ip` from now on, and announce it with a gratuitous ARP (RFC 5227 §2.3). `ip` is
   * kept, not copied: the IPv4 layer gives its own copy, which it never changes.
   */
  addAddress(ip: Uint8Array, prefixLength: number): void {
    const mask = prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
    this.own = this.own.concat({ u32: ipv4ToU32(ip), bytes: ip, mask });
    this.sendArp(ARP_REQUEST, BROADCAST_MAC, ZERO_MAC, ip, ip);
  }

  removeAddress(ip: Uint8Array): void {
    const u = ipv4ToU32(ip);
    this.own = this.own.filter((a) => a.u32 !== u);
  }

  /**
   * RFC 5227 §2.1.1: probe for `ip` (ARP requests from 0.0.0.0) before using it. `done(true)` as
   * soon as another host shows it holds the address (any ARP from it, or its own probe for it);
   * `done(false)` when `announceWaitMs` passed after the last probe in silence. Returns a cancel.
   */
  probe(ip: Uint8Array, t: ArpProbeTiming, done: (conflict: boolean) => void): () => void {
    const target = copyBytes(ip);
    const p: Probe = { ip: ipv4ToU32(ip), sent: 0, done, timer: undefined as unknown as Timer };
    const between = (lo: number, hi: number) => lo + (hi > lo ? this.random.u32() % (hi - lo + 1) : 0);
    p.timer = this.timers.timer(() => {
      if (p.sent >= t.probes) {
        this.probes?.delete(p);
        return done(false);
      }
      p.sent++;
      this.counters.inc("probes_sent");
      this.sendArp(ARP_REQUEST, BROADCAST_MAC, ZERO_MAC, target, IPV4_ANY);
      this.timers.arm(p.timer, p.sent < t.probes ? between(t.probeMinMs, t.probeMaxMs) : t.announceWaitMs);
    });
    (this.probes ??= new Set()).add(p);
    this.timers.arm(p.timer, between(0, t.probeWaitMs));
    return () => {
      this.timers.cancel(p.timer);
      this.probes?.delete(p);
    };
  }

  /** A snapshot of the cache for inspection (`paf` stats, tests). */
  entries(): NeighbourEntry<number>[] {
    return this.cache.entries();
  }

  entry(ip: number): NeighbourEntry<number> | undefined {
    return this.cache.get(ip);
  }

  /**
   * Send an IPv4 frame (Ethernet header space reserved) to next hop `ip`: at once if its MAC is
   * known, otherwise queued while it is resolved.
   */
  output(ip: number, frame: Uint8Array, meta?: TxMeta): boolean {
    return this.cache.output(ip, frame, meta);
  }

  close(): void {
    this.cache.close();
    if (!this.probes) return;
    for (const p of this.probes) this.timers.cancel(p.timer);
    this.probes.clear();
  }

  private ownAddress(u: number): OwnAddress | undefined {
    const a = this.own;
    for (let i = 0; i < a.length; i++) if (a[i]!.u32 === u) return a[i];
    return undefined;
  }

  /** The address to ask from: one on the target's subnet, else the first; 0.0.0.0 with none. */
  private sourceFor(ip: number): Uint8Array {
    for (const a of this.own) if ((ip & a.mask) >>> 0 === (a.u32 & a.mask) >>> 0) return a.bytes;
    return this.own[0]?.bytes ?? IPV4_ANY;
  }

  /** An ARP packet (the Ethernet layer hands over the payload). */
  input(p: Uint8Array): void {
    const c = this.counters;
    const r = parseArp(p);
    if (typeof r === "string") return c.drop(r);
    c.inc("rx_" + (r.op === ARP_REQUEST ? "requests" : r.op === ARP_REPLY ? "replies" : "other"));
    if (r.sha[0]! & 1) return c.drop("multicast_sender");
    const spa = ipv4ToU32(r.spa);
    const tpa = ipv4ToU32(r.tpa);
    if (this.probes !== undefined && this.probes.size > 0) this.checkProbes(r.op, spa, tpa);
    if (spa !== 0 && this.ownAddress(spa)) {
      // Someone else claims our address (RFC 5227 conflict); we keep it but count it.
      c.inc("address_conflict");
      return;
    }
    const forUs = tpa !== 0 && this.ownAddress(tpa) !== undefined;
    if (spa !== 0) this.cache.update(spa, r.sha, { solicited: forUs && r.op === ARP_REPLY, override: true, create: forUs });
    if (forUs && r.op === ARP_REQUEST) {
      this.sendArp(ARP_REPLY, r.sha, r.sha, r.spa, r.tpa);
      c.inc("replies_sent");
    }
  }

  /**
   * RFC 5227 §2.1.1: while probing, any ARP whose sender is the probed address, or another
   * host's probe for it (sender 0.0.0.0; our own never reach us), is a conflict.
   */
  private checkProbes(op: number, spa: number, tpa: number): void {
    const probes = this.probes!;
    for (const p of probes) {
      if (spa === p.ip || (spa === 0 && op === ARP_REQUEST && tpa === p.ip)) {
        this.timers.cancel(p.timer);
        probes.delete(p);
        this.counters.inc("probe_conflicts");
        p.done(true);
      }
    }
  }

  private sendArp(op: number, ethDst: Uint8Array, tha: Uint8Array, tpa: Uint8Array, spa: Uint8Array): void {
    const frame = new Uint8Array(ETH.HEADER_LEN + ARP.LEN + 18); // pad to the 60-byte minimum
    emitArp(frame.subarray(ETH.HEADER_LEN), { op, sha: this.eth.mac, spa, tha, tpa });
    this.eth.send(frame, ethDst, ETHERTYPE_ARP);
  }
}
