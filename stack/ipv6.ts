/**
 * IPv6 (RFC 8200) for a host: validation, extension headers walked safely, reassembly,
 * fragmentation at the source, routing (on-link prefixes, a static route table, default routers),
 * path MTU (RFC 8201),
 * our addresses and their states (RFC 4862: tentative until DAD succeeds). Neighbour resolution
 * and router discovery live in ndp.ts; ICMPv6 in icmpv6.ts.
 */
import type { EthernetLayer } from "./ethernet.js";
import type { TimerQueue } from "./core/timers.js";
import type { Random } from "./core/random.js";
import type { GroupListener, IpOutput, IpPacket, Route, SendOptions, UpperProtocol } from "./ip.js";
import { RouteTable, type RouteEntry, type RouteOrigin } from "./routes.js";
import { errnoError } from "./core/errors.js";
import type { RxMeta } from "./netif/netif.js";
import { Counters } from "./core/stats.js";
import { Loopback } from "./loopback.js";
import { Reassembler, type ReassemblyOptions } from "./reassembly.js";
import { IPV6, NH_DEST_OPTS, NH_FRAGMENT, NH_HOP_BY_HOP, NH_NONE, NH_ROUTING, OPT_JUMBO, checkJumbo, emitFragmentHeader, emitIpv6, parseFragmentHeader, parseIpv6 } from "./wire/ipv6.js";
import { ETH, ETHERTYPE_IPV6 } from "./wire/ethernet.js";
import { IPPROTO_ICMPV6 } from "./wire/icmp.js";
import { ALL_NODES, bytesEqual, copyBytes, formatIPv6, inPrefix, ipKey, ipv6MulticastMac, isIPv6LinkLocal, isIPv6Multicast, isZero, solicitedNode } from "./wire/addr.js";
import { CSUM_PARTIAL, type TxMeta } from "./netif/netif.js";
import { completeChecksum } from "./wire/checksum.js";

export const IPV6_MIN_MTU = 1280;

export interface Ipv6Options {
  /** Default hop limit of packets we originate (updated by RAs' Cur Hop Limit). Default 64. */
  hopLimit?: number;
  /** Reassembly bounds; the time allowed defaults to 60 s here (RFC 8200 §4.5, Linux's ip6frag_time). */
  reassembly?: ReassemblyOptions;
  /** Path MTU entries kept. Default 1024. */
  pmtuCacheSize?: number;
  /** How long a learned path MTU is trusted (RFC 8201 §4: at least 5 minutes; default 10 min). */
  pmtuTimeoutMs?: number;
  /** Extension headers walked per packet before giving up. Default 16. */
  maxExtensionHeaders?: number;
}

export type AddressState = "tentative" | "preferred" | "deprecated" | "duplicate";

export interface Ipv6Address {
  address: Uint8Array;
  prefixLength: number;
  state: AddressState;
  origin: "link-local" | "static" | "slaac";
  /** Absolute clock times (ms); Infinity = forever. */
  validUntil: number;
  preferredUntil: number;
}

export interface OnLinkPrefix {
  prefix: Uint8Array;
  length: number;
  validUntil: number;
}

/** A static route: destination prefix, gateway (or on-link) and metric. */
export interface Ipv6RouteEntry extends RouteEntry {
  /** The prefix, masked to its length (16 bytes). */
  readonly dst: Uint8Array;
  /** Next hop; undefined: on-link. */
  readonly gateway: Uint8Array | undefined;
}

const sameRoute6 = (a: Ipv6RouteEntry, b: Ipv6RouteEntry): boolean =>
  a.prefixLength === b.prefixLength &&
  a.metric === b.metric &&
  bytesEqual(a.dst, b.dst) &&
  (a.gateway === undefined ? b.gateway === undefined : b.gateway !== undefined && bytesEqual(a.gateway, b.gateway));

export interface Ipv6Route extends Route {
  nextHop: Uint8Array | undefined;
  fixedMac: Uint8Array | undefined;
  local: boolean;
}

