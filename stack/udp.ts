/**
 * UDP (RFC 768, RFC 1122 §4.1) over IPv4 and IPv6, with sockets shaped like node:dgram's.
 * Checksums are always generated; on receive they are verified, and a zero checksum is
 * accepted only over IPv4 (RFC 8200 §8.1 makes it mandatory on IPv6).
 *
 * Broadcast and multicast as Linux has them: sending to a broadcast address needs
 * setBroadcast(true) (EACCES otherwise); addMembership joins a group for the whole stack (the IP
 * layer's IGMP / MLD reports it); a datagram to a broadcast or multicast address goes to every
 * socket bound to its port (wildcard, or bound to that address), members or not, as with
 * IP_MULTICAST_ALL; multicast leaves with TTL 1 unless setMulticastTTL says otherwise.
 */
import { EventEmitter } from "node:events";
import type { IpOutput, IpPacket, UpperProtocol } from "./ip.js";
import type { Random } from "./core/random.js";
import { Counters } from "./core/stats.js";
import { UDP, IPPROTO_UDP, emitUdp, parseUdp, udpChecksumOk } from "./wire/udp.js";
import { bytesEqual, copyBytes, formatIP, ipFamily, isZero, parseIP } from "./wire/addr.js";
import { ERR_INVALID_ARG_TYPE, codedError, errnoError, stackClosedError } from "./core/errors.js";
import { validateBoolean, validateOneOf, validatePort } from "./core/validate.js";
import type { SendOptions } from "./ip.js";
import { newFrame } from "./netif/netif.js";

export interface UdpOptions {
  /** Ephemeral port range for sockets bound to port 0 (RFC 6056). Default 49152-65535. */
  ephemeralLow?: number;
  ephemeralHigh?: number;
  /** Max sockets per stack. Default 4096. */
  maxSockets?: number;
}

export interface RemoteInfo {
  address: string;
  family: "IPv4" | "IPv6";
  port: number;
  size: number;
}

export type UdpSocketType = "udp4" | "udp6";

export interface UdpSocketOptions {
  type: UdpSocketType;
  /** Let several sockets bind the same port (SO_REUSEADDR, as dgram's reuseAddr): each hears broadcasts and multicasts. */
  reuseAddr?: boolean;
}

type SendCallback = (err: Error | null, bytes?: number) => void;

/** A datagram socket on a paf stack. Events: 'listening', 'message' (msg, rinfo), 'error', 'close'. */
/** A UdpSocket's events and their arguments (like node:dgram's). */
export interface UdpSocketEvents {
  message: [msg: Buffer, rinfo: RemoteInfo];
  listening: [];
  close: [];
  error: [err: Error & { code?: string }];
  connect: [];
}

export class UdpSocket extends EventEmitter<UdpSocketEvents> {
  /** Local address bytes; empty (all zeros) means any. */
  localAddr: Uint8Array;
  /** The last destination text sent to, parsed (a socket usually answers the same peer again). */
  private lastDstText: string | undefined;
  private lastDst: Uint8Array | undefined;
  /** The last source address seen, formatted (the same peer usually sends again). */
  private lastSrc: Uint8Array | undefined;
  private lastSrcText = "";
  localPort = 0;
  private bound = false;
  private closed = false;
  /** SO_BROADCAST: may send to a broadcast address. */
  private broadcast = false;
  /** Unicast TTL / hop limit as sends pass it down (setTTL; one object, not one per datagram); undefined: the IP layer's default. */
  private ttlOpts: SendOptions | undefined;
  /** Send options for multicast datagrams: TTL 1 and loopback on, as Linux's defaults. */
  private readonly multicastOpts: SendOptions = { ttl: 1, multicastLoop: true };
  /** setMulticastInterface: the source of multicast datagrams (IPv4). */
  private multicastSrc: Uint8Array | undefined;
  /** Groups this socket joined (by address bytes as a key), left on close. */
  readonly memberships = new Map<string, Uint8Array>();

  constructor(
    private readonly layer: UdpLayer,
    readonly type: UdpSocketType,
    readonly reuseAddr = false,
  ) {
    super();
    this.localAddr = new Uint8Array(type === "udp4" ? 4 : 16);
  }

  get family(): 4 | 6 {
    return this.type === "udp4" ? 4 : 6;
  }

