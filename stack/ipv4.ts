/**
 * IPv4 (RFC 791, host requirements RFC 1122 §3.2.1): validation, demultiplexing to upper
 * protocols, reassembly, fragmentation on send, on-link / default-gateway routing, path MTU cache.
 * The layer is a host, never a router: it does not forward.
 */
import type { EthernetLayer } from "./ethernet.js";
import type { TimerQueue } from "./core/timers.js";
import type { Random } from "./core/random.js";
import { EMPTY_BYTES, newIpPacket, type IpOutput, type IpPacket, type Route, type SendOptions, type UpperProtocol } from "./ip.js";
import type { RxMeta } from "./netif/netif.js";
import { Counters } from "./core/stats.js";
import { Loopback } from "./loopback.js";
import { Ipv4Ident } from "./ipv4id.js";
import { Reassembler, type ReassemblyOptions } from "./reassembly.js";
import { IPV4, IPV4_FLAG_MF, IPV4_FRAG_OFFSET_MASK, checkIpv4, emitIpv4, parseIpv4, type Ipv4EmitOptions } from "./wire/ipv4.js";
import { ETH, ETHERTYPE_IPV4 } from "./wire/ethernet.js";

import { BROADCAST_MAC, IPV4_ANY, copyBytes, ipv4MulticastMac, ipv4ToU32, u32ToIPv4 } from "./wire/addr.js";
import { CSUM_PARTIAL, type TxMeta } from "./netif/netif.js";
import { completeChecksum } from "./wire/checksum.js";
import type { GroupListener } from "./ip.js";
import { RouteTable, ipv4Mask, type RouteEntry, type RouteOrigin } from "./routes.js";
import { errnoError } from "./core/errors.js";

/** One of our addresses, with what routing and input filtering need precomputed. */
export interface Ipv4Address {
  readonly address: Uint8Array;
  readonly prefixLength: number;
  /** The address as u32. */
  readonly u32: number;
  readonly mask: number;
  /** The subnet-directed broadcast address as u32; -1 when there is none (/31, /32). */
  readonly broadcast: number;
}

/** A route: destination prefix, gateway (or on-link) and metric. */
export interface Ipv4RouteEntry extends RouteEntry {
  /** Destination prefix (masked) as u32. */
  readonly dst: number;
  readonly mask: number;
  /** Gateway as u32; 0: on-link (the destination is the next hop). */
  readonly gateway: number;
  /** Preferred source address as u32; 0: chosen by the gateway's subnet. */
  readonly src: number;
  /** That address itself (so route() finds it without a search). */
  readonly source: Ipv4Address | undefined;
}

export interface Ipv4Options {
  /** Default TTL of packets we originate (RFC 1700 suggests 64). */
  ttl?: number;
  reassembly?: ReassemblyOptions;
  /** Path MTU entries kept (one per destination). Default 1024. */
  pmtuCacheSize?: number;
  /** How long a learned path MTU is trusted before probing the link MTU again (RFC 1191 §6.3: 10 min). */
  pmtuTimeoutMs?: number;
  /** Smallest path MTU accepted from ICMP (defends against tiny-MTU attacks). Default 552, like Linux. */
  minPmtu?: number;
}

export interface Ipv4Route extends Route {
  /** Next hop as u32; 0 for broadcast/multicast (no ARP). */
  nextHop: number;
  /** Destination MAC when it is fixed (broadcast / multicast). */
  fixedMac: Uint8Array | undefined;
  /** Sent to ourselves: loop back without touching the link. */
  local: boolean;
}

/** Resolves IPv4 next hops (arp.ts) and sends; answers for our addresses. */
export interface Ipv4Neighbours {
  output(nextHop: number, frame: Uint8Array, meta?: TxMeta): boolean;
  /** Answer for `ip` (within its prefix) from now on, and announce it. */
  addAddress(ip: Uint8Array, prefixLength: number): void;
  removeAddress(ip: Uint8Array): void;
}

