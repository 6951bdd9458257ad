/**
 * Neighbor Discovery (RFC 4861) and stateless autoconfiguration (RFC 4862) for a host:
 * address resolution and neighbour unreachability detection through the shared neighbour cache
 * (neighbour.ts: states, bounded queues, failure reports, the same code as ARP's), answering
 * solicitations, router solicitation and advertisement processing (default routers, on-link
 * prefixes, MTU, hop limit), SLAAC addresses, and duplicate address detection for every address
 * before it is used.
 */
import { EventEmitter } from "node:events";
import type { Ipv6Layer, Ipv6Address, NeighbourResolver } from "./ipv6.js";
import type { EthernetLayer } from "./ethernet.js";
import type { TimerQueue, Timer } from "./core/timers.js";
import type { Random } from "./core/random.js";
import type { IpPacket } from "./ip.js";
import type { TxMeta } from "./netif/netif.js";
import { Counters } from "./core/stats.js";
import { emitIpv6, IPV6 } from "./wire/ipv6.js";
import { ETH, ETHERTYPE_IPV6 } from "./wire/ethernet.js";
import { ICMPV6_NEIGHBOR_ADVERT, ICMPV6_NEIGHBOR_SOLICIT, ICMPV6_ROUTER_ADVERT, ICMPV6_ROUTER_SOLICIT, IPPROTO_ICMPV6, emitIcmp } from "./wire/icmp.js";
import { NDP_OPTIONS_OFFSET, NDP_OPT_SOURCE_LLADDR, NDP_OPT_TARGET_LLADDR, emitLladdrOption, parseNdpOptions, parseRouterAdvert } from "./wire/ndp.js";
import { ALL_NODES, ALL_ROUTERS, IPV6_ANY, bytesEqual, copyBytes, eui64, formatIPv6, inPrefix, ipKey, ipv6MulticastMac, isIPv6LinkLocal, isIPv6Multicast, isZero, solicitedNode } from "./wire/addr.js";
import { NEIGHBOUR_OPTIONS, NeighbourCache, type NeighbourOptions, type NeighbourState } from "./neighbour.js";
import { resolveOptions } from "./core/validate.js";

export type { NeighbourState };

/** NDP's bounds and timers: the IPv6 neighbour cache's (NeighbourOptions), then these. */
export interface NdpOptions extends NeighbourOptions {
  /** DupAddrDetectTransmits (RFC 4862 §5.1); 0 disables DAD. Default 1. */
  dadTransmits?: number;
  /** Router solicitations sent at start (§6.3.7). Default 3. */
  routerSolicitations?: number;
  /** Interval between them (ms). Default 4000. */
  routerSolicitationIntervalMs?: number;
  /** Default routers remembered. Default 8. */
  maxRouters?: number;
  /** SLAAC addresses formed at most. Default 16. */
  maxSlaacAddresses?: number;
}

interface Router {
  ip: Uint8Array;
  until: number;
}

export class Ndp extends EventEmitter implements NeighbourResolver {
  readonly counters = new Counters("ndp");
  private readonly cache: NeighbourCache<Uint8Array>;
  private readonly routers: Router[] = [];
  private readonly o: Required<NdpOptions>;
  private retransMs: number;
  private readonly dadTimers = new Map<Ipv6Address, { timer: Timer; sent: number }>();
  private rsTimer: Timer | undefined;
  private rsSent = 0;
  private closed = false;
  /** Form addresses from RA prefixes (RFC 4862 SLAAC). */
  private readonly slaac: boolean;

  constructor(
    private readonly ip: Ipv6Layer,
    private readonly eth: EthernetLayer,
    private readonly timers: TimerQueue,
    random: Random,
    /** Packets that never left because their next hop did not answer (reported to their senders). */
    unreachable: (frames: Uint8Array[]) => void,
    opts: NdpOptions = {},
    slaac = false,
  ) {
    super();
    const o = resolveOptions<NdpOptions>("limits.ndp", opts, {
      ...NEIGHBOUR_OPTIONS,
      dadTransmits: [1, 0, 10],
      routerSolicitations: [3, 0, 100],
      routerSolicitationIntervalMs: [4000, 100, 3_600_000],
      maxRouters: [8, 1, 1024],
      maxSlaacAddresses: [16, 0, 1024],
    });
    this.o = o;
    this.cache = new NeighbourCache<Uint8Array>(
      {
        keyOf: (ip) => ipKey(ip),
        // Multicast to the solicited-node group, or a unicast NUD probe (§7.3.3).
        solicit: (ip, mac) => this.sendNs(ip, undefined, mac ? ip : solicitedNode(ip), true, mac),
        send: (frame, mac, meta) => this.eth.send(frame, mac, ETHERTYPE_IPV6, meta),
        unreachable,
      },
      copyBytes,
      timers,
      random,
      this.counters,
      o,
    );
    this.retransMs = o.retransTimerMs;
    this.slaac = slaac;
  }