  /** bind([port][, address][, callback]) or bind({ port, address }, callback). Port 0 or omitted picks an ephemeral port. */
  bind(portOrOpts?: number | { port?: number; address?: string } | (() => void), address?: string | (() => void), cb?: () => void): this {
    let port = 0;
    let addr: string | undefined;
    if (typeof portOrOpts === "function") cb = portOrOpts;
    else if (typeof portOrOpts === "object" && portOrOpts) {
      port = portOrOpts.port ?? 0;
      addr = portOrOpts.address;
      if (typeof address === "function") cb = address;
    } else {
      port = portOrOpts ?? 0;
      if (typeof address === "function") cb = address;
      else addr = address;
    }
    if (this.layer.closed) throw stackClosedError("bind");
    if (this.bound) throw codedError("ERR_SOCKET_ALREADY_BOUND", "Socket is already bound");
    if (this.closed) throw codedError("ERR_SOCKET_DGRAM_NOT_RUNNING", "Not running");
    validatePort(port);
    if (addr !== undefined && addr !== "" && addr !== "0.0.0.0" && addr !== "::") {
      const fam = ipFamily(addr);
      if (fam !== this.family) throw codedError("EINVAL", `address ${addr} is not an IPv${this.family} address`);
      const a = parseIP(addr);
      if (!this.layer.isLocal(a)) throw codedError("EADDRNOTAVAIL", `address ${addr} is not assigned to this stack`);
      this.localAddr = a;
    }
    this.layer.attach(this, port);
    this.bound = true;
    if (cb) this.once("listening", cb);
    queueMicrotask(() => this.emit("listening"));
    return this;
  }

  address(): { address: string; family: "IPv4" | "IPv6"; port: number } {
    if (!this.bound) throw codedError("ERR_SOCKET_DGRAM_NOT_RUNNING", "Not running");
    return { address: formatIP(this.localAddr), family: this.family === 4 ? "IPv4" : "IPv6", port: this.localPort };
  }

  /** send(msg, port, address[, cb]) or send(msg, offset, length, port, address[, cb]), as node:dgram. */
  send(msg: Uint8Array | string, port: number, address: string, callback?: SendCallback): void;
  send(msg: Uint8Array | string, offset: number, length: number, port: number, address: string, callback?: SendCallback): void;
  send(msg: Uint8Array | string, a: unknown, b: unknown, c?: unknown, d?: unknown, e?: unknown): void {
    // Named parameters rather than a rest array: nothing allocated per datagram for the overload.
    let data = typeof msg === "string" ? Buffer.from(msg) : msg;
    let port: unknown = a;
    let address: unknown = b;
    let cb: unknown = c;
    if (typeof a === "number" && typeof b === "number" && typeof c === "number") {
      data = data.subarray(a, a + b);
      port = c;
      address = d;
      cb = e;
    }
    const callback = typeof cb === "function" ? (cb as SendCallback) : undefined;
    const err = this.layer.closed ? stackClosedError("send") : this.closed ? codedError("ERR_SOCKET_DGRAM_NOT_RUNNING", "Not running") : this.sendTo(data, port, address);
    if (callback) {
      const n = err ? undefined : data.length;
      queueMicrotask(() => callback(err, n));
    } else if (err) queueMicrotask(() => this.emit("error", err));
  }

  private sendTo(data: Uint8Array, port: unknown, address: unknown): Error | null {
    try {
      validatePort(port as number, "Port", false);
    } catch (e) {
      return e as Error;
    }
    // The last destination parsed is kept: a socket usually answers the same peer again.
    let dst = address === this.lastDstText ? this.lastDst : undefined;
    if (!dst) {
      if (typeof address !== "string" || ipFamily(address) !== this.family) return codedError("EINVAL", `destination ${String(address)} is not an IPv${this.family} address`);
      dst = parseIP(address);
      this.lastDstText = address;
      this.lastDst = dst;
    }
    if (!this.bound) {
      this.layer.attach(this, 0);
      this.bound = true;
    }
    return this.layer.output(this, dst, port as number, data);
  }

  /** Allow sending to broadcast addresses (SO_BROADCAST); without it such a send fails with EACCES. */
  setBroadcast(flag: boolean): void {
    this.mustBeBound("setBroadcast");
    this.broadcast = Boolean(flag);
  }

  /** TTL (IPv4) or hop limit (IPv6) of unicast datagrams, 1-255. */
  setTTL(ttl: number): number {
    this.mustBeBound("setTTL");
    this.ttlOpts = { ttl: checkTtl(ttl, "setTTL", 1) };
    return ttl;
  }

  /** TTL / hop limit of multicast datagrams, 0-255 (default 1: the link only). */
  setMulticastTTL(ttl: number): number {
    this.mustBeBound("setMulticastTTL");
    this.multicastOpts.ttl = checkTtl(ttl, "setMulticastTTL", 0);
    return ttl;
  }