/** Implemented by ndp.ts: resolves next hops and sends. */
export interface NeighbourResolver {
  output(nextHop: Uint8Array, frame: Uint8Array, meta?: TxMeta): boolean;
  defaultRouter(): Uint8Array | undefined;
}

/** Implemented by icmpv6.ts. */
export interface Icmpv6ErrorSink {
  sendError(pkt: IpPacket, type: number, code: number, rest?: number): void;
  sendIcmpError(pkt: IpPacket, kind: "port_unreachable" | "protocol_unreachable"): void;
}

/** One object shape for every route (route() runs for every datagram sent). */
function routeOf6(src: Uint8Array, dst: Uint8Array, mtu: number, nextHop: Uint8Array | undefined, fixedMac: Uint8Array | undefined, local: boolean): Ipv6Route {
  return { family: 6, src: copyBytes(src), dst, headroom: ETH.HEADER_LEN + IPV6.HEADER_LEN, mtu, nextHop, fixedMac, local, broadcast: false };
}

export class Ipv6Layer implements IpOutput {
  readonly family = 6 as const;
  readonly counters = new Counters("ipv6", { rx_packets: 0, delivered: 0, tx_packets: 0 });
  private readonly addrs: Ipv6Address[] = [];
  private readonly prefixes: OnLinkPrefix[] = [];
  private curHopLimit: number;
  private readonly protocols = new Map<number, UpperProtocol>();
  private readonly reassembler: Reassembler;
  private readonly fragNextHeader = new Map<string, number>();
  private readonly pmtu = new Map<string, { mtu: number; expires: number }>();
  private readonly groups = new Map<string, number>(); // joined multicast groups -> refcount
  private readonly pmtuCacheSize: number;
  private readonly pmtuTimeoutMs: number;
  private readonly maxExt: number;
  private readonly loop: Loopback;
  private ndp: NeighbourResolver | undefined;
  private icmp: Icmpv6ErrorSink | undefined;
  private groupListener: GroupListener | undefined;
  /** Static routes (a static default gateway is ::/0 here; otherwise routers learned from RAs are used). */
  private readonly table = new RouteTable<Ipv6RouteEntry>(sameRoute6);
  /** The link MTU an RA announced (§6.3.4), 0 until one does. */
  private raMtu = 0;

  constructor(
    private readonly eth: EthernetLayer,
    private readonly timers: TimerQueue,
    private readonly random: Random,
    readonly linkMtu: number,
    opts: Ipv6Options = {},
  ) {
    this.curHopLimit = opts.hopLimit ?? 64;
    this.pmtuCacheSize = opts.pmtuCacheSize ?? 1024;
    this.pmtuTimeoutMs = opts.pmtuTimeoutMs ?? 600_000;
    this.maxExt = opts.maxExtensionHeaders ?? 16;
    const reassembly = { ...opts.reassembly, timeoutMs: opts.reassembly?.timeoutMs ?? 60_000 };
    this.reassembler = new Reassembler(timers, this.counters, reassembly, (first) => this.reassemblyTimeout(first));
    this.loop = new Loopback(
      (f, p) => this.input(f, p),
      () => this.batchEnd(),
      this.counters,
    );
    // RFC 4291 §2.8: every node listens to the all-nodes group.
    this.joinGroup(ALL_NODES);
  }

  /** Neighbour resolution and default routers (the NDP module; wired by the stack). */
  useNeighbours(ndp: NeighbourResolver): void {
    this.ndp = ndp;
  }

  /** The ICMPv6 module that reports errors about packets we receive (wired by the stack). */
  useIcmp(icmp: Icmpv6ErrorSink): void {
    this.icmp = icmp;
  }

  /** Who reports group joins and leaves (the MLD module; wired by the stack). */
  useGroupListener(l: GroupListener): void {
    this.groupListener = l;
  }

