/**
 * The TCP layer of a stack, the demux: it owns the connections (by 4-tuple) and the listeners
 * (a bounded SYN queue, SYN cookies beyond it, RFC 4987), answers segments for closed ports with
 * RST (RFC 9293 §3.10.7.1, rate limited), chooses initial sequence numbers (RFC 6528) and
 * ephemeral ports (RFC 6056), and is every connection's environment (env.ts): it writes the
 * segments they build into frames, and runs the one output scheduler (output.ts).
 */
import type { IpOutput, IpPacket, IcmpErrorInfo, Route, UpperProtocol } from "../ip.js";
import type { Random } from "../core/random.js";
import type { TimerQueue } from "../core/timers.js";
import { Counters } from "../core/stats.js";
import { TokenBucket } from "../core/ratelimit.js";
import { ADMIT, FairRate, NEED_SOURCE, OVER_RATE, addressKey } from "../core/fairrate.js";
import { ACK, FIN, IPPROTO_TCP, RST, SYN, emitTcp, newSegment, optionsLength, parseTcp, tcpChecksumOk, type TcpEmit, type TcpSegment } from "../wire/tcp.js";
import { formatIP, ipKey, isZero } from "../wire/addr.js";
import { seqAdd } from "./seq.js";
import { Tcb } from "./tcb.js";
import type { SendQueue } from "./buffers.js";
import { resolveTcpOptions, type TcpOptions, type TcpOptionsResolved } from "./options.js";
import { TcpMemory } from "./memory.js";
import { newFrame, type Netif, type NetifFeatures } from "../netif/netif.js";
import { OutputScheduler, Owed } from "./output.js";
import { SipHash } from "../core/siphash.js";
import { errnoError, stackClosedError } from "../core/errors.js";
import { validatePort } from "../core/validate.js";
import type { Flushable, TcpEnv } from "./env.js";
import { TimeWaitTable, type TimeWait, type TimeWaitSource } from "./timewait.js";
import { DOUBLE_ZERO, plain } from "../core/double.js";

export { resolveTcpOptions, type TcpOptions, type TcpOptionsResolved } from "./options.js";

/** A listening endpoint. */
export class TcpListener {
  halfOpen = 0;
  closed = false;
  /** Told once when the listener closes (its server's 'close'). */
  onClose: (() => void) | undefined;
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
  /** One of our half-open connections left SYN-RECEIVED (established or gone). */
  halfOpenDone(): void {
    this.halfOpen--;
    this.layer.halfOpenDone();
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.layer.unlisten(this);
    this.onClose?.();
  }
}

/** Every segment leaves with DF set (path MTU discovery, RFC 1191 / RFC 8201). */
const DF = { dontFragment: true } as const;

const COOKIE_MSS = [536, 1200, 1440, 1460, 4312, 8960, 16384, 65495];