  /** Whether our own sockets hear the multicasts this socket sends to a group the stack joined (default true). */
  setMulticastLoopback(flag: boolean): boolean {
    this.mustBeBound("setMulticastLoopback");
    this.multicastOpts.multicastLoop = Boolean(flag);
    return flag;
  }

  /**
   * The interface multicasts leave by: for udp4 one of the stack's addresses (the source used),
   * for udp6 a scope such as "::%tap0" (a stack has one link: accepted, nothing to choose).
   */
  setMulticastInterface(iface: string): void {
    this.mustBeBound("setMulticastInterface");
    if (typeof iface !== "string") throw new ERR_INVALID_ARG_TYPE("interfaceAddress", "of type string", iface);
    this.multicastSrc = this.layer.interfaceAddress(this, iface, "setMulticastInterface");
  }

  /**
   * Join multicast group `group` (the stack joins it once for all its sockets and reports it with
   * IGMPv2 / MLDv2). `iface` as for setMulticastInterface. EADDRINUSE if this socket is a member.
   */
  addMembership(group: string, iface?: string): void {
    this.layer.membership(this, group, iface, true);
  }

  /** Leave a group this socket joined (EADDRNOTAVAIL if it is not a member). */
  dropMembership(group: string, iface?: string): void {
    this.layer.membership(this, group, iface, false);
  }

  private mustBeBound(syscall: string): void {
    if (this.closed) throw codedError("ERR_SOCKET_DGRAM_NOT_RUNNING", "Not running");
    // Like libuv: socket options need the socket (node:dgram throws EBADF before bind()).
    if (!this.bound) throw errnoError("EBADF", syscall);
  }

  /** The send options for a datagram to `dst` (multicast TTL and loopback, or the unicast TTL). */
  sendOptions(dst: Uint8Array): SendOptions | undefined {
    if (dst.length === 4 ? (dst[0]! & 0xf0) === 0xe0 : dst[0] === 0xff) return this.multicastOpts;
    return this.ttlOpts;
  }

  /** The source to send from: the multicast interface's address for a multicast, else the bound address (undefined: any). */
  sourceFor(dst: Uint8Array): Uint8Array | undefined {
    if (this.multicastSrc && dst.length === 4 && (dst[0]! & 0xf0) === 0xe0) return this.multicastSrc;
    return isZero(this.localAddr) ? undefined : this.localAddr;
  }

  get broadcastAllowed(): boolean {
    return this.broadcast;
  }

  close(cb?: () => void): void {
    if (this.closed) return;
    this.closed = true;
    this.layer.leaveAll(this);
    if (this.bound) this.layer.detach(this);
    if (cb) this.once("close", cb);
    queueMicrotask(() => this.emit("close"));
  }

  /** Called by the layer for every datagram to this socket. */
  deliver(payload: Uint8Array, pkt: IpPacket, srcPort: number): void {
    const msg = Buffer.from(payload); // copy: the frame buffer is reused
    if (!this.lastSrc || !bytesEqual(pkt.src, this.lastSrc)) {
      this.lastSrc = copyBytes(pkt.src);
      this.lastSrcText = formatIP(pkt.src);
    }
    this.emit("message", msg, { address: this.lastSrcText, family: pkt.family === 4 ? "IPv4" : "IPv6", port: srcPort, size: msg.length } satisfies RemoteInfo);
  }
}

export class UdpLayer implements UpperProtocol {
  readonly counters = new Counters("udp", { rx_datagrams: 0, delivered: 0, tx_datagrams: 0 });
  /** Bound sockets by family*65536 + port; made at the first bind: an idle stack (of thousands) holds none. */
  private portsMap: Map<number, UdpSocket[]> | undefined;
  private get ports(): Map<number, UdpSocket[]> {
    return (this.portsMap ??= new Map());
  }
  private sockets = 0;
  private readonly low: number;
  private readonly high: number;
  private readonly maxSockets: number;
  /** The stack closed: no more sockets, binds or sends. */
  closed = false;

  constructor(
    private readonly ipv4: IpOutput | undefined,
    private readonly ipv6: IpOutput | undefined,
    private readonly random: Random,
    opts: UdpOptions = {},
    /** Where frames to send come from (the netif's allocFrame): contents undefined, every byte written. */
    private readonly allocFrame: (len: number) => Uint8Array = newFrame,
    /** The netif completes checksums (features.checksumOffload): datagrams leave with a partial one. */
    private readonly csumOffload = false,
  ) {
    this.low = opts.ephemeralLow ?? 49152;
    this.high = opts.ephemeralHigh ?? 65535;
    this.maxSockets = opts.maxSockets ?? 4096;
  }