  /**
   * Add a static route to `dst`/`prefixLength` via `gateway` (undefined: on-link). A static
   * ::/0 is the default gateway, preferred to routers learned from RAs. EEXIST if present.
   */
  addRoute(dst: Uint8Array, prefixLength: number, gateway: Uint8Array | undefined, metric: number, origin: RouteOrigin): void {
    const d = maskPrefix(dst, prefixLength);
    if (!this.table.add({ dst: d, prefixLength, gateway: gateway && copyBytes(gateway), metric, origin })) throw errnoError("EEXIST", "addRoute", `${formatIPv6(d)}/${prefixLength}`);
  }

  /** Remove static routes to `dst`/`prefixLength` (only via `gateway`, with `metric`, when given). ESRCH if none matched. */
  removeRoute(dst: Uint8Array, prefixLength: number, gateway?: Uint8Array, metric?: number): void {
    const d = maskPrefix(dst, prefixLength);
    const n = this.table.removeWhere(
      (r) =>
        r.prefixLength === prefixLength &&
        bytesEqual(r.dst, d) &&
        (gateway === undefined || (r.gateway !== undefined && bytesEqual(r.gateway, gateway))) &&
        (metric === undefined || r.metric === metric),
    );
    if (n === 0) throw errnoError("ESRCH", "removeRoute", `${formatIPv6(d)}/${prefixLength}`);
  }

  /** The static routes, longest prefix first. */
  get routes(): readonly Ipv6RouteEntry[] {
    return this.table.entries;
  }

  /** On-link prefixes (from static addresses and RAs) still valid. */
  onLinkPrefixes(): readonly OnLinkPrefix[] {
    const now = this.timers.now();
    return this.prefixes.filter((p) => p.validUntil > now);
  }

  /** Hop limit of packets we originate (an RA's Cur Hop Limit changes it, §6.3.4). */
  get hopLimit(): number {
    return this.curHopLimit;
  }

  setHopLimit(n: number): void {
    if (Number.isInteger(n) && n > 0 && n <= 255) this.curHopLimit = n;
  }

  /** An RA's MTU option (§6.3.4): used when within [1280, the configured link MTU]. */
  setLinkMtu(mtu: number): void {
    if (mtu >= IPV6_MIN_MTU && mtu <= this.linkMtu) this.raMtu = mtu;
  }

  /** Our addresses and their states (read-only: NDP adds, DAD and lifetimes change them). */
  get addresses(): readonly Ipv6Address[] {
    return this.addrs;
  }

  addAddress(a: Ipv6Address): void {
    this.addrs.push(a);
    this.joinGroup(solicitedNode(a.address));
  }

  removeAddress(a: Ipv6Address): void {
    const i = this.addrs.indexOf(a);
    if (i < 0) return;
    this.addrs.splice(i, 1);
    this.leaveGroup(solicitedNode(a.address));
  }

  /** Forget on-link prefixes whose valid lifetime ran out. */
  expirePrefixes(now: number): void {
    for (let i = this.prefixes.length - 1; i >= 0; i--) if (this.prefixes[i]!.validUntil <= now) this.prefixes.splice(i, 1);
  }

  register(protocol: number, p: UpperProtocol): void {
    this.protocols.set(protocol, p);
  }

  protocol(n: number): UpperProtocol | undefined {
    return this.protocols.get(n);
  }

  // ---- addresses and groups ----------------------------------------------------------------

  /** Join a multicast group (accept packets to it, and frames to its MAC). */
  joinGroup(g: Uint8Array): void {
    const k = ipKey(g);
    const n = this.groups.get(k) ?? 0;
    this.groups.set(k, n + 1);
    if (n > 0) return;
    this.eth.joinMulticast(ipv6MulticastMac(g));
    this.groupListener?.joined(g);
  }

  leaveGroup(g: Uint8Array): void {
    const k = ipKey(g);
    const n = (this.groups.get(k) ?? 0) - 1;
    if (n > 0) return void this.groups.set(k, n);
    if (n === 0) {
      this.groups.delete(k);
      this.eth.leaveMulticast(ipv6MulticastMac(g));
      this.groupListener?.left(g);
    }
  }

  findAddress(a: Uint8Array, off = 0): Ipv6Address | undefined {
    for (const x of this.addrs) if (bytesEqual(x.address, a, off)) return x;
    return undefined;
  }