export interface Icmpv4ErrorSink {
  sendError(pkt: IpPacket, type: number, code: number, rest?: number): void;
  sendIcmpError(pkt: IpPacket, kind: "port_unreachable" | "protocol_unreachable"): void;
}

const LIMITED_BROADCAST = 0xffffffff;
/** The index of a stack with no address and no route (empty: nothing to change in it). */
const NO_U32 = new Uint32Array(0);
/** 224.0.0.1: every host listens to it and never reports it (RFC 1112 §4, RFC 2236 §6). */
export const ALL_HOSTS = 0xe0000001;
const ALL_HOSTS_MAC = ipv4MulticastMac(u32ToIPv4(ALL_HOSTS));

/** send() without options: one shared empty object rather than a new one per datagram. */
const NO_SEND_OPTIONS: SendOptions = Object.freeze({});

/** One object shape for every route (route() runs for every datagram sent). */
function routeOf4(src: Uint8Array, dst: Uint8Array, mtu: number, nextHop: number, fixedMac: Uint8Array | undefined, local: boolean, broadcast: boolean): Ipv4Route {
  return { family: 4, src, dst, headroom: ETH.HEADER_LEN + IPV4.MIN_HEADER_LEN, mtu, nextHop, fixedMac, local, broadcast };
}

const sameRoute = (a: Ipv4RouteEntry, b: Ipv4RouteEntry): boolean => a.dst === b.dst && a.prefixLength === b.prefixLength && a.metric === b.metric && a.gateway === b.gateway;

export class Ipv4Layer implements IpOutput {
  readonly family = 4 as const;
  readonly counters = new Counters("ipv4", { rx_packets: 0, delivered: 0, tx_packets: 0 });
  private readonly protocols = new Map<number, UpperProtocol>();
  // Reassembly, the path MTU cache, the loopback queue and the joined groups are made at first
  // use: an idle stack (of thousands) holds none of them.
  private reassemblerObj: Reassembler | undefined;
  /** What send() writes each header from (made at the first send). */
  private txHeader: Ipv4EmitOptions | undefined;
  /** The packet input() hands up (see there; made at the first), and whether an input is in progress. */
  private rxPacket: IpPacket | undefined;
  private rxBusy = false;
  private readonly reassemblyOpts: ReassemblyOptions | undefined;
  private pmtuMap: Map<number, { mtu: number; expires: number }> | undefined;
  /** Our addresses; the first is the primary one (the source when no route says otherwise). Replaced, never changed in place. */
  private addrs: readonly Ipv4Address[] = [];
  private readonly table = new RouteTable<Ipv4RouteEntry>(sameRoute);
  /**
   * What route() and input() compare, per datagram, as one unboxed u32 array (an object field
   * holding a u32 above 2^30 is a boxed number in V8; one typed array costs ~200 bytes, so one,
   * not four): our `addrCount` addresses, then their subnet broadcasts (0: none), then the
   * `routeCount` routes' destinations, then their masks, in table order. Rebuilt by index() on
   * every change.
   */
  private ix: Uint32Array = NO_U32;
  private addrCount = 0;
  private routeCount = 0;
  /** Joined multicast groups (u32) -> reference count, all-hosts aside (allHostsRefs). */
  private groupsMap: Map<number, number> | undefined;
  /** References to 224.0.0.1, which every stack joins at construction: a count, not a Map of its own. */
  private allHostsRefs = 0;
  private groupListener: GroupListener | undefined;
  private readonly ident: Ipv4Ident;
  private readonly ttl: number;
  private readonly pmtuCacheSize: number;
  private readonly pmtuTimeoutMs: number;
  readonly minPmtu: number;
  /** How errors about received packets are sent (the ICMPv4 module; see useIcmp). */
  private icmp: Icmpv4ErrorSink | undefined;
  private loopObj: Loopback | undefined;