  // ---- addresses, DAD (RFC 4862 §5.4) -------------------------------------------------------

  /** Add an address; it stays tentative until DAD finishes ('dad-ok' / 'dad-failed' events). */
  addAddress(address: Uint8Array, prefixLength: number, origin: Ipv6Address["origin"], validUntil = Infinity, preferredUntil = Infinity): Ipv6Address {
    const existing = this.ip.findAddress(address);
    if (existing) return existing;
    const a: Ipv6Address = { address: copyBytes(address), prefixLength, state: "tentative", origin, validUntil, preferredUntil };
    this.ip.addAddress(a);
    if (origin === "static" && prefixLength < 128) this.ip.addOnLinkPrefix(a.address, prefixLength, Infinity);
    if (this.o.dadTransmits === 0) {
      a.state = "preferred";
      queueMicrotask(() => this.emit("dad-ok", a));
      this.addressReady(a);
      return a;
    }
    const d = { timer: this.timers.timer(() => this.dadStep(a)), sent: 0 };
    this.dadTimers.set(a, d);
    // §5.4.2: delay the first NS by a random time in [0, MAX_RTR_SOLICITATION_DELAY=1s] only
    // when the interface just came up; we start at once, which RFC 4862 permits for static config.
    this.timers.arm(d.timer, 0);
    return a;
  }

  /**
   * Remove an address (DAD in progress stops); a static address takes its on-link prefix along
   * unless another static address shares it.
   */
  removeAddress(a: Ipv6Address): void {
    const d = this.dadTimers.get(a);
    if (d) this.timers.cancel(d.timer);
    this.dadTimers.delete(a);
    this.ip.removeAddress(a);
    if (a.origin === "static" && a.prefixLength < 128 && !this.ip.addresses.some((x) => x.origin === "static" && x.prefixLength === a.prefixLength && inPrefix(x.address, a.address, a.prefixLength))) {
      this.ip.removeOnLinkPrefix(a.address, a.prefixLength);
    }
  }

  private dadStep(a: Ipv6Address): void {
    const d = this.dadTimers.get(a);
    if (!d || a.state !== "tentative") return;
    if (d.sent >= this.o.dadTransmits) {
      this.dadTimers.delete(a);
      a.state = a.preferredUntil <= this.timers.now() ? "deprecated" : "preferred";
      this.counters.inc("dad_succeeded");
      this.emit("dad-ok", a);
      this.addressReady(a);
      return;
    }
    d.sent++;
    this.sendNs(a.address, IPV6_ANY, solicitedNode(a.address), false);
    this.counters.inc("dad_ns_sent");
    this.timers.arm(d.timer, this.retransMs);
  }

  private dadFailed(a: Ipv6Address): void {
    const d = this.dadTimers.get(a);
    if (d) this.timers.cancel(d.timer);
    this.dadTimers.delete(a);
    a.state = "duplicate";
    this.counters.inc("dad_failed");
    this.emit("dad-failed", a);
  }

  private addressReady(a: Ipv6Address): void {
    // Once the link-local address is usable, look for routers (§6.3.7).
    if (a.origin === "link-local" && this.o.routerSolicitations > 0 && !this.rsTimer) {
      this.rsTimer = this.timers.timer(() => this.solicitRouters(), true);
      this.timers.arm(this.rsTimer, 0);
    }
  }

  private solicitRouters(): void {
    if (this.closed || this.rsSent >= this.o.routerSolicitations || this.routers.length > 0) return;
    this.rsSent++;
    const src = this.ip.linkLocal();
    if (!src) return;
    const len = 8 + 8;
    const f = new Uint8Array(ETH.HEADER_LEN + IPV6.HEADER_LEN + len);
    const m = ETH.HEADER_LEN + IPV6.HEADER_LEN;
    emitLladdrOption(f, m + 8, NDP_OPT_SOURCE_LLADDR, this.eth.mac);
    this.finishNdp(f, ICMPV6_ROUTER_SOLICIT, 0, src, ALL_ROUTERS, len);
    this.ip.sendRaw(f, ipv6MulticastMac(ALL_ROUTERS), undefined);
    this.counters.inc("rs_sent");
    this.timers.arm(this.rsTimer!, this.o.routerSolicitationIntervalMs);
  }

