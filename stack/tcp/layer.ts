/**
 * The TCP layer of a stack: demultiplexes segments to connections by 4-tuple, owns listeners
 * (with a bounded SYN queue and SYN cookies beyond it, RFC 4987), answers segments for closed
 * ports with RST (RFC 9293 §3.10.7.1, rate limited), chooses initial sequence numbers (RFC 6528)
 * and ephemeral ports (RFC 6056), and writes segments into frames.
 */
import type { IpOutput, IpPacket, IcmpErrorInfo, Route, UpperProtocol } from "../ip.js";
import type { Random } from "../core/random.js";
import type { TimerQueue } from "../core/timers.js";
import { Counters } from "../core/stats.js";
import { TokenBucket } from "../core/ratelimit.js";
import { ACK, FIN, IPPROTO_TCP, RST, SYN, emitTcp, newSegment, optionsLength, parseTcp, tcpChecksumOk, type TcpEmit, type TcpSegment } from "../wire/tcp.js";
import { formatIP, ipKey, isZero } from "../wire/addr.js";
import { seqAdd } from "./seq.js";
import { Tcb } from "./tcb.js";
import type { SendQueue } from "./buffers.js";
import type { CongestionControlName } from "./cc.js";
import { TcpMemory, type HostShare } from "./memory.js";
import { SipHash } from "../core/siphash.js";
import { GSO_SIZE, type GsoFrame } from "../netif/netif.js";

export interface TcpOptions {
  /** Send buffer per connection (bytes): write() returns false beyond it. Default 256 KiB. */
  sendBufferSize?: number;
  /** Receive buffer per connection (bytes): the most we advertise. Default 256 KiB. */
  receiveBufferSize?: number;
  /** Out-of-order segments held per connection. Default 1024 (bytes are bounded by the receive buffer). */
  maxOooSegments?: number;
  /** Connections (any state) per stack. Default 65536. */
  maxConnections?: number;
  /**
   * Bytes held in TCP buffers (unacknowledged send data, out-of-order and unread received data)
   * by all connections of the stack together: the hard bound. Windows advertised but not filled
   * count for nothing. Beyond it, writes see backpressure, a connection already holding
   * `minReceiveWindow` takes no more data (dropped, counted; the peer retransmits) and
   * out-of-order segments are dropped. Default 256 MiB.
   */
  maxBufferedBytes?: number;
  /**
   * Memory pressure starts here (Linux's tcp_mem[1]): above it every connection's receive buffer
   * shrinks in proportion, down to `minReceiveWindow` at `maxBufferedBytes`. Default half of
   * `maxBufferedBytes`.
   */
  bufferPressureBytes?: number;
  /**
   * Bytes the connections of one remote address may hold together; its windows shrink from half
   * of it, as for the stack. Default a quarter of `maxBufferedBytes`.
   */
  maxBufferedBytesPerHost?: number;
  /**
   * Receive buffer every connection keeps under any pressure (Linux's tcp_rmem[0]): a newcomer
   * can always send its request. Default 4096.
   */
  minReceiveWindow?: number;
  /**
   * A connection the application has closed (destroyed) and whose peer does not finish closing
   * is reset after this long, whatever state it is in (ms). Default 60000.
   */
  orphanTimeoutMs?: number;
  /** Half-open connections per stack; beyond it (or a listener's backlog) SYN cookies answer. Default 4096. */
  synQueueSize?: number;
  /** "cubic" (default) or "newreno". */
  congestionControl?: CongestionControlName;
  /** RFC 6298 bounds (ms). Defaults: min 200 (Linux's), max 120000, initial 1000. */
  minRtoMs?: number;
  maxRtoMs?: number;
  initialRtoMs?: number;
  /** Retransmission timeouts before a connection is aborted with ETIMEDOUT (like tcp_retries2). Default 15. */
  maxRetransmits?: number;
  /** SYN retransmissions before connect() fails with ETIMEDOUT (like tcp_syn_retries). Default 6. */
  synRetries?: number;
  /** Delayed ACK timeout (ms). Default 40 (Linux's minimum; RFC 9293 allows up to 500). */
  delayedAckMs?: number;
  /** Maximum segment lifetime (ms); TIME-WAIT lasts 2 x MSL. Default 30000. */
  mslMs?: number;
  /**
   * Connections in TIME-WAIT at once (Linux's tcp_max_tw_buckets); beyond it a closing
   * connection skips TIME-WAIT (counted). Default 32768.
   */
  maxTimeWait?: number;
  /** FIN-WAIT-2 timeout after our FIN is acknowledged and the peer never closes (ms, 0 = never). Default 60000. */
  finWait2TimeoutMs?: number;
  /** Keepalive: idle time before the first probe, interval, probes before ETIMEDOUT. Defaults 7200000, 75000, 9. */
  keepAliveIdleMs?: number;
  keepAliveIntervalMs?: number;
  keepAliveProbes?: number;
  /** RFC 7323 / RFC 2018 options offered. Default true for all three. */
  windowScaling?: boolean;
  timestamps?: boolean;
  sack?: boolean;
  /** RFC 3042 limited transmit. Default true. */
  limitedTransmit?: boolean;
  /** RFC 8985 §7 tail loss probes. Default true. */
  tailLossProbe?: boolean;
  /** RSTs for segments to closed ports, and RFC 5961 challenge ACKs, per second. Default 100 each. */
  rstRate?: number;
  challengeAckRate?: number;
  /** Ephemeral port range (RFC 6056). Default 49152-65535. */
  ephemeralLow?: number;
  ephemeralHigh?: number;
}