  constructor(
    private readonly eth: EthernetLayer,
    private readonly arp: Ipv4Neighbours,
    private readonly timers: TimerQueue,
    random: Random,
    readonly linkMtu: number,
    opts: Ipv4Options = {},
  ) {
    this.ident = new Ipv4Ident(random);
    this.ttl = opts.ttl ?? 64;
    this.pmtuCacheSize = opts.pmtuCacheSize ?? 1024;
    this.pmtuTimeoutMs = opts.pmtuTimeoutMs ?? 600_000;
    this.minPmtu = opts.minPmtu ?? 552;
    this.reassemblyOpts = opts.reassembly;
    // RFC 1112 §4: every host listens to all-hosts (IGMP queries come there); never reported.
    this.allHostsRefs = 1;
    this.eth.joinMulticast(ALL_HOSTS_MAC);
  }

  private get reassembler(): Reassembler {
    return (this.reassemblerObj ??= new Reassembler(this.timers, this.counters, this.reassemblyOpts, (first) => this.reassemblyTimeout(first)));
  }

  private get pmtu(): Map<number, { mtu: number; expires: number }> {
    return (this.pmtuMap ??= new Map());
  }

  private get loop(): Loopback {
    return (this.loopObj ??= new Loopback(
      (f, p) => this.input(f, p),
      () => this.batchEnd(),
      this.counters,
    ));
  }

  /** The ICMPv4 module that reports errors about packets we receive (wired by the stack). */
  useIcmp(icmp: Icmpv4ErrorSink): void {
    this.icmp = icmp;
  }

  /** Who reports group joins and leaves (the IGMP module; wired by the stack). */
  useGroupListener(l: GroupListener): void {
    this.groupListener = l;
  }

  // ---- addresses and routes ---------------------------------------------------------------

  /**
   * Add an address with its prefix: its subnet becomes on-link (a "connected" route) and ARP
   * answers for it and announces it. EEXIST if we hold it already.
   */
  addAddress(address: Uint8Array, prefixLength: number): Ipv4Address {
    const u = ipv4ToU32(address);
    if (this.findAddress(u)) throw errnoError("EEXIST", "addAddress", formatU32(u));
    if (u === 0 || u === LIMITED_BROADCAST || u >>> 28 >= 0xe || u >>> 24 === 127) throw errnoError("EINVAL", "addAddress", `${formatU32(u)} is not a unicast address`);
    const mask = ipv4Mask(prefixLength);
    const a: Ipv4Address = { address: copyBytes(address), prefixLength, u32: u, mask, broadcast: prefixLength >= 31 ? -1 : (u | ~mask) >>> 0 };
    this.addrs = this.addrs.concat(a);
    if (prefixLength < 32) this.table.add({ dst: (u & mask) >>> 0, mask, prefixLength, gateway: 0, src: u, source: a, metric: 0, origin: "connected" });
    this.index();
    this.arp.addAddress(a.address, prefixLength);
    return a;
  }

  /**
   * Remove an address, its connected route, the routes that named it as their source, and the
   * routes whose gateway is no longer on-link (as Linux flushes them). EADDRNOTAVAIL if absent.
   */
  removeAddress(address: Uint8Array): Ipv4Address {
    const u = ipv4ToU32(address);
    const a = this.findAddress(u);
    if (!a) throw errnoError("EADDRNOTAVAIL", "removeAddress", formatU32(u));
    this.addrs = this.addrs.filter((x) => x !== a);
    this.table.removeWhere((r) => r.src === u);
    this.table.removeWhere((r) => r.gateway !== 0 && !this.onLink(r.gateway));
    this.index();
    this.arp.removeAddress(a.address);
    return a;
  }

  /** Our addresses, the primary (first) one first. */
  get addresses(): readonly Ipv4Address[] {
    return this.addrs;
  }