  /** One of our usable unicast addresses (not tentative, not duplicate)? */
  isLocal(a: Uint8Array): boolean {
    if (a.length !== 16) return false;
    const x = this.findAddress(a);
    return x !== undefined && (x.state === "preferred" || x.state === "deprecated");
  }

  linkLocal(): Uint8Array | undefined {
    for (const x of this.addrs) if (x.origin === "link-local" && x.state === "preferred") return x.address;
    return undefined;
  }

  addOnLinkPrefix(prefix: Uint8Array, length: number, validUntil: number): void {
    for (const p of this.prefixes) {
      if (p.length === length && inPrefix(prefix, p.prefix, length)) {
        p.validUntil = validUntil;
        return;
      }
    }
    if (this.prefixes.length >= 64) return void this.counters.drop("prefix_list_full");
    this.prefixes.push({ prefix: maskPrefix(prefix, length), length, validUntil });
  }

  removeOnLinkPrefix(prefix: Uint8Array, length: number): void {
    const i = this.prefixes.findIndex((p) => p.length === length && inPrefix(prefix, p.prefix, length));
    if (i >= 0) this.prefixes.splice(i, 1);
  }

  /** The longest valid on-link prefix holding `d` (-1: none). */
  private onLinkLength(d: Uint8Array): number {
    const now = this.timers.now();
    let best = -1;
    for (const p of this.prefixes) if (p.length > best && p.validUntil > now && inPrefix(d, p.prefix, p.length)) best = p.length;
    return best;
  }

  // ---- input --------------------------------------------------------------------------------

