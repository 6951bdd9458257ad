/**
 * IPv4 (RFC 791, host requirements RFC 1122 §3.2.1): validation, demultiplexing to upper
 * protocols, reassembly, fragmentation on send, on-link / default-gateway routing, path MTU cache.
 * The layer is a host, never a router: it does not forward.
 */
import type { EthernetLayer } from "./ethernet.js";
import type { TimerQueue } from "./core/timers.js";
import type { Random } from "./core/random.js";
import type { IpOutput, IpPacket, Route, SendOptions, UpperProtocol } from "./ip.js";
import type { RxMeta } from "./netif/netif.js";
import { Counters } from "./core/stats.js";
import { Loopback } from "./loopback.js";
import { Ipv4Ident } from "./ipv4id.js";
import { Reassembler, type ReassemblyOptions } from "./reassembly.js";
import { IPV4, emitIpv4, parseIpv4 } from "./wire/ipv4.js";
import { ETH, ETHERTYPE_IPV4 } from "./wire/ethernet.js";

import { BROADCAST_MAC, copyBytes, ipv4MulticastMac, ipv4ToU32 } from "./wire/addr.js";
import type { TxMeta } from "./netif/netif.js";

export interface Ipv4Config {
  address: Uint8Array;
  prefixLength: number;
  gateway?: Uint8Array | undefined;
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

/** Resolves IPv4 next hops (arp.ts) and sends. */
export interface Ipv4Neighbours {
  output(nextHop: number, frame: Uint8Array, meta?: TxMeta): boolean;
}

export interface Icmpv4ErrorSink {
  sendError(pkt: IpPacket, type: number, code: number, rest?: number): void;
  sendIcmpError(pkt: IpPacket, kind: "port_unreachable" | "protocol_unreachable"): void;
}

const LIMITED_BROADCAST = 0xffffffff;

/** One object shape for every route (route() runs for every datagram sent). */
function routeOf4(src: Uint8Array, dst: Uint8Array, mtu: number, nextHop: number, fixedMac: Uint8Array | undefined, local: boolean): Ipv4Route {
  return { family: 4, src, dst: copyBytes(dst), headroom: ETH.HEADER_LEN + IPV4.MIN_HEADER_LEN, mtu, nextHop, fixedMac, local };
}

export class Ipv4Layer implements IpOutput {
  readonly family = 4 as const;
  readonly counters = new Counters("ipv4");
  private readonly protocols = new Map<number, UpperProtocol>();
  private readonly reassembler: Reassembler;
  private readonly pmtu = new Map<number, { mtu: number; expires: number }>();
  private cfg: Ipv4Config | undefined;
  private addr = 0;
  private mask = 0;
  private readonly ident: Ipv4Ident;
  private readonly ttl: number;
  private readonly pmtuCacheSize: number;
  private readonly pmtuTimeoutMs: number;
  readonly minPmtu: number;
  /** How errors about received packets are sent (the ICMPv4 module; see useIcmp). */
  private icmp: Icmpv4ErrorSink | undefined;
  private readonly loop: Loopback;

  constructor(
    private readonly eth: EthernetLayer,
    private readonly arp: Ipv4Neighbours & { setAddress(ip: Uint8Array): void },
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
    this.reassembler = new Reassembler(timers, this.counters, opts.reassembly, (first) => this.reassemblyTimeout(first));
    this.loop = new Loopback((f, p) => this.input(f, p), () => this.batchEnd(), this.counters);
  }

  /** The ICMPv4 module that reports errors about packets we receive (wired by the stack). */
  useIcmp(icmp: Icmpv4ErrorSink): void {
    this.icmp = icmp;
  }

  /** Configure (or change) our address; announces it with gratuitous ARP. */
  configure(cfg: Ipv4Config): void {
    this.cfg = cfg;
    this.addr = ipv4ToU32(cfg.address);
    this.mask = cfg.prefixLength === 0 ? 0 : (0xffffffff << (32 - cfg.prefixLength)) >>> 0;
    this.arp.setAddress(cfg.address);
  }

  get address(): Uint8Array | undefined {
    return this.cfg?.address;
  }

  get config(): Ipv4Config | undefined {
    return this.cfg;
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
    return a.length === 4 && this.addr !== 0 && ipv4ToU32(a) === this.addr;
  }

  private isBroadcast(d: number): boolean {
    return d === LIMITED_BROADCAST || (this.addr !== 0 && this.mask !== 0xffffffff && (d & ~this.mask) >>> 0 === (~this.mask >>> 0) && (d & this.mask) >>> 0 === (this.addr & this.mask) >>> 0);
  }

  // ---- input -------------------------------------------------------------------------------