  /** The primary address (undefined until one is added). */
  get address(): Uint8Array | undefined {
    return this.addrs[0]?.address;
  }

  /**
   * Add a route to `dst`/`prefixLength` via `gateway` (0: on-link). The gateway must be on-link
   * (inside the prefix of one of our addresses): ENETUNREACH otherwise, as Linux answers; EEXIST
   * for a route already there.
   */
  addRoute(dst: Uint8Array, prefixLength: number, gateway: Uint8Array | undefined, metric: number, origin: RouteOrigin, src?: Uint8Array): void {
    const mask = ipv4Mask(prefixLength);
    const d = (ipv4ToU32(dst) & mask) >>> 0;
    const gw = gateway ? ipv4ToU32(gateway) : 0;
    const s = src ? ipv4ToU32(src) : 0;
    const what = `${formatU32(d)}/${prefixLength}${gw ? ` via ${formatU32(gw)}` : ""}`;
    if (gw !== 0 && !this.onLink(gw)) throw errnoError("ENETUNREACH", "addRoute", `${what}: the gateway is not on a connected subnet`);
    const source = s !== 0 ? this.findAddress(s) : undefined;
    if (s !== 0 && !source) throw errnoError("EADDRNOTAVAIL", "addRoute", `${what}: source ${formatU32(s)} is not ours`);
    if (!this.table.add({ dst: d, mask, prefixLength, gateway: gw, src: s, source, metric, origin })) throw errnoError("EEXIST", "addRoute", what);
    this.index();
  }

  /** Remove routes to `dst`/`prefixLength` (only via `gateway`, with `metric`, when given). ESRCH if none matched. */
  removeRoute(dst: Uint8Array, prefixLength: number, gateway?: Uint8Array, metric?: number): void {
    const mask = ipv4Mask(prefixLength);
    const d = (ipv4ToU32(dst) & mask) >>> 0;
    const gw = gateway ? ipv4ToU32(gateway) : undefined;
    const n = this.table.removeWhere(
      (r) => r.origin !== "connected" && r.dst === d && r.prefixLength === prefixLength && (gw === undefined || r.gateway === gw) && (metric === undefined || r.metric === metric),
    );
    if (n === 0) throw errnoError("ESRCH", "removeRoute", `${formatU32(d)}/${prefixLength}${gw ? ` via ${formatU32(gw)}` : ""}`);
    this.index();
  }

  /** Remove every route of one origin (DHCP's, when its lease ends). */
  removeRoutes(origin: RouteOrigin): void {
    this.table.removeWhere((r) => r.origin === origin);
    this.index();
  }

  private index(): void {
    const a = this.addrs;
    const t = this.table.entries;
    const na = a.length;
    const nr = t.length;
    const ix = new Uint32Array(2 * (na + nr));
    for (let i = 0; i < na; i++) {
      ix[i] = a[i]!.u32;
      ix[na + i] = Math.max(a[i]!.broadcast, 0);
    }
    const r0 = 2 * na;
    for (let i = 0; i < nr; i++) {
      ix[r0 + i] = t[i]!.dst;
      ix[r0 + nr + i] = t[i]!.mask;
    }
    this.ix = ix;
    this.addrCount = na;
    this.routeCount = nr;
  }

  /** The routing table, longest prefix first. */
  get routes(): readonly Ipv4RouteEntry[] {
    return this.table.entries;
  }

  private findAddress(u: number): Ipv4Address | undefined {
    const ix = this.ix;
    const na = this.addrCount;
    for (let i = 0; i < na; i++) if (ix[i] === u) return this.addrs[i];
    return undefined;
  }

  /** Is `u` inside the prefix of one of our addresses (a connected route)? */
  private onLink(u: number): boolean {
    for (const r of this.table.entries) if (r.origin === "connected" && (u & r.mask) >>> 0 === r.dst) return true;
    return false;
  }