  input(_frame: Uint8Array, p: Uint8Array, meta?: RxMeta): void {
    const c = this.counters;
    c.hot.rx_packets++;
    const h = parseIpv6(p);
    if (typeof h === "string") return c.drop(h);
    let multicast = false;
    let tentativeOnly = false;
    if (isIPv6Multicast(h.dst)) {
      if (!this.groups.has(ipKey(h.dst))) return c.drop("multicast_not_joined");
      multicast = true;
    } else {
      const a = this.findAddress(h.dst);
      if (!a || a.state === "duplicate") return c.drop("not_for_us");
      // RFC 4862 §5.4: a tentative address receives only the NDP messages of its DAD.
      if (a.state === "tentative") tentativeOnly = true;
    }
    if (isIPv6Multicast(h.src)) return c.drop("multicast_source");
    if (!this.loop.active && !isZero(h.src) && this.isLocal(h.src) && !bytesEqual(h.src, h.dst)) return c.drop("own_source");

    // RFC 2675: Payload Length 0 with a hop-by-hop header announces a jumbogram, whose length only
    // the Jumbo Payload option holds; that header is read from what arrived, not from 0 bytes.
    const jumbo = h.payloadLen === 0 && h.nextHeader === NH_HOP_BY_HOP;
    const packet = jumbo ? p : p.subarray(0, IPV6.HEADER_LEN + h.payloadLen);
    let nh = h.nextHeader;
    let off: number = IPV6.HEADER_LEN; // offset in `data` of the header `nh` describes
    let nhFieldOff = 6; // where the Next Header field that names `nh` sits (param problem pointer)
    let data = packet;
    let reassembled = false;
    let fragmented = false; // came in a fragment, atomic or not (RFC 6980)
    for (let count = 0; ; count++) {
      if (count > this.maxExt) return c.drop("too_many_extension_headers");
      const pktView = (): IpPacket => ({ family: 6, src: h.src, dst: h.dst, protocol: nh, ttl: h.hopLimit, payload: data.subarray(off), packet, multicast, csumValid: false });
      if (nh === NH_HOP_BY_HOP || nh === NH_DEST_OPTS || nh === NH_ROUTING) {
        if (nh === NH_HOP_BY_HOP && off !== IPV6.HEADER_LEN) {
          c.drop("hop_by_hop_not_first");
          return this.icmp?.sendError(pktView(), 4, 1, nhFieldOff);
        }
        if (off + 8 > data.length) return c.drop("truncated_extension_header");
        const len = (data[off + 1]! + 1) * 8;
        if (off + len > data.length) return c.drop("truncated_extension_header");
        if (nh === NH_ROUTING) {
          // §4.4: we are the final destination only when Segments Left is 0; a host does not
          // forward, so anything else is a parameter problem pointing at Segments Left.
          if (data[off + 3] !== 0) {
            c.drop("routing_header_segments_left");
            return this.icmp?.sendError(pktView(), 4, 0, off + 3);
          }
        } else {
          const verdict = this.processOptions(data, off + 2, off + len, nh === NH_HOP_BY_HOP ? h.payloadLen : undefined);
          if (verdict !== "ok") {
            c.drop(verdict.reason);
            if (verdict.icmp && !(verdict.icmp === "unicast-only" && multicast)) this.icmp?.sendError({ ...pktView(), multicast: false }, 4, verdict.code, verdict.pointer);
            return;
          }
          if (jumbo) {
            // RFC 2675 §3: Payload Length 0 and no Jumbo Payload option.
            c.drop("jumbo_option_missing");
            return this.icmp?.sendError(pktView(), 4, 0, IPV6.PAYLOAD_LEN);
          }
        }
        nhFieldOff = off;
        nh = data[off]!;
        off += len;
        continue;
      }
      if (nh === NH_FRAGMENT) {
        if (reassembled) return c.drop("nested_fragment");
        const fh = parseFragmentHeader(data, off);
        if (!fh) return c.drop("truncated_extension_header");
        const fragData = data.subarray(off + 8);
        if (fh.offset === 0 && !fh.moreFragments) {
          // RFC 6946: an atomic fragment is processed in isolation, never mixed with others.
          c.inc("atomic_fragments");
          fragmented = true;
          nh = fh.nextHeader;
          off += 8;
          continue;
        }
        // §4.5: a fragment that would make the datagram longer than 65,535 bytes, or one with M set
        // whose length is not a multiple of 8, gets a parameter problem (code 0) pointing at its
        // Fragment Offset field, or at its Payload Length; like Linux, the rest of the datagram
        // (if any) is left to complete or time out.
        if (fh.offset + fragData.length > 65535) {
          c.drop("frag_too_big");
          return this.icmp?.sendError(pktView(), 4, 0, off + 2);
        }
        if (fh.moreFragments && fragData.length % 8 !== 0) {
          c.drop("frag_bad_length");
          return this.icmp?.sendError(pktView(), 4, 0, IPV6.PAYLOAD_LEN);
        }
        const key = `${ipKey(h.src)}${ipKey(h.dst)}${fh.ident}`;
        if (fh.offset === 0) {
          // RFC 7112: the first fragment must carry the whole header chain up to the upper-layer header.
          if (!this.chainComplete(fragData, fh.nextHeader)) {
            c.drop("incomplete_header_chain");
            return this.icmp?.sendError(pktView(), 4, 3, 0);
          }
          if (this.fragNextHeader.size > 4096) this.fragNextHeader.clear();
          this.fragNextHeader.set(key, fh.nextHeader);
        }
        const whole = this.reassembler.add(ipKey(h.src), key, fh.offset, fh.moreFragments, fragData, fh.offset === 0 ? packet : undefined);
        if (!whole) return;
        const first = this.fragNextHeader.get(key);
        this.fragNextHeader.delete(key);
        if (first === undefined) return c.drop("reassembly_no_first_fragment");
        nh = first;
        data = whole;
        off = 0;
        reassembled = true;
        fragmented = true;
        continue;
      }
      if (nh === NH_NONE) return c.drop("no_next_header");
      break;
    }
    // RFC 6980 §5: NDP messages (RS, RA, NS, NA, Redirect: 133-137) must never be fragmented, and
    // one that was is dropped, in an atomic fragment too (Linux: suppress_frag_ndisc): a spoofed
    // NS or RA cut into fragments would otherwise slip past filters that look at the first one.
    if (fragmented && nh === IPPROTO_ICMPV6 && data[off]! >= 133 && data[off]! <= 137) return c.drop("ndp_in_fragment");
    if (tentativeOnly && !(nh === IPPROTO_ICMPV6 && (data[off] === 135 || data[off] === 136))) return c.drop("to_tentative_address");
    const pkt: IpPacket = { family: 6, src: h.src, dst: h.dst, protocol: nh, ttl: h.hopLimit, payload: data.subarray(off), packet, multicast, csumValid: meta?.csumValid === true && !reassembled };
    const up = this.protocols.get(nh);
    if (!up) {
      c.drop("unknown_next_header");
      // §4: unrecognised Next Header: parameter problem code 1 pointing at the field.
      if (!multicast) this.icmp?.sendError(pkt, 4, 1, reassembled ? 6 : nhFieldOff);
      return;
    }
    c.hot.delivered++;
    up.input(pkt);
  }