export class TcpLayer implements UpperProtocol {
  readonly counters = new Counters("tcp", { rx_segments: 0, tx_segments: 0 });
  readonly o: TcpOptionsResolved;
  // Everything below that is `| undefined` is made at first use: an idle stack (of thousands)
  // holds no table, no scratch segment, no rate limiter, no hash key.
  private connsMap: Map<string, Tcb> | undefined;
  /** Connections in TIME-WAIT, as small records (timewait.ts), made at the first. */
  private timeWaitsObj: TimeWaitTable | undefined;
  private listenersMap: Map<number, TcpListener[]> | undefined;
  /** The parse target of every received segment (one per stack, reused). */
  private segScratch: TcpSegment | undefined;
  private readonly output = new OutputScheduler();
  /** Batches of received frames ended so far (TcpEnv.batches). */
  batches = 0;
  /** Segments came in since the last batchEnd. */
  private inBatch = false;
  /** The netif keeps its frames until the batch ends: data may be held to go up at the end (TcpEnv.holdInput). */
  private readonly holdOk: boolean;
  /** The netif completes checksums (features.checksumOffload): segments leave with a partial one. */
  private readonly csumOffload: boolean;
  /** Connections holding data for the end of the batch (each marked holdDue), made at the first. */
  private holding: Owed<Tcb> | undefined;
  private envObj: TcpEnv | undefined;
  private rstBucketObj: TokenBucket | undefined;
  private challengeBucketObj: TokenBucket | undefined;
  /** Keyed PRFs for initial sequence numbers and SYN cookies, and their input scratch. */
  private hashes: { isn: SipHash; cookie: SipHash; input: Uint8Array } | undefined;
  /**
   * Their 32-byte secret as eight little-endian u32 words, drawn at creation (so a seeded Random
   * gives every later draw what it gave before) and kept in a plain array of doubles, the
   * smallest holder V8 has for them; the SipHash states are made from it at first use.
   */
  private readonly secret: readonly number[];
  /** New passive connections per second, shared fairly by remote addresses. */
  private synRateObj: FairRate | undefined;
  private halfOpenTotal = 0;
  /** The stack closed: no more listen() or connect(). */
  private closed = false;
  /** Connections the application has let go of that are still closing (see Tcb.orphan). */
  get orphanCount(): number {
    let n = 0;
    for (const t of this.connsMap?.values() ?? []) if (t.orphaned && t.state !== "TIME-WAIT") n++;
    return n;
  }
  /** Connections in TIME-WAIT (see maxTimeWait): records, and connections on their way to one. */
  timeWaitCount = 0;
  /** Bytes held in all connections' buffers, per stack and per remote address (see maxBufferedBytes). */
  readonly memory: TcpMemory;

  /** Bytes in all connections' buffers. */
  get buffered(): number {
    return plain(this.memory.held);
  }

  constructor(
    readonly ipv4: IpOutput | undefined,
    readonly ipv6: IpOutput | undefined,
    readonly timers: TimerQueue,
    readonly random: Random,
    opts?: TcpOptions,
    /** Largest IP packet the netif cuts into segments itself (its features.tso); 0: none. */
    readonly gsoMax = 0,
    /** Where frames to send come from (the netif's allocFrame): contents undefined, every byte written. */
    private readonly allocFrame: (len: number) => Uint8Array = newFrame,
    /** The netif's answers to "do received frames wait?" and "may this view be kept?" (see Netif). */
    private readonly link: Pick<Netif, "inputPending" | "adopt"> & { readonly features?: NetifFeatures } = {},
  ) {
    this.o = resolveTcpOptions(opts);
    this.holdOk = link.features?.rxKeptUntilBatchEnd === true;
    this.csumOffload = link.features?.checksumOffload === true;
    this.memory = new TcpMemory(this.o);
    const k = random.fill(new Uint8Array(32));
    const w = (i: number): number => (k[i]! | (k[i + 1]! << 8) | (k[i + 2]! << 16) | (k[i + 3]! << 24)) >>> 0;
    this.secret = [w(0), w(4), w(8), w(12), w(16), w(20), w(24), w(28)];
  }

  private get conns(): Map<string, Tcb> {
    return (this.connsMap ??= new Map());
  }

  private get listeners(): Map<number, TcpListener[]> {
    return (this.listenersMap ??= new Map());
  }

  /** What every connection knows of the world (env.ts). */
  get env(): TcpEnv {
    return (this.envObj ??= new LayerEnv(this, this.output));
  }

  // The rate limiters start full, so one made at its first use is the one made at creation.
  private get rstBucket(): TokenBucket {
    return (this.rstBucketObj ??= new TokenBucket(this.o.rstRate, this.o.rstRate, this.timers.now()));
  }

  /** @internal May an RFC 5961 challenge ACK go out now (LayerEnv)? */
  challengeAllowed(): boolean {
    return (this.challengeBucketObj ??= new TokenBucket(this.o.challengeAckRate, this.o.challengeAckRate, this.timers.now())).take(this.timers.now());
  }

  private get synRate(): FairRate {
    return (this.synRateObj ??= new FairRate(this.o.newConnectionsPerSec, this.o.newConnectionsPerSec, 0.5, 1024, this.timers.now()));
  }