export type TcpOptionsResolved = Required<TcpOptions>;

export function resolveTcpOptions(o: TcpOptions = {}): TcpOptionsResolved {
  return {
    sendBufferSize: o.sendBufferSize ?? 256 * 1024,
    receiveBufferSize: o.receiveBufferSize ?? 256 * 1024,
    maxOooSegments: o.maxOooSegments ?? 1024,
    maxConnections: o.maxConnections ?? 65536,
    maxBufferedBytes: o.maxBufferedBytes ?? 256 * 1024 * 1024,
    bufferPressureBytes: o.bufferPressureBytes ?? Math.floor((o.maxBufferedBytes ?? 256 * 1024 * 1024) / 2),
    maxBufferedBytesPerHost: o.maxBufferedBytesPerHost ?? Math.floor((o.maxBufferedBytes ?? 256 * 1024 * 1024) / 4),
    minReceiveWindow: o.minReceiveWindow ?? 4096,
    orphanTimeoutMs: o.orphanTimeoutMs ?? 60_000,
    synQueueSize: o.synQueueSize ?? 4096,
    congestionControl: o.congestionControl ?? "cubic",
    minRtoMs: o.minRtoMs ?? 200,
    maxRtoMs: o.maxRtoMs ?? 120_000,
    initialRtoMs: o.initialRtoMs ?? 1000,
    maxRetransmits: o.maxRetransmits ?? 15,
    synRetries: o.synRetries ?? 6,
    delayedAckMs: o.delayedAckMs ?? 40,
    mslMs: o.mslMs ?? 30_000,
    maxTimeWait: o.maxTimeWait ?? 32768,
    finWait2TimeoutMs: o.finWait2TimeoutMs ?? 60_000,
    keepAliveIdleMs: o.keepAliveIdleMs ?? 7_200_000,
    keepAliveIntervalMs: o.keepAliveIntervalMs ?? 75_000,
    keepAliveProbes: o.keepAliveProbes ?? 9,
    windowScaling: o.windowScaling ?? true,
    timestamps: o.timestamps ?? true,
    sack: o.sack ?? true,
    limitedTransmit: o.limitedTransmit ?? true,
    tailLossProbe: o.tailLossProbe ?? true,
    rstRate: o.rstRate ?? 100,
    challengeAckRate: o.challengeAckRate ?? 100,
    ephemeralLow: o.ephemeralLow ?? 49152,
    ephemeralHigh: o.ephemeralHigh ?? 65535,
  };
}