  /** The address to send from towards on-link `u`: one whose subnet holds it, else the primary. */
  private sourceFor(u: number): Ipv4Address | undefined {
    const a = this.addrs;
    for (let i = 0; i < a.length; i++) if ((u & a[i]!.mask) >>> 0 === (a[i]!.u32 & a[i]!.mask) >>> 0) return a[i];
    return a[0];
  }

  sendIcmpError(pkt: IpPacket, kind: "port_unreachable" | "protocol_unreachable"): void {
    this.icmp?.sendIcmpError(pkt, kind);
  }

  register(protocol: number, p: UpperProtocol): void {
    this.protocols.set(protocol, p);
  }

  protocol(n: number): UpperProtocol | undefined {
    return this.protocols.get(n);
  }

  isLocal(a: Uint8Array): boolean {
    return a.length === 4 && this.findAddress(ipv4ToU32(a)) !== undefined;
  }

  /** The limited broadcast, or the subnet-directed broadcast of one of our addresses? */
  private isBroadcast(d: number): boolean {
    if (d === LIMITED_BROADCAST) return true;
    const ix = this.ix;
    const na = this.addrCount;
    for (let i = na; i < 2 * na; i++) if (ix[i] === d) return true;
    return false;
  }

  // ---- multicast groups ---------------------------------------------------------------------

  /** Join a multicast group: accept packets to it and frames to its MAC (reference counted). */
  joinGroup(g: Uint8Array): void {
    const k = ipv4ToU32(g);
    let n: number;
    if (k === ALL_HOSTS) n = this.allHostsRefs++;
    else {
      const m = (this.groupsMap ??= new Map());
      n = m.get(k) ?? 0;
      m.set(k, n + 1);
    }
    if (n > 0) return;
    this.eth.joinMulticast(ipv4MulticastMac(g));
    if (k !== ALL_HOSTS) this.groupListener?.joined(g);
  }

  leaveGroup(g: Uint8Array): void {
    const k = ipv4ToU32(g);
    if (k === ALL_HOSTS) {
      if (this.allHostsRefs === 0) return;
      if (--this.allHostsRefs > 0) return;
    } else {
      const n = (this.groupsMap?.get(k) ?? 0) - 1;
      if (n > 0) return void this.groupsMap!.set(k, n);
      if (n < 0) return;
      this.groupsMap!.delete(k);
    }
    this.eth.leaveMulticast(ipv4MulticastMac(g));
    if (k !== ALL_HOSTS) this.groupListener?.left(g);
  }

  private joined(k: number): boolean {
    return k === ALL_HOSTS ? this.allHostsRefs > 0 : this.groupsMap?.has(k) === true;
  }

  // ---- input -------------------------------------------------------------------------------