  /**
   * RFC 8200 §4.2 option processing. The two high bits of an unknown option's type say what to do.
   * `payloadLen` is the IPv6 Payload Length when these are hop-by-hop options, the only place a
   * Jumbo Payload option (RFC 2675) may be.
   */
  private processOptions(p: Uint8Array, off: number, end: number, payloadLen: number | undefined): "ok" | { icmp: false | "always" | "unicast-only"; code: number; pointer: number; reason: string } {
    while (off < end) {
      const t = p[off]!;
      if (t === 0) {
        off++; // Pad1
        continue;
      }
      if (off + 2 > end) return { icmp: false, code: 2, pointer: off, reason: "unknown_option" };
      const len = p[off + 1]!;
      if (off + 2 + len > end) return { icmp: false, code: 2, pointer: off, reason: "unknown_option" };
      if (t === OPT_JUMBO && payloadLen !== undefined) {
        const j = checkJumbo(p, off, payloadLen);
        if (j === "bad_jumbo_option") return { icmp: false, code: 0, pointer: off, reason: j };
        // A jumbogram is over 65,535 bytes and a frame holds at most 64 KiB: its bytes are
        // missing, which Linux drops silently.
        if (j === "jumbogram") return { icmp: false, code: 0, pointer: off, reason: "jumbogram_truncated" };
        return { icmp: "unicast-only", code: 0, pointer: j.pointer, reason: j.reason };
      }
      if (t !== 1 && t !== 5 /* router alert */) {
        switch (t >> 6) {
          case 0:
            break;
          case 1:
            return { icmp: false, code: 2, pointer: off, reason: "unknown_option" };
          case 2:
            return { icmp: "always", code: 2, pointer: off, reason: "unknown_option" };
          default:
            return { icmp: "unicast-only", code: 2, pointer: off, reason: "unknown_option" };
        }
      }
      off += 2 + len;
    }
    return "ok";
  }

  /** Does this first-fragment data hold every extension header and the start of the upper-layer header? */
  private chainComplete(d: Uint8Array, nh: number): boolean {
    let off = 0;
    for (let i = 0; i < this.maxExt; i++) {
      if (nh === NH_HOP_BY_HOP || nh === NH_DEST_OPTS || nh === NH_ROUTING) {
        if (off + 2 > d.length) return false;
        const len = (d[off + 1]! + 1) * 8;
        nh = d[off]!;
        off += len;
        continue;
      }
      if (nh === NH_NONE) return true;
      const need = nh === 6 ? 20 : nh === 17 || nh === IPPROTO_ICMPV6 ? 4 : 0;
      return off + need <= d.length;
    }
    return false;
  }

  private reassemblyTimeout(first: Uint8Array): void {
    // RFC 8200 §4.5: time exceeded, code 1, if the first fragment arrived.
    const h = parseIpv6(first.length >= 40 ? first : new Uint8Array(0));
    if (typeof h === "string" || !this.icmp) return;
    this.icmp.sendError({ family: 6, src: h.src, dst: h.dst, protocol: h.nextHeader, ttl: h.hopLimit, payload: h.payload, packet: first, multicast: false, csumValid: false }, 3, 1);
  }