  input(_frame: Uint8Array, p: Uint8Array, meta?: RxMeta): void {
    const c = this.counters;
    c.inc("rx_packets");
    const r = parseIpv4(p);
    if (typeof r === "string") return c.drop(r);
    const d = ipv4ToU32(r.dst);
    const s = ipv4ToU32(r.src);
    let multicast = false;
    if (d !== this.addr || this.addr === 0) {
      if (this.isBroadcast(d)) multicast = true;
      else if (d >>> 28 === 0xe) multicast = true; // 224.0.0.0/4: we accept, protocols decide
      else return c.drop("not_for_us");
    }
    // Martian sources (RFC 1122 §3.2.1.3): broadcast, multicast, and loopback are never valid senders.
    if (s === LIMITED_BROADCAST || s >>> 28 === 0xe || s >>> 24 === 127 || (s !== 0 && this.isBroadcast(s))) return c.drop("martian_source");
    if (s === this.addr && s !== 0 && !this.loop.active) return c.drop("own_source");

    let payload = r.payload;
    if (r.moreFragments || r.fragOffset !== 0) {
      const key = `${s}:${d}:${r.protocol}:${r.ident}`;
      const whole = this.reassembler.add(String(s), key, r.fragOffset, r.moreFragments, r.payload, p.subarray(0, r.totalLen));
      if (!whole) return;
      payload = whole;
    }
    const h = this.protocols.get(r.protocol);
    const pkt: IpPacket = {
      family: 4,
      src: r.src,
      dst: r.dst,
      protocol: r.protocol,
      ttl: r.ttl,
      payload,
      packet: p.subarray(0, r.totalLen),
      multicast,
      csumValid: meta?.csumValid === true && payload === r.payload,
    };
    if (!h) {
      c.drop("unknown_protocol");
      if (!multicast) this.icmp?.sendError(pkt, 3, 2); // protocol unreachable
      return;
    }
    c.inc("delivered");
    h.input(pkt);
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

  route(dst: Uint8Array, src?: Uint8Array): Ipv4Route | undefined {
    if (dst.length !== 4 || !this.cfg) return undefined;
    if (src && !(src.length === 4 && (ipv4ToU32(src) === this.addr || ipv4ToU32(src) === 0))) return undefined;
    const d = ipv4ToU32(dst);
    const from = this.cfg.address;
    if (d === this.addr) return routeOf4(from, dst, 65535, d, undefined, true);
    if (this.isBroadcast(d)) return routeOf4(from, dst, this.linkMtu, 0, BROADCAST_MAC, false);
    if (d >>> 28 === 0xe) return routeOf4(from, dst, this.linkMtu, 0, ipv4MulticastMac(dst), false);
    if (d === 0 || d >>> 24 === 127) return undefined;
    let nextHop: number;
    if ((d & this.mask) >>> 0 === (this.addr & this.mask) >>> 0) nextHop = d;
    else if (this.cfg.gateway) nextHop = ipv4ToU32(this.cfg.gateway);
    else return undefined;
    return routeOf4(from, dst, this.pathMtu(d), nextHop, undefined, false);
  }

  pathMtu(d: number): number {
    const e = this.pmtu.get(d);
    if (!e) return this.linkMtu;
    if (e.expires <= this.timers.now()) {
      this.pmtu.delete(d);
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

  send(route: Route, protocol: number, frame: Uint8Array, opts: SendOptions = {}): boolean {
    const r = route as Ipv4Route;
    const c = this.counters;
    const hoff = ETH.HEADER_LEN;
    const payloadLen = frame.length - hoff - IPV4.MIN_HEADER_LEN;
    const ttl = opts.ttl ?? this.ttl;
    // Never one global counter: see ipv4id.ts (RFC 6864, RFC 7739).
    const ident = opts.dontFragment ? 0 : this.ident.next(ipv4ToU32(r.src), ipv4ToU32(r.dst), protocol, this.timers.now());
    c.inc("tx_packets");
    // A TSO super-segment is cut to the MTU by the netif.
    if (IPV4.MIN_HEADER_LEN + payloadLen <= r.mtu || opts.gsoSize) {
      emitIpv4(frame, hoff, { ident, ttl, tos: opts.tos ?? 0, dontFragment: opts.dontFragment ?? false, protocol, src: r.src, dst: r.dst, payloadLen });
      return this.deliver(r, frame, opts.gsoSize ? opts : undefined);
    }
    if (opts.dontFragment) {
      c.drop("too_big_df");
      return false;
    }
    if (payloadLen > 65535 - IPV4.MIN_HEADER_LEN) {
      c.drop("too_big");
      return false;
    }
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
      ok = this.deliver(r, f) && ok;
    }
    return ok;
  }

  private deliver(r: Ipv4Route, frame: Uint8Array, meta?: TxMeta): boolean {
    if (r.local) return this.loop.send(frame);
    if (r.fixedMac) return this.eth.send(frame, r.fixedMac, ETHERTYPE_IPV4, meta);
    return this.arp.output(r.nextHop, frame, meta);
  }

  /** Packets to our own address never touch the link: they are fed back to input on the next microtask. */


  close(): void {
    this.reassembler.close();
    this.pmtu.clear();
  }

  /** For stats: reassembly state. */
  reassemblyState(): { inProgress: number; bufferedBytes: number } {
    return { inProgress: this.reassembler.inProgress, bufferedBytes: this.reassembler.bufferedBytes };
  }
}