function sysErr(code: string, message: string): Error & { code: string } {
  const e = new Error(message) as Error & { code: string };
  e.code = code;
  return e;
}

/** A listening endpoint. */
export class TcpListener {
  halfOpen = 0;
  closed = false;
  constructor(
    readonly layer: TcpLayer,
    readonly family: 4 | 6 | 0,
    readonly addr: Uint8Array | undefined,
    readonly port: number,
    readonly backlog: number,
    readonly accept: (t: Tcb) => void,
  ) {}
  onEstablished(t: Tcb): void {
    if (this.closed) return t.abort();
    this.accept(t);
  }
  close(): void {
    this.closed = true;
    this.layer.unlisten(this);
  }
}

const COOKIE_MSS = [536, 1200, 1440, 1460, 4312, 8960, 16384, 65495];
const NO_EXTRA: Readonly<Partial<TcpEmit>> = Object.freeze({});

export class TcpLayer implements UpperProtocol {
  readonly counters = new Counters("tcp");
  readonly o: TcpOptionsResolved;
  private readonly conns = new Map<string, Tcb>();
  private readonly listeners = new Map<number, TcpListener[]>();
  private readonly seg: TcpSegment = newSegment();
  private readonly flushSet = new Set<Tcb>();
  private flushScheduled = false;
  private readonly rstBucket: TokenBucket;
  private readonly challengeBucket: TokenBucket;
  /** Keyed PRFs for initial sequence numbers and SYN cookies, and their input scratch. */
  private readonly isnHash: SipHash;
  private readonly cookieHasher: SipHash;
  private readonly hashIn = new Uint8Array(48);
  private halfOpenTotal = 0;
  /** Connections the application has let go of that are still closing (see Tcb.orphan). */
  orphanCount = 0;
  /** Connections in TIME-WAIT (see maxTimeWait). */
  timeWaitCount = 0;
  /** Bytes held in all connections' buffers, per stack and per remote address (see maxBufferedBytes). */
  readonly memory: TcpMemory;

  /** Bytes in all connections' buffers. */
  get buffered(): number {
    return this.memory.held;
  }

  /** Connections whose writer is held back by the stack-wide bound, woken when memory frees. */
  private readonly waitingForMemory = new Set<Tcb>();
  private wakeScheduled = false;

  /** Bytes held by a connection of `host` change by `delta`. */
  charge(host: HostShare, delta: number): void {
    this.memory.charge(host, delta);
    if (delta < 0 && this.waitingForMemory.size > 0 && !this.wakeScheduled) {
      this.wakeScheduled = true;
      queueMicrotask(() => {
        this.wakeScheduled = false;
        const waiting = [...this.waitingForMemory];
        this.waitingForMemory.clear();
        for (const t of waiting) t.events?.onDrain();
      });
    }
  }

  waitForMemory(t: Tcb): void {
    this.waitingForMemory.add(t);
  }

  constructor(
    readonly ipv4: IpOutput | undefined,
    readonly ipv6: IpOutput | undefined,
    readonly timers: TimerQueue,
    readonly random: Random,
    opts: TcpOptions = {},
  ) {
    this.o = resolveTcpOptions(opts);
    this.memory = new TcpMemory(this.o);
    this.rstBucket = new TokenBucket(this.o.rstRate, this.o.rstRate, timers.now());
    this.challengeBucket = new TokenBucket(this.o.challengeAckRate, this.o.challengeAckRate, timers.now());
    const secret = random.fill(new Uint8Array(32));
    this.isnHash = new SipHash(secret.subarray(0, 16));
    this.cookieHasher = new SipHash(secret.subarray(16));
  }