  // ---- neighbour cache ----------------------------------------------------------------------

  defaultRouter(): Uint8Array | undefined {
    const now = this.timers.now();
    let fallback: Uint8Array | undefined;
    for (const r of this.routers) {
      if (r.until <= now) continue;
      const n = this.cache.get(r.ip);
      // §6.3.6: prefer routers known to be reachable.
      if (n?.mac && n.state !== "INCOMPLETE") return r.ip;
      fallback ??= r.ip;
    }
    return fallback;
  }

  /** Default routers learned from RAs whose lifetime has not run out. */
  routerList(): Uint8Array[] {
    const now = this.timers.now();
    return this.routers.filter((r) => r.until > now).map((r) => r.ip);
  }

  neighbour(ip: Uint8Array): { state: NeighbourState; mac: Uint8Array | undefined; isRouter: boolean } | undefined {
    return this.cache.get(ip);
  }

  neighbours(): Array<{ ip: string; state: NeighbourState; pending: number }> {
    return this.cache.entries().map((n) => ({ ip: formatIPv6(n.ip), state: n.state, pending: n.pending }));
  }

  output(nextHop: Uint8Array, frame: Uint8Array, meta?: TxMeta): boolean {
    return this.cache.output(nextHop, frame, meta);
  }

  // ---- messages ----------------------------------------------------------------------------

  /** Handle an NDP message (ICMPv6 type 133-137) whose checksum was verified. */
  input(type: number, code: number, pkt: IpPacket): void {
    const c = this.counters;
    // §7.1.1 / §7.1.2 / §6.1.2: hop limit 255 proves the sender is on-link; code must be 0.
    if (pkt.ttl !== 255) return c.drop("hop_limit_not_255");
    if (code !== 0) return c.drop("bad_code");
    const m = pkt.payload;
    switch (type) {
      case ICMPV6_NEIGHBOR_SOLICIT:
        return this.onNs(pkt, m);
      case ICMPV6_NEIGHBOR_ADVERT:
        return this.onNa(pkt, m);
      case ICMPV6_ROUTER_ADVERT:
        return this.onRa(pkt, m);
      default:
        return; // RS (we are not a router), redirect (ignored)
    }
  }

  private onNs(pkt: IpPacket, m: Uint8Array): void {
    const c = this.counters;
    if (m.length < 24) return c.drop("ns_truncated");
    const target = m.subarray(8, 24);
    if (isIPv6Multicast(target)) return c.drop("ns_multicast_target");
    const opts = parseNdpOptions(m, NDP_OPTIONS_OFFSET.ns);
    if (opts === "bad_option") return c.drop("bad_option");
    const fromUnspecified = isZero(pkt.src);
    if (fromUnspecified && (!isSolicitedNode(pkt.dst) || opts.sourceLladdr)) return c.drop("ns_bad_dad");
    const a = this.ip.findAddress(target);
    if (!a || a.state === "duplicate") return c.drop("ns_not_our_target");
    c.inc("ns_received");
    if (a.state === "tentative") {
      // §5.4.3: another node is doing DAD for our tentative address: it is a duplicate.
      if (fromUnspecified) this.dadFailed(a);
      return;
    }
    if (fromUnspecified) {
      // Someone's DAD for an address we already use: defend it to all nodes.
      return this.sendNa(target, ALL_NODES, ipv6MulticastMac(ALL_NODES), false);
    }
    // §7.2.3: the source link-layer address creates or refreshes an entry (STALE).
    if (opts.sourceLladdr) this.cache.update(pkt.src, opts.sourceLladdr, { solicited: false, override: true, create: true });
    const mac = opts.sourceLladdr ?? this.cache.get(pkt.src)?.mac;
    if (!mac) return c.drop("ns_no_lladdr");
    this.sendNa(target, pkt.src, mac, true);
  }