  createSocket(type: UdpSocketType | UdpSocketOptions, onMessage?: (msg: Buffer, rinfo: RemoteInfo) => void): UdpSocket {
    if (this.closed) throw stackClosedError("createSocket");
    const t = typeof type === "string" ? type : type.type;
    validateOneOf(t, "type", ["udp4", "udp6"]);
    const reuse = typeof type === "object" && type.reuseAddr !== undefined ? validateBoolean(type.reuseAddr, "options.reuseAddr") : false;
    if ((t === "udp4" && !this.ipv4) || (t === "udp6" && !this.ipv6)) throw codedError("EAFNOSUPPORT", `this stack has no ${t === "udp4" ? "IPv4" : "IPv6"} configured`);
    const s = new UdpSocket(this, t, reuse);
    if (onMessage) s.on("message", onMessage);
    return s;
  }

  isLocal(a: Uint8Array): boolean {
    return (a.length === 4 ? this.ipv4 : this.ipv6)?.isLocal(a) ?? false;
  }

  /** Bind a socket to a port (0: an ephemeral one chosen at random, RFC 6056 §3.3.1). */
  attach(s: UdpSocket, port: number): void {
    if (this.sockets >= this.maxSockets) throw codedError("EMFILE", `too many UDP sockets (limit ${this.maxSockets})`);
    const fam = s.family;
    if (port === 0) {
      const span = this.high - this.low + 1;
      let p = this.low + (this.random.u32() % span);
      for (let i = 0; i < span; i++) {
        if (!this.ports.has(fam * 65536 + p)) break;
        p = p === this.high ? this.low : p + 1;
        if (i === span - 1) throw codedError("EADDRINUSE", "no free ephemeral UDP port");
      }
      port = p;
    }
    const key = fam * 65536 + port;
    const list = this.ports.get(key) ?? [];
    for (const o of list) {
      if (o.reuseAddr && s.reuseAddr) continue;
      if (isZero(o.localAddr) || isZero(s.localAddr) || bytesEqual(o.localAddr, s.localAddr)) {
        throw codedError("EADDRINUSE", `UDP port ${port} is already in use`);
      }
    }
    list.push(s);
    this.ports.set(key, list);
    s.localPort = port;
    this.sockets++;
  }

  detach(s: UdpSocket): void {
    const key = s.family * 65536 + s.localPort;
    const list = this.ports.get(key);
    if (!list) return;
    const i = list.indexOf(s);
    if (i < 0) return;
    list.splice(i, 1);
    if (list.length === 0) this.ports.delete(key);
    this.sockets--;
  }

  input(pkt: IpPacket): void {
    const c = this.counters;
    c.hot.rx_datagrams++;
    const r = parseUdp(pkt.payload);
    if (typeof r === "string") return c.drop(r);
    if (!pkt.csumValid) {
      if (r.checksum === 0) {
        if (pkt.family === 6) return c.drop("zero_checksum_ipv6");
      } else if (!udpChecksumOk(pkt.payload, pkt.src, pkt.dst)) return c.drop("bad_checksum");
    }
    const list = this.portsMap?.get(pkt.family * 65536 + r.dstPort);
    let target: UdpSocket | undefined;
    if (list) {
      if (pkt.multicast) return this.deliverToAll(list, r.payload, pkt, r.srcPort);
      for (const s of list) {
        if (bytesEqual(s.localAddr, pkt.dst)) {
          target = s;
          break;
        }
        if (isZero(s.localAddr)) target = s;
      }
    }
    if (!target) {
      c.drop("no_socket");
      const ip = pkt.family === 4 ? this.ipv4 : this.ipv6;
      if (!pkt.multicast) ip?.sendIcmpError(pkt, "port_unreachable");
      return;
    }
    c.hot.delivered++;
    target.deliver(r.payload, pkt, r.srcPort);
  }

  /** A broadcast or multicast datagram: every socket bound to the port and to that address or to any. */
  private deliverToAll(list: UdpSocket[], payload: Uint8Array, pkt: IpPacket, srcPort: number): void {
    let n = 0;
    for (const s of [...list]) {
      if (!isZero(s.localAddr) && !bytesEqual(s.localAddr, pkt.dst)) continue;
      n++;
      s.deliver(payload, pkt, srcPort);
    }
    if (n === 0) this.counters.drop("no_socket");
    else this.counters.inc("delivered", n);
  }

  // ---- multicast membership -------------------------------------------------------------------