  batchEnd(): void {
    for (const p of this.protocols.values()) p.batchEnd?.();
  }

  // ---- routing and output --------------------------------------------------------------------

  /** RFC 6724 (simplified): a usable source of the destination's scope, longest matching prefix first. */
  selectSource(dst: Uint8Array): Uint8Array | undefined {
    const wantLinkLocal = isIPv6LinkLocal(dst) || (isIPv6Multicast(dst) && (dst[1]! & 0x0f) <= 2);
    let best: Ipv6Address | undefined;
    let bestScore = -1;
    for (const a of this.addrs) {
      if (a.state !== "preferred" && a.state !== "deprecated") continue;
      const ll = a.origin === "link-local";
      let score = ll === wantLinkLocal ? 1000 : 0;
      if (a.state === "preferred") score += 500;
      score += commonPrefixLength(a.address, dst);
      if (score > bestScore) {
        best = a;
        bestScore = score;
      }
    }
    return best?.address;
  }

  route(dst: Uint8Array, src?: Uint8Array): Ipv6Route | undefined {
    if (dst.length !== 16 || isZero(dst)) return undefined;
    if (src && !isZero(src) && !this.isLocal(src)) return undefined;
    const s = src && !isZero(src) ? src : this.selectSource(dst);
    if (!s) return undefined;
    const d = copyBytes(dst);
    if (this.isLocal(dst)) return routeOf6(s, d, 65535, undefined, undefined, true);
    if (isIPv6Multicast(dst)) return routeOf6(s, d, this.linkMtu, undefined, ipv6MulticastMac(dst), false);
    // The longest match among on-link prefixes and static routes; routers from RAs are the default.
    let nextHop: Uint8Array | undefined;
    if (isIPv6LinkLocal(dst)) nextHop = d;
    else {
      const onLink = this.onLinkLength(dst);
      const t = this.table.entries;
      let r: Ipv6RouteEntry | undefined;
      for (let i = 0; i < t.length && t[i]!.prefixLength > onLink; i++) {
        if (inPrefix(dst, t[i]!.dst, t[i]!.prefixLength)) {
          r = t[i];
          break;
        }
      }
      if (r) nextHop = r.gateway ?? d;
      else if (onLink >= 0) nextHop = d;
      else nextHop = this.ndp?.defaultRouter();
    }
    if (!nextHop) return undefined;
    return routeOf6(s, d, this.pathMtu(dst), nextHop, undefined, false);
  }

  pathMtu(d: Uint8Array): number {
    const e = this.pmtu.get(ipKey(d));
    if (!e) return this.linkMtu;
    if (e.expires <= this.timers.now()) {
      this.pmtu.delete(ipKey(d));
      return this.linkMtu;
    }
    return e.mtu;
  }

  /** RFC 8201: lower the path MTU to `dst` (never below 1280). Returns the value now in use. */
  updatePathMtu(dst: Uint8Array, mtu: number): number {
    const v = Math.max(IPV6_MIN_MTU, Math.min(mtu, this.linkMtu));
    const cur = this.pathMtu(dst);
    if (v >= cur) return cur;
    const k = ipKey(dst);
    if (!this.pmtu.has(k) && this.pmtu.size >= this.pmtuCacheSize) this.pmtu.delete(this.pmtu.keys().next().value as string);
    this.pmtu.set(k, { mtu: v, expires: this.timers.now() + this.pmtuTimeoutMs });
    this.counters.inc("pmtu_updates");
    return v;
  }