  private onNa(pkt: IpPacket, m: Uint8Array): void {
    const c = this.counters;
    if (m.length < 24) return c.drop("na_truncated");
    const flags = m[4]!;
    const router = (flags & 0x80) !== 0;
    const solicited = (flags & 0x40) !== 0;
    const override = (flags & 0x20) !== 0;
    const target = m.subarray(8, 24);
    if (isIPv6Multicast(target)) return c.drop("na_multicast_target");
    if (solicited && isIPv6Multicast(pkt.dst)) return c.drop("na_solicited_to_multicast");
    const opts = parseNdpOptions(m, NDP_OPTIONS_OFFSET.na);
    if (opts === "bad_option") return c.drop("bad_option");
    c.inc("na_received");
    const mine = this.ip.findAddress(target);
    if (mine) {
      if (mine.state === "tentative") this.dadFailed(mine);
      else c.inc("address_conflict");
      return;
    }
    // §7.2.5, in the neighbour cache; a router that says it no longer is one leaves the list.
    const wasRouter = this.cache.get(target)?.isRouter ?? false;
    this.cache.update(target, opts.targetLladdr, { solicited, override, create: false, isRouter: router });
    if (wasRouter && !router) this.dropRouter(target);
  }

  private onRa(pkt: IpPacket, m: Uint8Array): void {
    const c = this.counters;
    if (!isIPv6LinkLocal(pkt.src)) return c.drop("ra_not_link_local");
    const ra = parseRouterAdvert(m);
    if (ra === "truncated") return c.drop("ra_truncated");
    const opts = parseNdpOptions(m, NDP_OPTIONS_OFFSET.ra);
    if (opts === "bad_option") return c.drop("bad_option");
    c.inc("ra_received");
    const now = this.timers.now();
    if (ra.curHopLimit !== 0) this.ip.setHopLimit(ra.curHopLimit);
    this.cache.setBaseReachableTime(ra.reachableTime);
    this.cache.setRetransTimer(ra.retransTimer);
    if (ra.retransTimer !== 0) this.retransMs = ra.retransTimer;
    // Default router list (§6.3.4).
    const idx = this.routers.findIndex((r) => bytesEqual(r.ip, pkt.src));
    if (ra.routerLifetime === 0) {
      if (idx >= 0) this.routers.splice(idx, 1);
    } else if (idx >= 0) this.routers[idx]!.until = now + ra.routerLifetime * 1000;
    else if (this.routers.length < this.o.maxRouters) this.routers.push({ ip: copyBytes(pkt.src), until: now + ra.routerLifetime * 1000 });
    if (opts.sourceLladdr) this.cache.update(pkt.src, opts.sourceLladdr, { solicited: false, override: true, create: true, isRouter: true });
    if (opts.mtu !== undefined) this.ip.setLinkMtu(opts.mtu);
    for (const p of opts.prefixes) {
      if (isIPv6LinkLocal(p.prefix)) continue;
      if (p.preferredLifetime > p.validLifetime) continue;
      const validUntil = p.validLifetime === 0xffffffff ? Infinity : now + p.validLifetime * 1000;
      if (p.onLink && p.prefixLength <= 128) this.ip.addOnLinkPrefix(p.prefix, p.prefixLength, validUntil);
      if (p.autonomous && this.slaac) this.autoconfigure(p.prefix, p.prefixLength, p.validLifetime, p.preferredLifetime);
    }
  }

  /** RFC 4862 §5.5.3: form (or refresh) an address from a prefix with the A flag. */
  private autoconfigure(prefix: Uint8Array, length: number, valid: number, preferred: number): void {
    const c = this.counters;
    if (length !== 64) return c.drop("slaac_prefix_length");
    const addr = new Uint8Array(16);
    addr.set(prefix.subarray(0, 8));
    addr.set(eui64(this.eth.mac), 8);
    const now = this.timers.now();
    const toMs = (s: number) => (s === 0xffffffff ? Infinity : now + s * 1000);
    const existing = this.ip.findAddress(addr);
    if (existing) {
      // §5.5.3 e: the "two hours rule" protects against a spoofed RA shortening the lifetime.
      const remaining = existing.validUntil - now;
      const TWO_HOURS = 7_200_000;
      if (valid * 1000 > TWO_HOURS || valid * 1000 > remaining) existing.validUntil = toMs(valid);
      else if (remaining > TWO_HOURS) existing.validUntil = now + TWO_HOURS;
      existing.preferredUntil = toMs(preferred);
      if (existing.state === "deprecated" && preferred > 0) existing.state = "preferred";
      return;
    }
    if (valid === 0) return;
    if (this.ip.addresses.filter((a) => a.origin === "slaac").length >= this.o.maxSlaacAddresses) return c.drop("slaac_limit");
    const a = this.addAddress(addr, 64, "slaac", toMs(valid), toMs(preferred));
    c.inc("slaac_addresses");
    this.emit("address", a);
  }