  input(_frame: Uint8Array, p: Uint8Array, meta?: RxMeta): void {
    const c = this.counters;
    c.hot.rx_packets++;
    // The fields are read in place (parseIpv4 would allocate a repr and three views per datagram).
    const headerLen = checkIpv4(p);
    if (typeof headerLen === "string") return c.drop(headerLen);
    const totalLen = (p[2]! << 8) | p[3]!;
    const s = ipv4ToU32(p, IPV4.SRC);
    const d = ipv4ToU32(p, IPV4.DST);
    // One pass over our addresses: one of them, or the broadcast address of one's subnet.
    let own = false;
    let multicast = false;
    const ix = this.ix;
    const na = this.addrCount;
    for (let i = 0; i < na; i++) {
      if (ix[i] === d) {
        own = true;
        break;
      }
      if (ix[na + i] === d) {
        multicast = true;
        break;
      }
    }
    if (!own && !multicast) {
      if (d === LIMITED_BROADCAST) multicast = true;
      else if (d >>> 28 === 0xe) {
        // 224.0.0.0/4: only the groups we joined (RFC 1112 §7.2).
        if (!this.joined(d)) return c.drop("multicast_not_joined");
        multicast = true;
      } else return c.drop("not_for_us");
    }
    // Martian sources (RFC 1122 §3.2.1.3): broadcast, multicast, and loopback are never valid senders.
    if (s === LIMITED_BROADCAST || s >>> 28 === 0xe || s >>> 24 === 127 || (s !== 0 && this.isBroadcast(s))) return c.drop("martian_source");
    if (s !== 0 && !this.loopObj?.active && this.findAddress(s)) return c.drop("own_source");

    const packet = totalLen === p.length ? p : p.subarray(0, totalLen);
    const protocol = p[IPV4.PROTOCOL]!;
    const ff = (p[6]! << 8) | p[7]!;
    let payload = packet.subarray(headerLen);
    let whole = true;
    if ((ff & (IPV4_FLAG_MF | IPV4_FRAG_OFFSET_MASK)) !== 0) {
      const key = `${s}:${d}:${protocol}:${(p[4]! << 8) | p[5]!}`;
      const r = this.reassembler.add(String(s), key, (ff & IPV4_FRAG_OFFSET_MASK) * 8, (ff & IPV4_FLAG_MF) !== 0, payload, packet);
      if (!r) return;
      payload = r;
      whole = false;
    }
    // One packet object per layer, filled for each datagram: upper layers use it during input()
    // and copy what they keep (views into a frame could not be kept anyway: a TAP reuses its
    // receive buffer). Only a re-entrant input (none today) gets a fresh one.
    const pkt = this.rxBusy ? newIpPacket(4) : (this.rxPacket ??= newIpPacket(4));
    const src = pkt.src;
    const dst = pkt.dst;
    src[0] = p[12]!;
    src[1] = p[13]!;
    src[2] = p[14]!;
    src[3] = p[15]!;
    dst[0] = p[16]!;
    dst[1] = p[17]!;
    dst[2] = p[18]!;
    dst[3] = p[19]!;
    pkt.protocol = protocol;
    pkt.ttl = p[IPV4.TTL]!;
    pkt.payload = payload;
    pkt.packet = packet;
    pkt.multicast = multicast;
    pkt.csumValid = meta?.csumValid === true && whole;
    const h = this.protocols.get(protocol);
    const busy = this.rxBusy;
    this.rxBusy = true;
    try {
      if (!h) {
        c.drop("unknown_protocol");
        if (!multicast) this.icmp?.sendError(pkt, 3, 2); // protocol unreachable
        return;
      }
      c.hot.delivered++;
      h.input(pkt);
    } finally {
      this.rxBusy = busy;
      // The frame is not held past its input.
      pkt.payload = pkt.packet = EMPTY_BYTES;
    }
  }

  batchEnd(): void {
    for (const p of this.protocols.values()) p.batchEnd?.();
  }

  private reassemblyTimeout(first: Uint8Array): void {
    // RFC 792: time exceeded, code 1 (fragment reassembly time exceeded), only if fragment zero arrived.
    const r = parseIpv4(first.length >= 20 ? first : new Uint8Array(0), false);
    if (typeof r === "string" || !this.icmp) return;
    this.icmp.sendError({ family: 4, src: r.src, dst: r.dst, protocol: r.protocol, ttl: r.ttl, payload: r.payload, packet: first, multicast: false, csumValid: false }, 11, 1);
  }

  // ---- routing and output --------------------------------------------------------------------