  send(route: Route, protocol: number, frame: Uint8Array, opts: SendOptions = {}, partial = false): boolean {
    const r = route as Ipv6Route;
    const c = this.counters;
    const hoff = ETH.HEADER_LEN;
    const payloadLen = frame.length - hoff - IPV6.HEADER_LEN;
    const hopLimit = opts.ttl ?? this.hopLimit;
    c.hot.tx_packets++;
    const mtu = r.local ? 65535 : Math.min(r.mtu, this.raMtu || r.mtu);
    // A multicast to a group we joined is heard by our own sockets too, unless they turned it off.
    const loop = r.fixedMac !== undefined && opts.multicastLoop === true && this.groups.has(ipKey(r.dst));
    // A TSO super-segment is cut to the MTU by the netif.
    if (IPV6.HEADER_LEN + payloadLen <= mtu || opts.gsoSize) {
      emitIpv6(frame, hoff, { trafficClass: opts.tos ?? 0, nextHeader: protocol, hopLimit, src: r.src, dst: r.dst, payloadLen });
      // Only the netif completes a partial checksum: a packet that reaches our own sockets is completed here.
      if (partial && (r.local || loop)) {
        completeChecksum(frame, hoff + IPV6.HEADER_LEN, frame.length, protocol);
        return this.deliver(r, frame, undefined, loop);
      }
      return this.deliver(r, frame, opts.gsoSize ? opts : partial ? CSUM_PARTIAL : undefined, loop);
    }
    if (payloadLen > 65535) {
      c.drop("too_big");
      return false;
    }
    if (partial) completeChecksum(frame, hoff + IPV6.HEADER_LEN, frame.length, protocol);
    // Source fragmentation (§4.5): fragment header + 8-byte multiples.
    const ident = this.random.u32();
    const maxData = ((mtu - IPV6.HEADER_LEN - 8) >> 3) << 3;
    const data = frame.subarray(hoff + IPV6.HEADER_LEN);
    let ok = true;
    for (let off = 0; off < payloadLen; off += maxData) {
      const n = Math.min(maxData, payloadLen - off);
      const f = new Uint8Array(hoff + IPV6.HEADER_LEN + 8 + n);
      emitIpv6(f, hoff, { trafficClass: opts.tos ?? 0, nextHeader: NH_FRAGMENT, hopLimit, src: r.src, dst: r.dst, payloadLen: 8 + n });
      emitFragmentHeader(f, hoff + IPV6.HEADER_LEN, protocol, off, off + n < payloadLen, ident);
      f.set(data.subarray(off, off + n), hoff + IPV6.HEADER_LEN + 8);
      c.inc("tx_fragments");
      ok = this.deliver(r, f, undefined, loop) && ok;
    }
    return ok;
  }

  /** Send a packet whose header the caller wrote completely (NDP messages from ::, for example). */
  sendRaw(frame: Uint8Array, dstMac: Uint8Array | undefined, nextHop: Uint8Array | undefined): boolean {
    this.counters.hot.tx_packets++;
    if (dstMac) return this.eth.send(frame, dstMac, ETHERTYPE_IPV6);
    if (nextHop && this.ndp) return this.ndp.output(nextHop, frame);
    return false;
  }

  private deliver(r: Ipv6Route, frame: Uint8Array, meta: TxMeta | undefined, loop: boolean): boolean {
    if (r.local) return this.loop.send(frame);
    if (r.fixedMac) {
      if (loop) this.loop.send(copyBytes(frame));
      return this.eth.send(frame, r.fixedMac, ETHERTYPE_IPV6, meta);
    }
    if (!this.ndp || !r.nextHop) return false;
    return this.ndp.output(r.nextHop, frame, meta);
  }

  sendIcmpError(pkt: IpPacket, kind: "port_unreachable" | "protocol_unreachable"): void {
    this.icmp?.sendIcmpError(pkt, kind);
  }

  reassemblyState(): { inProgress: number; bufferedBytes: number } {
    return { inProgress: this.reassembler.inProgress, bufferedBytes: this.reassembler.bufferedBytes };
  }

  close(): void {
    this.reassembler.close();
    this.pmtu.clear();
  }
}

function commonPrefixLength(a: Uint8Array, b: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < 16; i++) {
    const x = a[i]! ^ b[i]!;
    if (x === 0) {
      n += 8;
      continue;
    }
    return n + Math.clz32(x) - 24;
  }
  return n;
}

function maskPrefix(a: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 0, bits = length; i < 16 && bits > 0; i++, bits -= 8) out[i] = a[i]! & (bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff);
  return out;
}