  /** Expire addresses, prefixes and routers whose lifetimes ran out. Called by the stack's housekeeping timer. */
  expire(): void {
    const now = this.timers.now();
    for (const a of [...this.ip.addresses]) {
      if (a.validUntil <= now) {
        this.ip.removeAddress(a);
        this.counters.inc("addresses_expired");
        this.emit("address-removed", a);
      } else if (a.state === "preferred" && a.preferredUntil <= now) a.state = "deprecated";
    }
    this.ip.expirePrefixes(now);
    for (let i = this.routers.length - 1; i >= 0; i--) if (this.routers[i]!.until <= now) this.routers.splice(i, 1);
  }

  private dropRouter(ip: Uint8Array): void {
    const i = this.routers.findIndex((r) => bytesEqual(r.ip, ip));
    if (i >= 0) this.routers.splice(i, 1);
  }

  // ---- sending -------------------------------------------------------------------------------

  /** Fill the IPv6 header (hop limit 255) and ICMPv6 header+checksum of an NDP frame. */
  private finishNdp(f: Uint8Array, type: number, rest: number, src: Uint8Array, dst: Uint8Array, len: number): void {
    const m = ETH.HEADER_LEN + IPV6.HEADER_LEN;
    emitIpv6(f, ETH.HEADER_LEN, { nextHeader: IPPROTO_ICMPV6, hopLimit: 255, src, dst, payloadLen: len });
    emitIcmp(f, m, len, type, 0, rest, src, dst);
  }

  /**
   * Neighbour solicitation for `target`. `src` undefined: pick our address (DAD passes ::).
   * Multicast to `dst` (solicited-node) or unicast to the target's known MAC.
   */
  private sendNs(target: Uint8Array, src: Uint8Array | undefined, dst: Uint8Array, withSll: boolean, unicastMac?: Uint8Array): void {
    const s = src ?? this.ip.selectSource(target);
    if (!s) return this.counters.drop("ns_no_source");
    const sll = withSll && !isZero(s);
    const len = 24 + (sll ? 8 : 0);
    const f = new Uint8Array(ETH.HEADER_LEN + IPV6.HEADER_LEN + len);
    const m = ETH.HEADER_LEN + IPV6.HEADER_LEN;
    f.set(target, m + 8);
    if (sll) emitLladdrOption(f, m + 24, NDP_OPT_SOURCE_LLADDR, this.eth.mac);
    this.finishNdp(f, ICMPV6_NEIGHBOR_SOLICIT, 0, s, dst, len);
    this.counters.inc("ns_sent");
    this.ip.sendRaw(f, unicastMac ?? ipv6MulticastMac(dst), undefined);
  }

  private sendNa(target: Uint8Array, dst: Uint8Array, dstMac: Uint8Array, solicited: boolean): void {
    const len = 24 + 8;
    const f = new Uint8Array(ETH.HEADER_LEN + IPV6.HEADER_LEN + len);
    const m = ETH.HEADER_LEN + IPV6.HEADER_LEN;
    f.set(target, m + 8);
    emitLladdrOption(f, m + 24, NDP_OPT_TARGET_LLADDR, this.eth.mac);
    // Flags: S when solicited, O (override) always for our own addresses (§7.2.4).
    const flags = (solicited ? 0x40 : 0) | 0x20;
    this.finishNdp(f, ICMPV6_NEIGHBOR_ADVERT, (flags << 24) >>> 0, target, dst, len);
    this.counters.inc("na_sent");
    this.ip.sendRaw(f, dstMac, undefined);
  }

  close(): void {
    this.closed = true;
    this.cache.close();
    for (const d of this.dadTimers.values()) this.timers.cancel(d.timer);
    this.dadTimers.clear();
    if (this.rsTimer) this.timers.cancel(this.rsTimer);
  }
}

function isSolicitedNode(a: Uint8Array): boolean {
  return a[0] === 0xff && a[1] === 0x02 && a[11] === 0x01 && a[12] === 0xff && a.subarray(2, 11).every((x) => x === 0);
}