  /**
   * Route to `dst`, from `src` when given (it must be ours, or 0.0.0.0 for "any"). The table is
   * scanned longest prefix first; the source is `src`, else the route's, else the address whose
   * subnet holds the next hop, else the primary. Before any address is configured only the limited
   * broadcast is routable, from 0.0.0.0 (RFC 2131 §4.1: how a DHCP client speaks first).
   */
  route(dst0: Uint8Array, src?: Uint8Array, transient = false): Ipv4Route | undefined {
    if (dst0.length !== 4) return undefined;
    // A route may be kept (a connection's): it gets its own copy of the destination.
    const dst = transient ? dst0 : copyBytes(dst0);
    const d = ipv4ToU32(dst);
    let from: Ipv4Address | undefined;
    if (src) {
      if (src.length !== 4) return undefined;
      const s = ipv4ToU32(src);
      if (s !== 0 && !(from = this.findAddress(s))) return undefined;
    }
    if (d === LIMITED_BROADCAST) return routeOf4((from ?? this.addrs[0])?.address ?? IPV4_ANY, dst, this.linkMtu, 0, BROADCAST_MAC, false, true);
    const a = this.addrs;
    if (a.length === 0) return undefined;
    const ix = this.ix;
    const na = this.addrCount;
    for (let i = 0; i < na; i++) {
      if (ix[i] === d) return routeOf4((from ?? a[i]!).address, dst, 65535, d, undefined, true, false);
      if (ix[na + i] === d) return routeOf4((from ?? a[i]!).address, dst, this.linkMtu, 0, BROADCAST_MAC, false, true);
    }
    if (d >>> 28 === 0xe) return routeOf4((from ?? a[0]!).address, dst, this.linkMtu, 0, ipv4MulticastMac(dst), false, false);
    if (d === 0 || d >>> 24 === 127) return undefined;
    const r0 = 2 * na;
    const nr = this.routeCount;
    const t = this.table.entries;
    for (let i = 0; i < nr; i++) {
      if ((d & ix[r0 + nr + i]!) >>> 0 !== ix[r0 + i]) continue;
      const r = t[i]!;
      const nextHop = r.gateway === 0 ? d : r.gateway;
      from ??= r.source ?? this.sourceFor(nextHop)!;
      return routeOf4(from.address, dst, this.pathMtu(d), nextHop, undefined, false, false);
    }
    return undefined;
  }

  pathMtu(d: number): number {
    const e = this.pmtuMap?.get(d);
    if (!e) return this.linkMtu;
    if (e.expires <= this.timers.now()) {
      this.pmtuMap!.delete(d);
      return this.linkMtu;
    }
    return e.mtu;
  }

  /** Record a smaller path MTU learned from ICMP "fragmentation needed" (RFC 1191). Returns the value used. */
  updatePathMtu(dst: Uint8Array, mtu: number): number {
    const d = ipv4ToU32(dst);
    const v = Math.max(this.minPmtu, Math.min(mtu, this.linkMtu));
    if (v >= this.pathMtu(d)) return this.pathMtu(d);
    if (!this.pmtu.has(d) && this.pmtu.size >= this.pmtuCacheSize) {
      const first = this.pmtu.keys().next().value as number;
      this.pmtu.delete(first);
    }
    this.pmtu.set(d, { mtu: v, expires: this.timers.now() + this.pmtuTimeoutMs });
    this.counters.inc("pmtu_updates");
    return v;
  }