  /** Join (`join`) or leave a group for socket `s`; errors as Linux's setsockopt gives them. */
  membership(s: UdpSocket, group: string, iface: string | undefined, join: boolean): void {
    const syscall = join ? "addMembership" : "dropMembership";
    if (typeof group !== "string" || group === "") throw codedError("ERR_MISSING_ARGS", 'The "multicastAddress" argument must be specified');
    if (iface !== undefined) this.interfaceAddress(s, iface, syscall);
    const fam = ipFamily(group);
    if (fam !== s.family) throw errnoError("EINVAL", syscall);
    const g = parseIP(group);
    if (fam === 4 ? (g[0]! & 0xf0) !== 0xe0 : g[0] !== 0xff) throw errnoError("EINVAL", syscall);
    const ip = (fam === 4 ? this.ipv4 : this.ipv6)!;
    const k = formatIP(g);
    if (join) {
      if (s.memberships.has(k)) throw errnoError("EADDRINUSE", syscall);
      s.memberships.set(k, g);
      ip.joinGroup(g);
    } else {
      if (!s.memberships.delete(k)) throw errnoError("EADDRNOTAVAIL", syscall);
      ip.leaveGroup(g);
    }
  }

  leaveAll(s: UdpSocket): void {
    const ip = s.family === 4 ? this.ipv4 : this.ipv6;
    for (const g of s.memberships.values()) ip?.leaveGroup(g);
    s.memberships.clear();
  }

  /** The address an interface argument names: for udp4 one of ours (ENODEV otherwise, as Linux); udp6 takes any scope. */
  interfaceAddress(s: UdpSocket, iface: string, syscall: string): Uint8Array | undefined {
    if (s.family === 6) {
      if (ipFamily(iface) !== 6) throw errnoError("EINVAL", syscall);
      return undefined;
    }
    if (ipFamily(iface) !== 4) throw errnoError("EINVAL", syscall);
    const a = parseIP(iface);
    if (isZero(a)) return undefined;
    if (!this.isLocal(a)) throw errnoError("ENODEV", syscall, `${iface} is not an address of this stack`);
    return a;
  }

  icmpError(): void {
    // Node's dgram reports ICMP errors only on connected sockets; ours are unconnected. Counted.
    this.counters.inc("icmp_errors");
  }

  /** Returns an Error if the datagram could not be sent. */
  output(s: UdpSocket, dst: Uint8Array, port: number, data: Uint8Array): Error | null {
    const ip = dst.length === 4 ? this.ipv4 : this.ipv6;
    if (!ip) return codedError("EAFNOSUPPORT", "address family not configured");
    if (data.length > 65535 - UDP.HEADER_LEN - (dst.length === 4 ? 20 : 0)) return codedError("EMSGSIZE", `datagram of ${data.length} bytes is too large`);
    // Used for this datagram only, and `dst` is the socket's own parsed copy: no copy of it.
    const route = ip.route(dst, s.sourceFor(dst), true);
    if (!route) {
      this.counters.drop("no_route");
      return codedError("EHOSTUNREACH", `no route to ${formatIP(dst)}`);
    }
    // Linux: a broadcast needs SO_BROADCAST (udp_sendmsg's RTCF_BROADCAST check).
    if (route.broadcast && !s.broadcastAllowed) {
      this.counters.drop("broadcast_not_allowed");
      return errnoError("EACCES", "send", `${formatIP(dst)}:${port}`);
    }
    const frame = this.allocFrame(route.headroom + UDP.HEADER_LEN + data.length);
    frame.set(data, route.headroom + UDP.HEADER_LEN);
    // With checksum offload the IP layer completes the checksum where the netif will not (IpOutput.send).
    emitUdp(frame, route.headroom, s.localPort, port, data.length, route.src, route.dst, this.csumOffload);
    this.counters.hot.tx_datagrams++;
    if (!ip.send(route, IPPROTO_UDP, frame, s.sendOptions(dst), this.csumOffload)) return codedError("ENOBUFS", "datagram dropped on output (queue full or too big)");
    return null;
  }

  close(): void {
    this.closed = true;
    for (const list of [...(this.portsMap?.values() ?? [])]) for (const s of [...list]) s.close();
  }
}

function checkTtl(ttl: unknown, syscall: string, min: number): number {
  if (typeof ttl !== "number") throw new ERR_INVALID_ARG_TYPE("ttl", "of type number", ttl);
  if (!Number.isInteger(ttl) || ttl < min || ttl > 255) throw errnoError("EINVAL", syscall);
  return ttl;
}