  /** The PRFs of this stack's secret (RFC 6528 wants one per host), made at the first connection or SYN. */
  private get hash(): { isn: SipHash; cookie: SipHash; input: Uint8Array } {
    if (this.hashes) return this.hashes;
    const secret = new Uint8Array(32);
    for (let i = 0; i < 32; i++) secret[i] = (this.secret[i >> 2]! >>> (8 * (i & 3))) & 0xff;
    return (this.hashes = { isn: new SipHash(secret.subarray(0, 16)), cookie: new SipHash(secret.subarray(16)), input: new Uint8Array(48) });
  }

  private get timeWaits(): TimeWaitTable {
    return (this.timeWaitsObj ??= new TimeWaitTable(this.env, 2 * this.o.mslMs, (t) => this.timeWaitEnded(t)));
  }

  /** @internal A connection's TIME-WAIT passes to a record (LayerEnv.keepTimeWait); it keeps its place in the count. */
  keepTimeWait(t: TimeWaitSource): TimeWait | undefined {
    if (this.closed) return undefined;
    return this.timeWaits.add(t);
  }

  private timeWaitEnded(t: TimeWait): void {
    this.timeWaitCount = Math.max(0, this.timeWaitCount - 1);
    this.output.forget(t);
  }

  /** @internal TIME-WAIT accounting for a connection (LayerEnv.timeWait). */
  timeWait(delta: 1 | -1): boolean {
    if (delta > 0 && this.timeWaitCount >= this.o.maxTimeWait) return false;
    this.timeWaitCount += delta;
    return true;
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
    const b = this.hash.input;
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

  /** Number of connections (any state, TIME-WAIT records included). */
  get connectionCount(): number {
    return (this.connsMap?.size ?? 0) + (this.timeWaitsObj?.size ?? 0);
  }

  /** Is this 4-tuple taken (a connection, or one in TIME-WAIT)? */
  private inUse(key: string): boolean {
    return (this.connsMap?.has(key) ?? false) || (this.timeWaitsObj?.has(key) ?? false);
  }

  connections(): Tcb[] {
    return [...(this.connsMap?.values() ?? [])];
  }

  // ==== listen / connect ======================================================================

  listen(port: number, host: Uint8Array | undefined, backlog: number, accept: (t: Tcb) => void): TcpListener {
    if (this.closed) throw stackClosedError("listen");
    validatePort(port, "Port", false);
    const family = host ? (host.length === 4 ? 4 : 6) : 0;
    if (host && !isZero(host) && !(family === 4 ? this.ipv4 : this.ipv6)?.isLocal(host)) throw errnoError("EADDRNOTAVAIL", "listen", `${formatIP(host)}:${port} (not an address of this stack)`);
    const list = this.listeners.get(port) ?? [];
    for (const l of list) {
      if (l.family === 0 || family === 0 || (l.family === family && (!l.addr || !host || isZero(l.addr) || isZero(host) || ipKey(l.addr) === ipKey(host)))) {
        throw errnoError("EADDRINUSE", "listen", `port ${port}`);
      }
    }
    const l = new TcpListener(this, family as 0 | 4 | 6, host && !isZero(host) ? host : undefined, port, backlog, accept);
    list.push(l);
    this.listeners.set(port, list);
    return l;
  }

  unlisten(l: TcpListener): void {
    const list = this.listenersMap?.get(l.port);
    if (!list) return;
    const i = list.indexOf(l);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.listeners.delete(l.port);
  }

  /** Active open. Throws with a code on immediate failure. */
  connect(dst: Uint8Array, port: number, localPort = 0, src?: Uint8Array): Tcb {
    if (this.closed) throw stackClosedError("connect");
    const ip = dst.length === 4 ? this.ipv4 : this.ipv6;
    if (!ip) throw errnoError("EAFNOSUPPORT", "connect", `(this stack has no IPv${dst.length === 4 ? 4 : 6})`);
    validatePort(port, "Port", false);
    const route = ip.route(dst, src);
    if (!route) throw errnoError("EHOSTUNREACH", "connect", `${formatIP(dst)}:${port} (no route)`);
    if (this.conns.size >= this.o.maxConnections) throw errnoError("EMFILE", "connect", `(limits.tcp.maxConnections ${this.o.maxConnections} reached)`);
    if (this.memory.connectionsOf(ipKey(route.dst)) >= this.o.maxConnectionsPerHost)
      throw errnoError("EMFILE", "connect", `(limits.tcp.maxConnectionsPerHost ${this.o.maxConnectionsPerHost} reached for ${formatIP(route.dst)})`);
    let lport = localPort;
    if (lport === 0) lport = this.ephemeralPort(route.dst, port, route.src);
    else if (this.inUse(this.key(route.dst, port, route.src, lport))) throw errnoError("EADDRINUSE", "connect", `${formatIP(route.src)}:${lport} -> ${formatIP(dst)}:${port} exists`);
    const t = new Tcb(this.env, route, lport, port, this.o, this.key(route.dst, port, route.src, lport));
    this.conns.set(t.key, t);
    t.connect(this.isn(route.src, lport, route.dst, port));
    return t;
  }

  /** A port no listener has, from the ephemeral range (listen on port 0). */
  freePort(): number {
    const lo = this.o.ephemeralLow;
    const span = this.o.ephemeralHigh - lo + 1;
    let p = lo + ((this.random.u32() % span) | 0); // `| 0`: a small integer (a u32 may be a heap number)
    for (let i = 0; i < span; i++) {
      if (!this.listeners.has(p)) return p;
      p = p === this.o.ephemeralHigh ? lo : p + 1;
    }
    throw errnoError("EADDRINUSE", "listen", "(no free port)");
  }

  /** RFC 6056 §3.3.1: a random starting point, then the first free port. */
  private ephemeralPort(dst: Uint8Array, dport: number, src: Uint8Array): number {
    const lo = this.o.ephemeralLow;
    const span = this.o.ephemeralHigh - lo + 1;
    let p = lo + ((this.random.u32() % span) | 0);
    for (let i = 0; i < span; i++) {
      if (!this.inUse(this.key(dst, dport, src, p)) && !this.listeners.has(p)) return p;
      p = p === this.o.ephemeralHigh ? lo : p + 1;
    }
    throw errnoError("EADDRNOTAVAIL", "connect", "(no free ephemeral port)");
  }

  /** RFC 6528: ISN = M + F(4-tuple, secret), M a 4 µs clock, F SipHash-2-4 (as in Linux). */
  isn(src: Uint8Array, sport: number, dst: Uint8Array, dport: number): number {
    const n = this.hashInput(src, dst, sport, dport);
    const h = this.hash;
    const f = h.isn.hash(h.input, n);
    const m = Math.floor(this.timers.now() * 250);
    return (f + m) >>> 0;
  }

  // ==== input =================================================================================

  /*
   * Segments without a connection, by flags (RFC 9293 §3.10.7.1-2, decided as Linux does in
   * tcp_v4_rcv and tcp_rcv_state_process(TCP_LISTEN); test/helpers/synmatrix.ts is the table):
   * - Closed port: anything but a RST gets a RST (§3.10.7.1), SYN+FIN, null, FIN and Xmas scans
   *   included: <SEQ=SEG.ACK><CTL=RST> if ACK is set, else <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>,
   *   where SEG.LEN counts SYN and FIN. A RST is dropped (never answer a reset with one).
   * - Listener, in this order: any RST (SYN+RST, RST+ACK, all eight flags) is dropped and counted
   *   (listen_rst), since a reset cannot belong to anything here (§3.10.7.2 "first"); any ACK
   *   (SYN+ACK included) gets <SEQ=SEG.ACK><CTL=RST> ("second"), unless it completes a SYN-cookie
   *   handshake; a segment without SYN (null, FIN, Xmas scans) is dropped (no_syn, "fourth").
   * - SYN+FIN is dropped (syn_fin). RFC 9293 would queue the FIN for after the handshake, but no
   *   stack sends it: it is a scan and a firewall-evasion probe, and Linux drops it (TCP_FLAGS).
   * - SYN with PSH, URG, ECE or CWR (ECE+CWR is RFC 3168 §6.1.1's ECN setup) is an ordinary SYN:
   *   we answer without ECE, declining ECN; those bits on a SYN mean nothing else (Linux accepts
   *   them alike). Data on a SYN is not taken (not acknowledged), as Linux without Fast Open.
   * A SYN may replace a TIME-WAIT connection only when it is a plain SYN (no ACK, RST or FIN).
   */
  input(pkt: IpPacket): void {
    const c = this.counters;
    c.hot.rx_segments++;
    this.inBatch = true;
    const p = pkt.payload;
    const s = (this.segScratch ??= newSegment());
    const e = parseTcp(p, s);
    if (e) return c.drop(e);
    if (!pkt.csumValid && !tcpChecksumOk(p, pkt.src, pkt.dst)) return c.drop("bad_checksum");
    if (pkt.multicast) return c.drop("multicast");
    const key = this.key(pkt.src, s.srcPort, pkt.dst, s.dstPort);
    const t = this.connsMap?.get(key);
    if (t) {
      if ((s.flags & (SYN | ACK | RST | FIN)) === SYN && t.canReuse(s)) {
        t.teardown(undefined);
      } else {
        t.input(s);
        return;
      }
    } else if (this.timeWaitsObj !== undefined && this.timeWaitsObj.size > 0) {
      const w = this.timeWaitsObj.get(key);
      if (w) {
        if ((s.flags & (SYN | ACK | RST | FIN)) !== SYN || !w.canReuse(s)) return w.input(s);
        this.timeWaitsObj.end(w);
      }
    }
    const l = this.findListener(pkt.dst, s.dstPort);
    if (!l) {
      c.drop("no_listener");
      return this.resetFor(pkt, s);
    }
    if (s.flags & RST) return c.drop("listen_rst");
    if (s.flags & ACK) {
      // Maybe the third step of a handshake answered with a SYN cookie.
      if (!(s.flags & SYN) && this.acceptCookie(pkt, s, l)) return;
      return this.resetFor(pkt, s);
    }
    if (!(s.flags & SYN)) return c.drop("no_syn");
    if (s.flags & FIN) return c.drop("syn_fin");
    this.onSyn(pkt, s, l);
  }

  private findListener(dst: Uint8Array, port: number): TcpListener | undefined {
    const list = this.listenersMap?.get(port);
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
    if (!this.admitSyn(pkt.src)) return;
    if (l.halfOpen >= l.backlog || this.halfOpenTotal >= this.o.synQueueSize || this.conns.size >= this.o.maxConnections) {
      return this.sendCookie(route, s);
    }
    c.inc("passive_opens");
    this.passiveOpen(route, s, l, this.isn(route.src, s.dstPort, route.dst, s.srcPort));
  }

  /**
   * The tenant's bounds on new connections, before any state is made: connections per remote
   * address, and the rate of new ones (shared fairly between addresses under contention).
   * Drops are counted (host_connections, syn_rate, syn_source_share).
   */
  private admitSyn(src: Uint8Array): boolean {
    const c = this.counters;
    if (this.memory.connectionsOf(ipKey(src)) >= this.o.maxConnectionsPerHost) {
      c.drop("host_connections");
      return false;
    }
    const now = this.timers.now();
    let r = this.synRate.take(1, now);
    if (r === NEED_SOURCE) r = this.synRate.take(1, now, addressKey(src, 0, src.length));
    if (r === ADMIT) return true;
    c.drop(r === OVER_RATE ? "syn_rate" : "syn_source_share");
    return false;
  }

  /**
   * A half-open connection for listener `l` from `syn`, answered with a SYN-ACK of ISN `iss` —
   * or, with `cookieOpts`, rebuilt from a SYN cookie whose SYN-ACK already went out.
   */
  private passiveOpen(route: Route, syn: TcpSegment, l: TcpListener, iss: number, cookieOpts?: TcpOptionsResolved): Tcb {
    const t = new Tcb(this.env, route, syn.dstPort, syn.srcPort, cookieOpts ?? this.o, this.key(route.dst, syn.srcPort, route.src, syn.dstPort));
    t.listener = l;
    l.halfOpen++;
    this.halfOpenTotal++;
    this.conns.set(t.key, t);
    t.acceptSyn(syn, iss, cookieOpts !== undefined);
    return t;
  }

  // ---- SYN cookies (RFC 4987 §3.6) ----------------------------------------------------------

  private cookieHash(route: Route, lport: number, rport: number, clientIsn: number, t: number): number {
    const n = this.hashInput(route.src, route.dst, lport, rport, clientIsn >>> 24, (clientIsn >>> 16) & 0xff, (clientIsn >>> 8) & 0xff, clientIsn & 0xff, t & 0xff);
    const h = this.hash;
    return h.cookie.hash(h.input, n) >>> 8; // 24 bits
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
    if (this.conns.size >= this.o.maxConnections) {
      this.counters.drop("max_connections");
      return true;
    }
    if (this.memory.connectionsOf(ipKey(route.dst)) >= this.o.maxConnectionsPerHost) {
      this.counters.drop("host_connections");
      return true;
    }
    this.counters.inc("syn_cookies_validated");
    // The connection as if it had gone through SYN-RECEIVED: the SYN the cookie stands for (its
    // MSS; no window scaling, SACK or timestamps: the cookie does not encode them), our SYN-ACK
    // already answered; then the third segment itself.
    const syn = { ...s, seq: clientIsn, flags: SYN, window: s.window, mss: COOKIE_MSS[mi]!, wscale: -1, sackPermitted: false, hasTimestamp: false, payload: new Uint8Array(0) };
    this.passiveOpen(route, syn, l, cookie, { ...this.o, windowScaling: false, sack: false, timestamps: false }).input(s);
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

  icmpError(e: IcmpErrorInfo): void {
    if (e.quoted.length < 8) return;
    const sport = (e.quoted[0]! << 8) | e.quoted[1]!;
    const dport = (e.quoted[2]! << 8) | e.quoted[3]!;
    const t = this.connsMap?.get(this.key(e.dst, dport, e.src, sport));
    if (!t) return this.counters.drop("icmp_no_connection");
    this.counters.inc("icmp_" + e.kind);
    t.icmpError(e);
  }

  // ==== output ================================================================================

  /** The end of a batch of received frames: the connections that owe output send it now. */
  batchEnd(): void {
    this.inBatch = false;
    this.batches++;
    // Held data goes up first: what the application answers leaves with this batch's ACKs.
    const list = this.holding;
    if (list && list.n > 0) {
      const items = list.items;
      const n = list.n;
      list.n = 0;
      for (let i = 0; i < n; i++) {
        const t = items[i]!;
        items[i] = undefined as unknown as Tcb;
        t.holdDue = false;
        t.releaseHeld();
      }
    }
    this.output.run();
  }

  /** TcpEnv.holdInput: `t` holds in-order data until this batch's end (then Tcb.releaseHeld). */
  holdInput(t: Tcb): boolean {
    if (!this.holdOk || !this.inBatch) return false;
    if (!t.holdDue) {
      t.holdDue = true;
      (this.holding ??= new Owed()).push(t);
    }
    return true;
  }

  private pendingAt = -1;
  private pendingSeen = false;
  /** May in-order data be handed up as it is (the netif's adopt)? */
  adoptInput(view: Uint8Array): boolean {
    return this.link.adopt?.(view) ?? false;
  }

  /**
   * inputPending, asked once per instant: timers due together share the clock's frozen time, so
   * a hundred retransmission timers expiring at once cost one look at the netif (a poll(2) on a
   * TAP), not a hundred.
   */
  pendingNow(): boolean {
    const now = this.timers.now();
    if (now !== this.pendingAt) {
      this.pendingAt = now;
      this.pendingSeen = this.link.inputPending?.() ?? false;
    }
    return this.pendingSeen;
  }

  /**
   * A connection's segment into a frame (header from `repr`, `len` payload bytes of `q` from
   * `off`) and out through IP; with `gsoSize` one TSO super-segment. False if it did not leave.
   */
  /** @internal (LayerEnv.transmit) */
  transmit(r: Route, repr: TcpEmit, q: SendQueue | undefined, off: number, len: number, gsoSize: number): boolean {
    const hl = 20 + optionsLength(repr);
    const frame = this.allocFrame(r.headroom + hl + len);
    if (q && len > 0) q.copy(off, len, frame, r.headroom + hl);
    // A super-segment's checksum is the netif's to complete, and so is any where it offers that
    // (the IP layer completes it where the netif will not: IpOutput.send).
    const partial = gsoSize > 0 || this.csumOffload;
    emitTcp(frame, r.headroom, repr, len, r.src, r.dst, partial);
    const ip = r.family === 4 ? this.ipv4 : this.ipv6;
    this.counters.hot.tx_segments++;
    const ok = ip?.send(r, IPPROTO_TCP, frame, gsoSize > 0 ? { dontFragment: true, gsoSize } : DF, partial) ?? false;
    if (!ok) this.counters.inc("tx_local_drops");
    return ok;
  }

  private emitRaw(route: Route, lport: number, rport: number, seq: number, ack: number, flags: number, window: number, extra: Partial<TcpEmit>): void {
    // Sequence numbers: made with doubles, then filled (core/double.ts).
    const o: TcpEmit = { srcPort: lport, dstPort: rport, seq: DOUBLE_ZERO, ack: DOUBLE_ZERO, flags, window, ...extra };
    o.seq = seq;
    o.ack = ack;
    const hl = 20 + optionsLength(o);
    const frame = new Uint8Array(route.headroom + hl);
    emitTcp(frame, route.headroom, o, 0, route.src, route.dst);
    (route.family === 4 ? this.ipv4 : this.ipv6)?.send(route, IPPROTO_TCP, frame, DF);
  }

  /** @internal A connection reached CLOSED (LayerEnv.closed). */
  remove(t: Tcb): void {
    if (this.connsMap?.get(t.key) === t) this.connsMap.delete(t.key);
    this.output.forget(t);
  }

  /** A half-open connection left SYN-RECEIVED one way or the other (see TcpListener). */
  halfOpenDone(): void {
    this.halfOpenTotal = Math.max(0, this.halfOpenTotal - 1);
  }

  /** The stack closes: every connection ends now (Tcb.stackClosed), every listener closes. */
  close(): void {
    this.closed = true;
    for (const list of [...(this.listenersMap?.values() ?? [])]) for (const l of [...list]) l.close();
    for (const t of [...(this.connsMap?.values() ?? [])]) t.stackClosed();
    this.timeWaitsObj?.clear();
  }
}

/**
 * A stack's TCP as its connections see it (env.ts): one object, made with the first connection,
 * whose methods call the layer (no closure per need, per stack).
 */
class LayerEnv implements TcpEnv {
  readonly timers: TimerQueue;
  readonly counters: Counters;
  readonly random: Random;
  readonly memory: TcpMemory;
  readonly gsoMax: number;
  constructor(
    private readonly layer: TcpLayer,
    private readonly out: OutputScheduler,
  ) {
    this.timers = layer.timers;
    this.counters = layer.counters;
    this.random = layer.random;
    this.memory = layer.memory;
    this.gsoMax = layer.gsoMax;
  }
  transmit(route: Route, repr: TcpEmit, q: SendQueue | undefined, off: number, len: number, gsoSize: number): boolean {
    return this.layer.transmit(route, repr, q, off, len, gsoSize);
  }
  reset(route: Route, lport: number, rport: number, seq: number, ack: number, withAck: boolean): void {
    this.layer.sendReset(route, lport, rport, seq, ack, withAck);
  }
  challengeAllowed(): boolean {
    return this.layer.challengeAllowed();
  }
  wantsOutput(t: Flushable): void {
    this.out.want(t);
  }
  get batches(): number {
    return this.layer.batches;
  }
  holdInput(t: Tcb): boolean {
    return this.layer.holdInput(t);
  }
  inputPending(): boolean {
    return this.layer.pendingNow();
  }
  adopt(data: Uint8Array): boolean {
    return this.layer.adoptInput(data);
  }
  retryOutput(t: Flushable): void {
    this.out.retry(t);
  }
  closed(t: Flushable): void {
    this.layer.remove(t as Tcb);
  }
  timeWait(delta: 1 | -1): boolean {
    return this.layer.timeWait(delta);
  }
  keepTimeWait(t: TimeWaitSource): TimeWait | undefined {
    return this.layer.keepTimeWait(t);
  }
}