  send(route: Route, protocol: number, frame: Uint8Array, opts: SendOptions = NO_SEND_OPTIONS, partial = false): boolean {
    const r = route as Ipv4Route;
    const c = this.counters;
    const hoff = ETH.HEADER_LEN;
    const payloadLen = frame.length - hoff - IPV4.MIN_HEADER_LEN;
    const ttl = opts.ttl ?? this.ttl;
    // Never one global counter: see ipv4id.ts (RFC 6864, RFC 7739).
    const ident = opts.dontFragment ? 0 : this.ident.next(ipv4ToU32(r.src), ipv4ToU32(r.dst), protocol, this.timers.now());
    c.hot.tx_packets++;
    // Like Linux, our own sockets hear a broadcast we send, and a multicast to a group we joined
    // unless the socket turned multicast loopback off.
    const loop = r.fixedMac !== undefined && (r.broadcast || (opts.multicastLoop === true && this.joined(ipv4ToU32(r.dst))));
    // A TSO super-segment is cut to the MTU by the netif.
    if (IPV4.MIN_HEADER_LEN + payloadLen <= r.mtu || opts.gsoSize) {
      // One header description per layer, filled per datagram (emitIpv4 reads it at once).
      const h = (this.txHeader ??= { ident: 0, ttl: 0, tos: 0, dontFragment: false, protocol: 0, src: IPV4_ANY, dst: IPV4_ANY, payloadLen: 0 });
      h.ident = ident;
      h.ttl = ttl;
      h.tos = opts.tos ?? 0;
      h.dontFragment = opts.dontFragment ?? false;
      h.protocol = protocol;
      h.src = r.src;
      h.dst = r.dst;
      h.payloadLen = payloadLen;
      emitIpv4(frame, hoff, h);
      // Only the netif completes a partial checksum: a packet that reaches our own sockets is completed here.
      if (partial && (r.local || loop)) {
        completeChecksum(frame, hoff + IPV4.MIN_HEADER_LEN, frame.length, protocol);
        return this.deliver(r, frame, undefined, loop);
      }
      return this.deliver(r, frame, opts.gsoSize ? opts : partial ? CSUM_PARTIAL : undefined, loop);
    }
    if (opts.dontFragment) {
      c.drop("too_big_df");
      return false;
    }
    if (payloadLen > 65535 - IPV4.MIN_HEADER_LEN) {
      c.drop("too_big");
      return false;
    }
    if (partial) completeChecksum(frame, hoff + IPV4.MIN_HEADER_LEN, frame.length, protocol);
    // RFC 791 fragmentation: every fragment but the last carries a multiple of 8 bytes.
    const maxData = ((r.mtu - IPV4.MIN_HEADER_LEN) >> 3) << 3;
    const data = frame.subarray(hoff + IPV4.MIN_HEADER_LEN);
    let ok = true;
    for (let off = 0; off < payloadLen; off += maxData) {
      const n = Math.min(maxData, payloadLen - off);
      const f = new Uint8Array(hoff + IPV4.MIN_HEADER_LEN + n);
      f.set(data.subarray(off, off + n), hoff + IPV4.MIN_HEADER_LEN);
      emitIpv4(f, hoff, { ident, ttl, tos: opts.tos ?? 0, moreFragments: off + n < payloadLen, fragOffset: off, protocol, src: r.src, dst: r.dst, payloadLen: n });
      c.inc("tx_fragments");
      ok = this.deliver(r, f, undefined, loop) && ok;
    }
    return ok;
  }

  /** Packets to our own address never touch the link: they are fed back to input on the next microtask. */
  private deliver(r: Ipv4Route, frame: Uint8Array, meta: TxMeta | undefined, loop: boolean): boolean {
    if (r.local) return this.loop.send(frame);
    if (r.fixedMac) {
      if (loop) this.loop.send(copyBytes(frame));
      return this.eth.send(frame, r.fixedMac, ETHERTYPE_IPV4, meta);
    }
    return this.arp.output(r.nextHop, frame, meta);
  }

  /** Send a packet whose IP header the caller wrote (IGMP's, with a Router Alert option) to a fixed MAC. */
  sendRaw(frame: Uint8Array, dstMac: Uint8Array): boolean {
    this.counters.hot.tx_packets++;
    return this.eth.send(frame, dstMac, ETHERTYPE_IPV4);
  }

  close(): void {
    this.reassemblerObj?.close();
    this.pmtuMap?.clear();
  }

  /** For stats: reassembly state. */
  reassemblyState(): { inProgress: number; bufferedBytes: number } {
    return { inProgress: this.reassemblerObj?.inProgress ?? 0, bufferedBytes: this.reassemblerObj?.bufferedBytes ?? 0 };
  }
}

function formatU32(u: number): string {
  return `${u >>> 24}.${(u >>> 16) & 0xff}.${(u >>> 8) & 0xff}.${u & 0xff}`;
}