  /** The demux key of a 4-tuple: one flat string of 16-bit units, built in one call (hashed on every segment). */
  key(remote: Uint8Array, rport: number, local: Uint8Array, lport: number): string {
    const r = remote;
    const l = local;
    if (r.length === 4 && l.length === 4) return String.fromCharCode((r[0]! << 8) | r[1]!, (r[2]! << 8) | r[3]!, rport, (l[0]! << 8) | l[1]!, (l[2]! << 8) | l[3]!, lport);
    return ipKey(remote) + String.fromCharCode(rport >> 8, rport & 0xff) + ipKey(local) + String.fromCharCode(lport >> 8, lport & 0xff);
  }

  /** Lay out addresses, ports and `extra` bytes in the hash scratch; returns the length used. */
  private hashInput(src: Uint8Array, dst: Uint8Array, sport: number, dport: number, ...extra: number[]): number {
    const b = this.hashIn;
    b.set(src, 0);
    b.set(dst, src.length);
    let o = src.length + dst.length;
    b[o++] = sport >> 8;
    b[o++] = sport & 0xff;
    b[o++] = dport >> 8;
    b[o++] = dport & 0xff;
    for (const x of extra) b[o++] = x;
    return o;
  }

  /** Number of connections (any state). */
  get connectionCount(): number {
    return this.conns.size;
  }

  connections(): Tcb[] {
    return [...this.conns.values()];
  }

  // ==== listen / connect ======================================================================

  listen(port: number, host: Uint8Array | undefined, backlog: number, accept: (t: Tcb) => void): TcpListener {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`invalid port ${port} (1..65535)`);
    const family = host ? (host.length === 4 ? 4 : 6) : 0;
    if (host && !isZero(host) && !(family === 4 ? this.ipv4 : this.ipv6)?.isLocal(host)) throw sysErr("EADDRNOTAVAIL", `address ${formatIP(host)} is not assigned to this stack`);
    const list = this.listeners.get(port) ?? [];
    for (const l of list) {
      if (l.family === 0 || family === 0 || (l.family === family && (!l.addr || !host || isZero(l.addr) || isZero(host) || ipKey(l.addr) === ipKey(host)))) {
        throw sysErr("EADDRINUSE", `TCP port ${port} is already in use`);
      }
    }
    const l = new TcpListener(this, family as 0 | 4 | 6, host && !isZero(host) ? host : undefined, port, backlog, accept);
    list.push(l);
    this.listeners.set(port, list);
    return l;
  }

  unlisten(l: TcpListener): void {
    const list = this.listeners.get(l.port);
    if (!list) return;
    const i = list.indexOf(l);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.listeners.delete(l.port);
  }

  /** Active open. Throws with a code on immediate failure. */
  connect(dst: Uint8Array, port: number, localPort = 0, src?: Uint8Array): Tcb {
    const ip = dst.length === 4 ? this.ipv4 : this.ipv6;
    if (!ip) throw sysErr("EAFNOSUPPORT", `this stack has no IPv${dst.length === 4 ? 4 : 6} configured`);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`invalid port ${port} (1..65535)`);
    const route = ip.route(dst, src);
    if (!route) throw sysErr("EHOSTUNREACH", `no route to ${formatIP(dst)}`);
    if (this.conns.size >= this.o.maxConnections) throw sysErr("EMFILE", `too many TCP connections (limit ${this.o.maxConnections})`);
    let lport = localPort;
    if (lport === 0) lport = this.ephemeralPort(route.dst, port, route.src);
    else if (this.conns.has(this.key(route.dst, port, route.src, lport))) throw sysErr("EADDRINUSE", `${formatIP(route.src)}:${lport} -> ${formatIP(dst)}:${port} already exists`);
    const t = new Tcb(this, route, lport, port, this.o);
    this.conns.set(t.key, t);
    t.connect(this.isn(route.src, lport, route.dst, port));
    return t;
  }

  /** RFC 6056 §3.3.1: a random starting point, then the first free port. */
  private ephemeralPort(dst: Uint8Array, dport: number, src: Uint8Array): number {
    const lo = this.o.ephemeralLow;
    const span = this.o.ephemeralHigh - lo + 1;
    let p = lo + (this.random.u32() % span);
    for (let i = 0; i < span; i++) {
      if (!this.conns.has(this.key(dst, dport, src, p)) && !this.listeners.has(p)) return p;
      p = p === this.o.ephemeralHigh ? lo : p + 1;
    }
    throw sysErr("EADDRNOTAVAIL", "no free ephemeral TCP port");
  }

  /** RFC 6528: ISN = M + F(4-tuple, secret), M a 4 µs clock, F SipHash-2-4 (as in Linux). */
  isn(src: Uint8Array, sport: number, dst: Uint8Array, dport: number): number {
    const f = this.isnHash.hash(this.hashIn, this.hashInput(src, dst, sport, dport));
    const m = Math.floor(this.timers.now() * 250);
    return (f + m) >>> 0;
  }

  // ==== input =================================================================================

  input(pkt: IpPacket): void {
    const c = this.counters;
    c.inc("rx_segments");
    const p = pkt.payload;
    const s = this.seg;
    const e = parseTcp(p, s);
    if (e) return c.drop(e);
    if (!pkt.csumValid && !tcpChecksumOk(p, pkt.src, pkt.dst)) return c.drop("bad_checksum");
    if (pkt.multicast) return c.drop("multicast");
    const t = this.conns.get(this.key(pkt.src, s.srcPort, pkt.dst, s.dstPort));
    if (t) {
      if (s.flags & SYN && !(s.flags & ACK) && t.canReuse(s)) {
        t.teardown(undefined);
      } else {
        t.input(s);
        return;
      }
    }
    const l = this.findListener(pkt.dst, s.dstPort);
    if (!l) {
      c.drop("no_listener");
      return this.resetFor(pkt, s);
    }
    if (s.flags & RST) return;
    if (s.flags & ACK) {
      // Maybe the third step of a handshake answered with a SYN cookie.
      if (!(s.flags & SYN) && this.acceptCookie(pkt, s, l)) return;
      return this.resetFor(pkt, s);
    }
    if (!(s.flags & SYN)) return c.drop("no_syn");
    this.onSyn(pkt, s, l);
  }

  private findListener(dst: Uint8Array, port: number): TcpListener | undefined {
    const list = this.listeners.get(port);
    if (!list) return undefined;
    let wild: TcpListener | undefined;
    for (const l of list) {
      if (l.family !== 0 && l.family !== (dst.length === 4 ? 4 : 6)) continue;
      if (l.addr && ipKey(l.addr) === ipKey(dst)) return l;
      if (!l.addr) wild = l;
    }
    return wild;
  }

  private onSyn(pkt: IpPacket, s: TcpSegment, l: TcpListener): void {
    const c = this.counters;
    const ip = pkt.family === 4 ? this.ipv4 : this.ipv6;
    const route = ip?.route(pkt.src, pkt.dst);
    if (!route) return c.drop("no_route");
    if (l.halfOpen >= l.backlog || this.halfOpenTotal >= this.o.synQueueSize || this.conns.size >= this.o.maxConnections) {
      return this.sendCookie(route, s);
    }
    const t = new Tcb(this, route, s.dstPort, s.srcPort, this.o);
    t.listener = l;
    l.halfOpen++;
    this.halfOpenTotal++;
    this.conns.set(t.key, t);
    c.inc("passive_opens");
    t.acceptSyn(s, this.isn(route.src, s.dstPort, route.dst, s.srcPort));
  }

  // ---- SYN cookies (RFC 4987 §3.6) ----------------------------------------------------------

  private cookieHash(route: Route, lport: number, rport: number, clientIsn: number, t: number): number {
    const n = this.hashInput(route.src, route.dst, lport, rport, clientIsn >>> 24, (clientIsn >>> 16) & 0xff, (clientIsn >>> 8) & 0xff, clientIsn & 0xff, t & 0xff);
    return this.cookieHasher.hash(this.hashIn, n) >>> 8; // 24 bits
  }

  private cookieTime(): number {
    return Math.floor(this.timers.now() / 64_000) & 31;
  }

  private sendCookie(route: Route, s: TcpSegment): void {
    this.counters.inc("syn_cookies_sent");
    let mi = 0;
    const mss = s.mss > 0 ? s.mss : 536;
    for (let i = 0; i < COOKIE_MSS.length; i++) if (COOKIE_MSS[i]! <= mss) mi = i;
    const t = this.cookieTime();
    const isn = ((this.cookieHash(route, s.dstPort, s.srcPort, s.seq, t) << 8) | (t << 3) | mi) >>> 0;
    const mssOurs = route.mtu - (route.family === 4 ? 20 : 40) - 20;
    this.emitRaw(route, s.dstPort, s.srcPort, isn, seqAdd(s.seq, 1), SYN | ACK, 65535, { mss: mssOurs });
  }

  private acceptCookie(pkt: IpPacket, s: TcpSegment, l: TcpListener): boolean {
    const cookie = (s.ack - 1) >>> 0;
    const t = (cookie >>> 3) & 31;
    const mi = cookie & 7;
    const now = this.cookieTime();
    if (t !== now && t !== ((now - 1) & 31)) return false;
    const ip = pkt.family === 4 ? this.ipv4 : this.ipv6;
    const route = ip?.route(pkt.src, pkt.dst);
    if (!route) return false;
    const clientIsn = (s.seq - 1) >>> 0;
    if (this.cookieHash(route, s.dstPort, s.srcPort, clientIsn, t) !== cookie >>> 8) return false;
    if (this.conns.size >= this.o.maxConnections) return false;
    this.counters.inc("syn_cookies_validated");
    // Rebuild the connection as if it had gone through SYN-RECEIVED (no WS/SACK/TS: not encoded).
    const tcb = new Tcb(this, route, s.dstPort, s.srcPort, { ...this.o, windowScaling: false, sack: false, timestamps: false });
    this.conns.set(tcb.key, tcb);
    const syn = { ...s, seq: clientIsn, flags: SYN, mss: COOKIE_MSS[mi]!, wscale: -1, sackPermitted: false, hasTimestamp: false, payload: new Uint8Array(0) };
    tcb.listener = l;
    l.halfOpen++;
    this.halfOpenTotal++;
    tcb.acceptSynSilently(syn, cookie);
    tcb.input(s);
    return true;
  }

  // ---- RST for closed ports (§3.10.7.1) -----------------------------------------------------

  private resetFor(pkt: IpPacket, s: TcpSegment): void {
    if (s.flags & RST) return;
    const ip = pkt.family === 4 ? this.ipv4 : this.ipv6;
    const route = ip?.route(pkt.src, pkt.dst);
    if (!route) return;
    if (s.flags & ACK) this.sendReset(route, s.dstPort, s.srcPort, s.ack, 0, false);
    else {
      const len = s.payload.length + (s.flags & SYN ? 1 : 0) + (s.flags & FIN ? 1 : 0);
      this.sendReset(route, s.dstPort, s.srcPort, 0, seqAdd(s.seq, len), true);
    }
  }

  sendReset(route: Route, lport: number, rport: number, seq: number, ack: number, withAck: boolean): void {
    if (!this.rstBucket.take(this.timers.now())) return this.counters.drop("rst_rate_limited");
    this.counters.inc("rst_sent");
    this.emitRaw(route, lport, rport, seq, ack, withAck ? RST | ACK : RST, 0, {});
  }

  challengeAllowed(): boolean {
    return this.challengeBucket.take(this.timers.now());
  }

  icmpError(e: IcmpErrorInfo): void {
    if (e.quoted.length < 8) return;
    const sport = (e.quoted[0]! << 8) | e.quoted[1]!;
    const dport = (e.quoted[2]! << 8) | e.quoted[3]!;
    const t = this.conns.get(this.key(e.dst, dport, e.src, sport));
    if (!t) return this.counters.drop("icmp_no_connection");
    this.counters.inc("icmp_" + e.kind);
    t.icmpError(e);
  }

  // ==== output ================================================================================

  /** Mark a connection as owing output; flushed at the end of the current batch. */
  needsFlush(t: Tcb): void {
    this.flushSet.add(t);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // batchEnd normally comes first; this is the fallback for input outside a batch.
      queueMicrotask(() => this.batchEnd());
    }
  }

  batchEnd(): void {
    this.flushScheduled = false;
    if (this.flushSet.size === 0) return;
    const set = [...this.flushSet];
    this.flushSet.clear();
    for (const t of set) t.flush();
  }

  /**
   * Largest IP packet the netif cuts into segments itself (TSO, from its features); 0: none.
   * Set by the stack.
   */
  gsoMax = 0;

  /**
   * Write one segment of connection `t` (data from its send queue) and send it; with `gsoSize`
   * and more payload than that, one super-segment the netif cuts into `gsoSize`-byte segments.
   * Returns false if the frame was dropped before leaving (netif queue full, no route).
   */
  emit(t: Tcb, seq: number, flags: number, window: number, q: SendQueue | undefined, off: number, len: number, extra: Partial<TcpEmit> = NO_EXTRA, gsoSize = 0): boolean {
    const ts = extra.ts ?? t.tsOption();
    const sack = flags & ACK && !(flags & SYN) ? t.sackBlocks() : undefined;
    // Built in place (no spreads): this runs for every segment sent.
    const o: TcpEmit = { srcPort: t.localPort, dstPort: t.remotePort, seq, ack: flags & ACK ? t.rcvNxt : 0, flags, window };
    if (extra !== NO_EXTRA) Object.assign(o, extra);
    if (ts) o.ts = ts;
    if (sack) o.sack = sack;
    const r = t.route;
    const hl = 20 + optionsLength(o);
    const frame = new Uint8Array(r.headroom + hl + len);
    if (q && len > 0) q.copy(off, len, frame, r.headroom + hl);
    const gso = gsoSize > 0 && len > gsoSize;
    emitTcp(frame, r.headroom, o, len, r.src, r.dst, gso);
    if (gso) (frame as GsoFrame)[GSO_SIZE] = gsoSize;
    const ip = r.family === 4 ? this.ipv4 : this.ipv6;
    this.counters.inc("tx_segments");
    const ok = ip?.send(r, IPPROTO_TCP, frame, { dontFragment: true }) ?? false;
    if (!ok) this.counters.inc("tx_local_drops");
    return ok;
  }

  private emitRaw(route: Route, lport: number, rport: number, seq: number, ack: number, flags: number, window: number, extra: Partial<TcpEmit>): void {
    const o: TcpEmit = { srcPort: lport, dstPort: rport, seq, ack, flags, window, ...extra };
    const hl = 20 + optionsLength(o);
    const frame = new Uint8Array(route.headroom + hl);
    emitTcp(frame, route.headroom, o, 0, route.src, route.dst);
    (route.family === 4 ? this.ipv4 : this.ipv6)?.send(route, IPPROTO_TCP, frame, { dontFragment: true });
  }

  remove(t: Tcb): void {
    this.waitingForMemory.delete(t);
    if (this.conns.get(t.key) === t) this.conns.delete(t.key);
    this.flushSet.delete(t);
  }

  /** Called by a Tcb leaving SYN-RECEIVED one way or the other. */
  halfOpenDone(): void {
    this.halfOpenTotal = Math.max(0, this.halfOpenTotal - 1);
  }

  close(): void {
    for (const t of [...this.conns.values()]) t.abort();
    for (const list of [...this.listeners.values()]) for (const l of [...list]) l.close();
  }
}

