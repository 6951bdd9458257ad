/**
 * One TCP connection: the RFC 9293 state machine, fed segments by the demux (`input`) and
 * drained by `flush`, knowing the world only through its TcpEnv (env.ts): time and timers,
 * counters, the memory budget, and transmit(). It builds every segment it sends itself. Loss recovery: RFC 6298
 * RTO with Karn and backoff, fast retransmit / recovery with the SACK scoreboard (RFC 6675
 * style pipe) or NewReno partial ACKs (RFC 6582), limited transmit (RFC 3042). Delayed ACKs,
 * Nagle, SWS avoidance on both sides, zero-window probes, keepalive, PAWS (RFC 7323), RFC 5961
 * challenge ACKs.
 */
import type { Timer, TimerQueue } from "../core/timers.js";
import type { IcmpErrorInfo, Route } from "../ip.js";
import type { TcpSegment } from "../wire/tcp.js";
import { ACK, FIN, PSH, RST, SYN } from "../wire/tcp.js";
import { seqAdd, seqGe, seqGt, seqLe, seqLt, seqMax, seqSub } from "./seq.js";
import { ReorderQueue, Scoreboard, SendQueue } from "./buffers.js";
import { RttEstimator, initialWindow, makeCongestionControl, type CongestionControl } from "./cc.js";
import type { TcpOptionsResolved } from "./options.js";
import type { TcpEnv } from "./env.js";
import type { TcpEmit } from "../wire/tcp.js";
import type { HostShare } from "./memory.js";
import { formatIP, ipKey } from "../wire/addr.js";
import { errnoError } from "../core/errors.js";
import { DOUBLE_MINUS_ONE, DOUBLE_ZERO } from "../core/double.js";

/** No extra options (most segments): no object to allocate or copy. */
const NO_EXTRA: Readonly<Partial<TcpEmit>> = Object.freeze({});
/**
 * The header of a segment without extras (data, ACKs), built in place: transmit() writes it into
 * the frame at once and keeps nothing, and nothing it calls sends a segment of its own, so one
 * object serves every connection of the process instead of two objects per segment.
 */
const HDR: TcpEmit = { srcPort: 0, dstPort: 0, seq: DOUBLE_ZERO, ack: DOUBLE_ZERO, flags: 0, window: 0, ts: undefined, sack: undefined };
const HDR_TS = { val: DOUBLE_ZERO, ecr: DOUBLE_ZERO };

/** Ticks of the peer's timestamp clock PAWS forgives (Linux's TCP_PAWS_WINDOW). */
const PAWS_WINDOW = 1;

export type TcpState = "CLOSED" | "LISTEN" | "SYN-SENT" | "SYN-RECEIVED" | "ESTABLISHED" | "FIN-WAIT-1" | "FIN-WAIT-2" | "CLOSE-WAIT" | "CLOSING" | "LAST-ACK" | "TIME-WAIT";

/** What a connection tells its owner (the flow). */
export interface TcbEvents {
  onConnect(): void;
  /**
   * In-order data. `owned`: the bytes are the owner's to keep as they are (a copy held out of
   * order, segments of a batch joined, or a frame the netif gave up, see TcpEnv.adopt);
   * otherwise they live in a buffer that is used again after this call, and what is kept must
   * be copied.
   */
  onData(data: Uint8Array, owned: boolean): void;
  onEnd(): void;
  /** More send-buffer space is free. */
  onDrain(): void;
  /** The connection is gone; err set if it failed. */
  onClose(err: (Error & { code: string }) | undefined): void;
}

export class Tcb {
  state: TcpState = "CLOSED";
  events: TcbEvents | undefined;
  readonly key: string;
  /** When a retransmission timer first found received frames unread (-1: none): deferRetransmit. */
  private deferredSince = DOUBLE_MINUS_ONE;
  /** Marks of the stack's output scheduler (see OutputScheduler): listed to flush, to retry. */
  outputDue = false;
  retryDue = false;
  /** Listed by the layer to hand held data up at the end of the batch (TcpEnv.holdInput). */
  holdDue = false;
  /**
   * In-order segments of this batch not handed up yet: views into the netif's frames, which
   * stay as they are until the batch ends (the first heldN entries). Of a run of segments the
   * netif does not give up (adopt), the first goes up at once, the rest wait and go up at the
   * end of the batch as one chunk, copied once, as a socket read takes what came across
   * segments: one push through the flow, the application's parser and its handler where there
   * were as many as segments (a TAP without offloads brings a bulk sender's data in 1,448-byte
   * frames, up to 64 to a batch).
   */
  private held: Uint8Array[] | undefined;
  private heldN = 0;
  private heldBytes = 0;
  /** The batch (TcpEnv.batches) in which the last data that went up was such a segment; -1 if it was not. */
  private upIn = -1;
  // Sequence numbers, timestamps, times and byte counts start as doubles (core/double.ts).
  // --- send sequence space (RFC 9293 §3.3.1)
  iss = DOUBLE_ZERO;
  sndUna = DOUBLE_ZERO;
  sndNxt = DOUBLE_ZERO;
  /** Highest sequence number sent (SND.NXT can go back on a retransmission timeout). */
  sndMax = DOUBLE_ZERO;
  sndWnd = 0;
  sndWl1 = DOUBLE_ZERO;
  sndWl2 = DOUBLE_ZERO;
  maxSndWnd = 0;
  sndWscale = 0;
  // --- receive sequence space
  irs = DOUBLE_ZERO;
  rcvNxt = DOUBLE_ZERO;
  rcvWscale = 0;
  /** Right edge of the window we last advertised (never moved left, §3.8.6.2.1). */
  rcvAdvRight = DOUBLE_ZERO;
  /** The (unscaled) window our SYN or SYN-ACK offered. */
  private synWindow = 0;
  // --- options and sizes
  /** Effective send MSS (payload bytes per segment, options excluded). */
  mss = 536;
  peerMss = 536;
  sackOk = false;
  tsOk = false;
  tsRecent = DOUBLE_ZERO;
  tsOffset = DOUBLE_ZERO;
  lastAckSent = DOUBLE_ZERO;
  // --- buffers
  readonly sendQ = new SendQueue();
  readonly sb = new Scoreboard();
  readonly ooo: ReorderQueue;
  /** User called end(): a FIN follows the queued data. */
  finQueued = false;
  /** Sequence number of our FIN once sent. */
  finSeq = DOUBLE_MINUS_ONE;
  /** Bytes the application has not read yet (flow's readable buffer). */
  unread = 0;
  /** The send buffer's bound now (autotuned from sendBufferSize up to maxSendBufferSize). */
  sndBuf: number;
  /** The receive buffer's size now (autotuned from receiveBufferSize up to maxReceiveBufferSize). */
  rcvBuf: number;
  /** Receive autotuning: bytes the application consumed since `rcvSpaceTime`. */
  private rcvCopied = 0;
  private rcvSpaceTime = DOUBLE_ZERO;
  // --- congestion and timing
  readonly cc: CongestionControl;
  readonly rtt: RttEstimator;
  private dupAcks = 0;
  /** RFC 3042: the next output may send one segment beyond cwnd (set by a duplicate ACK). */
  private limitedTransmit = false;
  private inRecovery = false;
  private recover = DOUBLE_ZERO;
  private rxtNext = DOUBLE_ZERO;
  /**
   * Congestion window validation (RFC 7661, as Linux's tcp_cwnd_validate): the window grows only
   * while it is what limits the sender. Over the flight that ends at `cwndUsageSeq`: the most
   * bytes in flight, and whether cwnd held anything back. A sender limited by its application or
   * its send buffer would otherwise grow cwnd without end on a clean path (41 MB seen with 4 MiB
   * in flight), then burst into the network once the limit lifts.
   */
  private maxInflight = 0;
  private cwndLimited = false;
  private cwndUsageSeq = DOUBLE_ZERO;
  private rttSeq = DOUBLE_MINUS_ONE;
  private rttTime = DOUBLE_ZERO;
  private backoff = 0;
  private retransmits = 0;
  private synRetries = 0;
  // --- ACK policy
  private ackNow = false;
  private unackedSegs = 0;
  noDelay = false;
  // --- timers
  private readonly rtoTimer: Timer;
  private readonly delackTimer: Timer;
  // Made at first use: most connections never probe a zero window, never keep alive, and (with
  // TIME-WAIT records) never wait on a timer of their own to close.
  private persistT: Timer | undefined;
  private keepT: Timer | undefined;
  private waitT: Timer | undefined;
  /** RFC 8985 §7 tail loss probe. */
  private readonly ptoTimer: Timer;
  private persistBackoff = 0;
  keepAlive = false;
  keepIdleMs: number;
  private keepProbes = 0;
  private lastRecv = DOUBLE_ZERO;
  // --- bookkeeping
  bytesRead = DOUBLE_ZERO;
  bytesWritten = DOUBLE_ZERO;
  /** For SYN-RECEIVED connections: the listener that will get them. */
  listener: { onEstablished(t: Tcb): void; halfOpenDone(): void } | undefined;
  closedErr: (Error & { code: string }) | undefined;
  /** The memory account of the peer's address, shared with its other connections. */
  readonly host: HostShare;
  /** The application has let go (see orphan()). */
  orphaned = false;
  /** Ended by its stack's close() (see stackClosed()). */
  closedByStack = false;
  private orphanTimer: Timer | undefined;
  /** The record that carries this connection's TIME-WAIT, once handed over (see handOverTimeWait). */
  timeWaitRecord: { readonly gone: boolean } | undefined;

  constructor(
    readonly env: TcpEnv,
    readonly route: Route,
    readonly localPort: number,
    readonly remotePort: number,
    readonly o: TcpOptionsResolved,
    /** The demux's key of this connection (its 4-tuple). */
    key: string,
  ) {
    this.key = key;
    this.host = env.memory.attach(ipKey(route.dst));
    const t: TimerQueue = env.timers;
    this.rtoTimer = t.timer(() => this.onRto());
    this.delackTimer = t.timer(() => this.sendAck());
    this.ptoTimer = t.timer(() => this.onPto());
    this.cc = makeCongestionControl(o.congestionControl, () => this.mss);
    this.rtt = new RttEstimator(o.minRtoMs, o.maxRtoMs, o.initialRtoMs);
    this.sndBuf = o.sendBufferSize;
    this.rcvBuf = o.receiveBufferSize;
    this.ooo = new ReorderQueue(o.receiveBufferSize, o.maxOooSegments);
    this.keepIdleMs = o.keepAliveIdleMs;
    // The scale is fixed at the SYN: large enough for the buffer autotuning may grow to.
    let ws = 0;
    while (ws < 14 && o.maxReceiveBufferSize >> ws > 65535) ws++;
    this.rcvWscale = ws;
    this.tsOffset = env.random.u32();
  }

  private get persistTimer(): Timer {
    return (this.persistT ??= this.env.timers.timer(() => this.onPersist()));
  }
  private get keepTimer(): Timer {
    return (this.keepT ??= this.env.timers.timer(() => this.onKeepalive(), true));
  }
  private get waitTimer(): Timer {
    return (this.waitT ??= this.env.timers.timer(() => this.onWaitTimer(), true));
  }

  /** Cancel a timer made at first use, if it was. */
  private cancelT(t: Timer | undefined): void {
    if (t) this.env.timers.cancel(t);
  }

  /** "198.18.0.2:80" / "[2001:db8::2]:80", for error messages. */
  private peerText(): string {
    const a = formatIP(this.route.dst);
    return `${this.route.family === 6 ? `[${a}]` : a}:${this.remotePort}`;
  }

  get localAddress(): Uint8Array {
    return this.route.src;
  }
  get remoteAddress(): Uint8Array {
    return this.route.dst;
  }

  private now(): number {
    return this.env.timers.now();
  }

  private tsNow(): number {
    return (Math.floor(this.now()) + this.tsOffset) >>> 0;
  }

  /** MSS we advertise: what the link carries minus IP and TCP headers. */
  ourMss(): number {
    return this.route.mtu - (this.route.family === 4 ? 20 : 40) - 20;
  }

  private setSendMss(): void {
    const pathMax = this.route.mtu - (this.route.family === 4 ? 20 : 40) - 20;
    this.mss = Math.max(64, Math.min(this.peerMss, pathMax) - (this.tsOk ? 12 : 0));
  }

  /**
   * The receive window we can offer now, in bytes: buffer space not taken by unread or
   * out-of-order data. Under memory pressure (the stack's or the peer address's) the buffer
   * itself shrinks, down to minReceiveWindow (never below what was already advertised: the
   * right edge does not move left).
   */
  private rcvWindow(): number {
    return Math.max(0, this.env.memory.receiveBuffer(this.host, this.rcvBuf) - this.unread - this.ooo.bytes);
  }

  /** Memory pressure eased: advertise the reopened window now, not at the peer's next probe. */
  reopenWindow(): void {
    if (!this.isSynchronized() || this.state === "TIME-WAIT") return;
    const w = this.rcvWindow();
    if (w - seqSub(this.rcvAdvRight, this.rcvNxt) >= Math.min(this.rcvBuf / 2, this.mss)) {
      this.env.counters.inc("window_updates_memory");
      this.ackNow = true;
      this.env.wantsOutput(this);
    } else this.noteSqueeze();
  }

  /** If memory pressure cuts our window, ask to be told when it eases (see reopenWindow). */
  private noteSqueeze(): void {
    const m = this.env.memory;
    if (m.receiveBuffer(this.host, this.rcvBuf) < this.rcvBuf) m.squeezed(this.host, this);
  }

  private charge(delta: number): void {
    this.env.memory.charge(this.host, delta);
  }

  /** Memory freed while our writer was held back by a bound. */
  onRoom(): void {
    if (this.sendSpace > 0) this.events?.onDrain();
    else this.waitIfOverMemory();
  }

  // ==== opening ===============================================================================

  /** Active open (§3.10.1): send SYN. */
  connect(iss: number): void {
    this.iss = iss;
    this.sndUna = iss;
    this.sndNxt = iss;
    this.sndMax = iss;
    this.state = "SYN-SENT";
    this.sendSyn(false);
  }

  /**
   * Passive open: a SYN arrived for a listener (§3.10.7.2) and we answer with a SYN-ACK (ISN
   * `iss`). With `answered`, the SYN-ACK already went out statelessly: a SYN cookie (RFC 4987
   * §3.6) validated by the third segment, which the caller feeds next.
   */
  acceptSyn(seg: TcpSegment, iss: number, answered = false): void {
    this.irs = seg.seq;
    this.rcvNxt = seqAdd(seg.seq, 1);
    this.iss = iss;
    this.sndUna = iss;
    this.sndNxt = iss;
    this.sndMax = iss;
    this.negotiate(seg);
    this.sndWnd = seg.window; // never scaled in a SYN (RFC 7323 §2.2)
    this.sndWl1 = seg.seq;
    this.sndWl2 = iss;
    this.state = "SYN-RECEIVED";
    this.lastRecv = this.now();
    if (!answered) return this.sendSyn(true);
    this.sndNxt = seqAdd(iss, 1);
    this.sndMax = this.sndNxt;
    this.rcvAdvRight = seqAdd(this.rcvNxt, Math.min(65535, this.rcvWindow()));
  }

  /** ICMP about a segment we sent (RFC 9293 §3.9.2.4, RFC 1191/8201 path MTU, RFC 5927 caution). */
  icmpError(e: IcmpErrorInfo): void {
    const c = this.env.counters;
    // Only believe errors quoting a sequence number we have in flight (RFC 5927 §4.1).
    const q = e.quoted;
    const seq = ((q[4]! << 24) | (q[5]! << 16) | (q[6]! << 8) | q[7]!) >>> 0;
    if (!(seqLe(this.sndUna, seq) && seqLt(seq, seqAdd(this.sndMax, 1)))) return c.drop("icmp_bad_seq");
    if (e.kind === "too_big" && e.mtu !== undefined) {
      if (e.mtu >= this.route.mtu) return;
      (this.route as { mtu: number }).mtu = e.mtu;
      const old = this.mss;
      this.setSendMss();
      if (this.mss < old) {
        c.inc("pmtu_reductions");
        // Resend what was lost at the new size (not a congestion signal: cwnd untouched).
        this.sndNxt = this.sndUna;
        this.rttSeq = -1;
        this.env.wantsOutput(this);
      }
      return;
    }
    if (this.state === "SYN-SENT" && (e.kind === "port_unreachable" || e.kind === "unreachable")) {
      // Hard error while connecting: report it like a kernel socket would.
      return this.teardown(
        errnoError(e.kind === "port_unreachable" ? "ECONNREFUSED" : "EHOSTUNREACH", "connect", `${this.peerText()} (ICMP ${e.kind === "port_unreachable" ? "port" : "host"} unreachable)`),
      );
    }
  }

  private negotiate(seg: TcpSegment): void {
    this.peerMss = seg.mss > 0 ? seg.mss : this.route.family === 4 ? 536 : 1220;
    if (seg.wscale >= 0 && this.o.windowScaling) this.sndWscale = seg.wscale;
    else {
      this.sndWscale = 0;
      this.rcvWscale = 0;
    }
    this.sackOk = this.o.sack && seg.sackPermitted;
    this.tsOk = this.o.timestamps && seg.hasTimestamp;
    if (this.tsOk) this.tsRecent = seg.tsVal;
    this.setSendMss();
    // RFC 6928: the initial window is 10 segments of the *negotiated* MSS.
    this.cc.cwnd = initialWindow(this.mss);
  }

  private sendSyn(withAck: boolean): void {
    const wnd = Math.min(65535, this.rcvWindow());
    const opts = {
      mss: this.ourMss(),
      ...(this.o.windowScaling && (!withAck || this.rcvWscale > 0 || this.sndWscale > 0) ? { wscale: this.rcvWscale } : {}),
      sackPermitted: this.o.sack && (!withAck || this.sackOk),
      ...(this.o.timestamps && (!withAck || this.tsOk) ? { ts: this.tsPair(withAck ? this.tsRecent : 0) } : {}),
    };
    this.emit(this.iss, withAck ? SYN | ACK : SYN, wnd, undefined, 0, 0, opts);
    if (this.sndMax === this.iss) this.sndMax = seqAdd(this.iss, 1);
    this.sndNxt = seqAdd(this.iss, 1);
    this.synWindow = wnd;
    this.rcvAdvRight = seqAdd(this.rcvNxt, wnd);
    this.armRto();
  }

  // ==== user calls ============================================================================

  /** Queue data; returns the send-buffer space left (may be negative: the caller waits for onDrain). */
  send(data: Uint8Array): number {
    this.sendQ.push(data);
    this.charge(data.length);
    this.bytesWritten += data.length;
    this.scheduleOutput();
    const space = this.sendSpace;
    if (space < 0) this.waitIfOverMemory();
    return space;
  }

  /** Room left in the send buffer: per connection, and within the stack's and the peer address's totals. */
  get sendSpace(): number {
    return Math.min(this.sndBuf - this.sendQ.length, this.env.memory.sendRoom(this.host));
  }

  /** A writer held back by the stack's (or the peer address's) bound is woken when memory frees. */
  waitIfOverMemory(): void {
    if (this.env.memory.sendRoom(this.host) < 0) this.env.memory.waitForRoom(this);
  }

  /** end(): FIN after the queued data (§3.10.4). */
  close(): void {
    switch (this.state) {
      case "SYN-SENT":
        return this.teardown(undefined);
      case "SYN-RECEIVED":
      case "ESTABLISHED":
        this.finQueued = true;
        this.state = "FIN-WAIT-1";
        break;
      case "CLOSE-WAIT":
        this.finQueued = true;
        this.state = "LAST-ACK";
        break;
      default:
        return;
    }
    this.scheduleOutput();
  }

  /**
   * The application let go of the connection (destroy(), close() of a socket, with nothing left
   * unread): FIN after what is queued, and the close finishes without it, like an orphan socket
   * in Linux. New data from the peer is answered with RST; if the peer acknowledges nothing new
   * for orphanTimeoutMs (it stopped reading, or does not finish closing), the connection is reset.
   */
  orphan(): void {
    this.events = undefined;
    this.dropHeld();
    if (this.orphaned) return;
    this.orphaned = true;
    this.close();
    if (this.state === "CLOSED" || this.state === "TIME-WAIT") return;
    const q = this.env.timers;
    this.orphanTimer = q.timer(() => this.onOrphanTimeout(), true);
    q.arm(this.orphanTimer, this.o.orphanTimeoutMs);
  }

  /** An orphan that reached TIME-WAIT (or CLOSED) is closing as it should: no more reaper. */
  private clearOrphanTimer(): void {
    if (!this.orphanTimer) return;
    this.env.timers.cancel(this.orphanTimer);
    this.orphanTimer = undefined;
  }

  private onOrphanTimeout(): void {
    if (this.state === "CLOSED" || this.state === "TIME-WAIT") return;
    this.env.counters.inc("orphans_reaped");
    this.abort();
  }

  /**
   * The stack is closing: end now. The peer is told with a RST (nothing will answer it any more);
   * the owner hears ECONNABORTED if anything was still to be sent or read, or if the connection
   * was still being set up (its connect() rejects), and a plain close otherwise.
   */
  stackClosed(): void {
    const st = this.state;
    if (st === "CLOSED") return;
    if (st === "TIME-WAIT" || this.orphaned) return this.teardown(undefined);
    const connecting = st === "SYN-SENT" || st === "SYN-RECEIVED";
    const pending = connecting || this.sendQ.length > 0 || this.unread > 0 || this.ooo.bytes > 0 || (this.finQueued && this.finSeq < 0);
    if (st !== "SYN-SENT") this.emit(this.sndNxt, RST | ACK, 0, undefined, 0, 0);
    this.env.counters.inc("aborts_stack_closed");
    this.closedByStack = true;
    this.teardown(pending ? errnoError("ECONNABORTED", connecting ? "connect" : "read", `${this.peerText()} (the stack was closed)`) : undefined);
  }

  /** destroy(): abort with RST (§3.10.5). */
  abort(): void {
    if (this.state === "CLOSED" || this.state === "TIME-WAIT") return this.teardown(undefined);
    if (this.state !== "SYN-SENT" && this.state !== "LISTEN") this.emit(this.sndNxt, RST | ACK, 0, undefined, 0, 0);
    this.env.counters.inc("aborts");
    this.teardown(undefined);
  }

  /** The application consumed `n` bytes: reopen the window (receiver SWS avoidance, §3.8.6.2.2). */
  consumed(n: number): void {
    this.autotuneReceive(n);
    const before = this.rcvWindow();
    const was = this.unread;
    this.unread = Math.max(0, this.unread - n);
    this.charge(this.unread - was);
    const after = this.rcvWindow();
    // What the peer may still send. A pure window update only once that has fallen to half the
    // buffer and the update at least doubles it (Linux's tcp_cleanup_rbuf): a peer with half a
    // buffer of window is not waiting, and the larger window rides on the next ACK. Updating at
    // every MSS read sent a second ACK per received batch in bulk transfers, and each ACK written
    // to a TAP runs the sender's ACK processing inside that write.
    const adv = Math.max(0, seqSub(this.rcvAdvRight, this.rcvNxt));
    if (before < after && 2 * adv <= this.rcvBuf && after >= 2 * adv && after - adv >= Math.min(this.rcvBuf / 2, this.mss) && this.isSynchronized()) {
      this.ackNow = true;
      this.env.wantsOutput(this);
    }
  }

  /**
   * Receive-buffer autotuning (after Linux's dynamic right-sizing, tcp_rcv_space_adjust): once a
   * round trip, if the application consumed more than half the buffer in it, the buffer becomes
   * twice that, up to maxReceiveBufferSize, unless memory is under pressure. A window is only a
   * promise (memory is charged for bytes held), so a reader that keeps up costs nothing more.
   */
  private autotuneReceive(n: number): void {
    if (this.rcvBuf >= this.o.maxReceiveBufferSize) return;
    this.rcvCopied += n;
    const now = this.now();
    if (now - this.rcvSpaceTime < Math.max(1, this.rtt.srtt)) return;
    const copied = this.rcvCopied;
    this.rcvCopied = 0;
    this.rcvSpaceTime = now;
    if (2 * copied <= this.rcvBuf || !this.env.memory.relaxed(this.host)) return;
    this.rcvBuf = Math.min(this.o.maxReceiveBufferSize, 2 * copied);
    this.ooo.maxBytes = this.rcvBuf;
    this.env.counters.inc("receive_buffer_grown");
  }

  /**
   * Send-buffer autotuning (after Linux's tcp_sndbuf_expand): a writer the buffer holds back,
   * while the congestion window is not full, gets room for two congestion windows, up to
   * maxSendBufferSize, unless memory is under pressure.
   */
  private autotuneSend(): void {
    if (this.sndBuf >= this.o.maxSendBufferSize || this.sendQ.length + this.mss < this.sndBuf) return;
    if (seqSub(this.sndMax, this.sndUna) >= this.cc.cwnd || !this.env.memory.relaxed(this.host)) return;
    const want = Math.min(this.o.maxSendBufferSize, Math.ceil(2 * this.cc.cwnd));
    if (want <= this.sndBuf) return;
    this.sndBuf = want;
    this.env.counters.inc("send_buffer_grown");
  }

  setKeepAlive(on: boolean, idleMs?: number): void {
    this.keepAlive = on;
    if (idleMs !== undefined && idleMs > 0) this.keepIdleMs = idleMs;
    this.keepProbes = 0;
    if (on && this.isSynchronized()) this.env.timers.arm(this.keepTimer, this.keepIdleMs);
    else this.cancelT(this.keepT);
  }

  private isSynchronized(): boolean {
    return this.state !== "CLOSED" && this.state !== "LISTEN" && this.state !== "SYN-SENT" && this.state !== "SYN-RECEIVED";
  }

  /** Writes made in one tick are coalesced into full segments: output runs once, later. */
  private scheduleOutput(): void {
    this.env.wantsOutput(this);
  }

  // ==== input =================================================================================

  /** A segment for this connection (checksum verified, parsed in place). */
  input(seg: TcpSegment): void {
    const c = this.env.counters;
    this.lastRecv = this.now();
    if (this.state === "SYN-SENT") return this.inputSynSent(seg);
    const len = seg.payload.length + (seg.flags & SYN ? 1 : 0) + (seg.flags & FIN ? 1 : 0);

    // RFC 7323 §5.3 PAWS: drop a segment with an old timestamp (not an RST), one tick of the
    // peer's clock forgiven, as Linux does (TCP_PAWS_WINDOW): segments reordered on the way carry
    // timestamps a tick apart, and dropping them only costs retransmissions.
    if (this.tsOk && seg.hasTimestamp && !(seg.flags & RST) && seqLt(seg.tsVal, (this.tsRecent - PAWS_WINDOW) >>> 0)) {
      c.drop("paws_rejected");
      this.ackNow = true;
      return this.env.wantsOutput(this);
    }

    // First: sequence acceptability (§3.10.7.4, the four cases).
    const wnd = seqSub(this.rcvAdvRight, this.rcvNxt);
    let acceptable: boolean;
    if (len === 0) acceptable = wnd === 0 ? seg.seq === this.rcvNxt : seqLe(this.rcvNxt, seg.seq) && seqLt(seg.seq, seqAdd(this.rcvNxt, Math.max(wnd, 1)));
    else acceptable = wnd > 0 && (inWin(seg.seq, this.rcvNxt, wnd) || inWin(seqAdd(seg.seq, len - 1), this.rcvNxt, wnd));
    if (!acceptable) {
      if (this.state === "TIME-WAIT" && seg.flags & FIN) this.restartTimeWait();
      if (!(seg.flags & RST)) {
        c.inc("out_of_window");
        // §3.10.7.4: with a zero receive window no segment is acceptable, "but special allowance
        // should be made to accept valid ACKs": a peer probing our window still acknowledges our
        // data, and ignoring that would stall our sending until the window reopens.
        if (wnd === 0 && seg.flags & ACK && !(seg.flags & SYN) && this.isSynchronized() && this.state !== "SYN-RECEIVED" && seqLe(seg.ack, this.sndMax) && seqGt(seg.ack, this.sndUna)) {
          c.inc("zero_window_acks");
          this.processAck(seg);
          if (this.state === "CLOSED") return;
        }
        this.ackNow = true;
        this.env.wantsOutput(this);
      }
      return;
    }

    // Second: RST (RFC 5961 §3.2: exact match resets, in-window gets a challenge ACK).
    if (seg.flags & RST) {
      if (seg.seq !== this.rcvNxt) return this.challengeAck();
      c.inc("resets_received");
      if (this.state === "SYN-RECEIVED" && this.listener) return this.teardown(undefined);
      if (this.state === "TIME-WAIT" || this.state === "CLOSING" || this.state === "LAST-ACK") return this.teardown(undefined);
      return this.teardown(errnoError("ECONNRESET", "read"));
    }

    // Fourth: SYN in a synchronized state (RFC 5961 §4: challenge ACK).
    if (seg.flags & SYN) {
      if (this.state === "SYN-RECEIVED" && seg.seq === this.irs) {
        // A retransmitted SYN: our SYN-ACK was lost.
        return this.sendSyn(true);
      }
      return this.challengeAck();
    }

    // Fifth: the ACK field.
    if (!(seg.flags & ACK)) return c.drop("no_ack");
    if (this.state === "SYN-RECEIVED") {
      if (!(seqLt(this.sndUna, seg.ack) && seqLe(seg.ack, this.sndMax))) {
        this.env.reset(this.route, this.localPort, this.remotePort, seg.ack, 0, false);
        return;
      }
      this.established();
      if (this.listener) this.listener.onEstablished(this);
      else this.events?.onConnect(); // our active open met the peer's (simultaneous open)
      this.listener = undefined;
    }
    // RFC 5961 §5.2: an ACK for data never sent, or too far behind, gets a challenge ACK.
    if (seqGt(seg.ack, this.sndMax)) {
      this.ackNow = true;
      this.env.wantsOutput(this);
      return c.drop("ack_unsent_data");
    }
    if (this.maxSndWnd > 0 && seqLt(seg.ack, (this.sndUna - this.maxSndWnd) >>> 0)) return this.challengeAck();

    // TS.Recent only moves forward (RFC 7323 §4.3; PAWS let a tick-old one through).
    if (this.tsOk && seg.hasTimestamp && seqLe(seg.seq, this.lastAckSent) && seqGe(seg.tsVal, this.tsRecent)) this.tsRecent = seg.tsVal;
    this.processAck(seg);
    if (this.state === "CLOSED") return;

    // Seventh: segment text.
    let fin = (seg.flags & FIN) !== 0;
    let data = seg.payload;
    let seq = seg.seq;
    if (data.length > 0 || fin) {
      if (this.state === "CLOSE-WAIT" || this.state === "CLOSING" || this.state === "LAST-ACK" || this.state === "TIME-WAIT") {
        data = new Uint8Array(0); // §3.10.7.4: the peer already sent FIN
        if (this.state === "TIME-WAIT" && fin) this.restartTimeWait();
        fin = false;
        this.ackNow = true;
      }
    }
    if (data.length > 0 || fin) {
      // Trim what lies before RCV.NXT or past our advertised right edge.
      if (seqLt(seq, this.rcvNxt)) {
        const cut = seqSub(this.rcvNxt, seq);
        data = data.subarray(Math.min(cut, data.length));
        seq = this.rcvNxt;
      }
      const room = seqSub(this.rcvAdvRight, seq);
      if (data.length > room) {
        data = data.subarray(0, Math.max(0, room));
        fin = false;
      }
      if (this.orphaned && data.length > 0 && (this.state === "FIN-WAIT-1" || this.state === "FIN-WAIT-2")) {
        // Nobody will read it: RFC 1122 §4.2.2.13 (and Linux) answer new data after close() with RST.
        c.inc("aborts_on_data");
        return this.abort();
      }
      const over = this.env.memory.overLimit(this.host);
      const holding = this.unread + this.ooo.bytes + data.length;
      if (seq === this.rcvNxt && data.length > 0 && over && holding > this.o.minReceiveWindow) {
        // Past the hard memory bound a connection keeps only its minimum: the segment is dropped
        // (the peer retransmits it once the application has read and memory is free again).
        c.drop(`rcv_${over}`);
        this.ackNow = true;
      } else if (data.length > 0 && holding > this.rcvBuf + Math.max(this.rcvBuf >> 3, 4 << this.rcvWscale)) {
        // The edge never moves left, so each ACK of a closing window rounds it up to the scale
        // again (advertise()): a peer sending tiny segments to a reader that does not read would
        // keep it open. A connection holds at most its buffer and an eighth (as Linux prunes a
        // receive queue past its rcvbuf); the peer retransmits once the application reads.
        c.drop("rcv_buffer_full");
        this.ackNow = true;
      } else if (seq === this.rcvNxt) {
        this.deliver(data, fin, data.length > 0 && this.env.adopt(data));
        if (this.ooo.segs.length > 0) {
          const held = this.ooo.bytes;
          const more = this.ooo.take(this.rcvNxt);
          this.charge(this.ooo.bytes - held);
          if (more.length) this.ackNow = true; // a hole was filled: ACK at once (RFC 5681 §4.2)
          for (const m of more) this.deliver(m.data, m.fin, true); // the queue's own copies
        }
      } else {
        // Out of order: queue it and send a duplicate ACK with SACK at once (RFC 5681 §4.2).
        const held = this.ooo.bytes;
        if (over) c.drop(`ooo_${over}`);
        else if (!this.ooo.add(seq, data, fin)) c.drop("ooo_queue_full");
        else c.inc("ooo_queued");
        this.charge(this.ooo.bytes - held);
        this.ackNow = true;
      }
      if (!this.ackNow) {
        // RFC 5681 §4.2 counts full-sized segments: a large (offloaded) segment of more than one
        // MSS counts as two and is ACKed at once, as Linux does for more than one MSS received.
        this.unackedSegs += data.length > this.mss ? 2 : 1;
        if (this.unackedSegs >= 2) this.ackNow = true;
        else if (!this.delackTimer.armed) this.env.timers.arm(this.delackTimer, this.o.delayedAckMs);
      }
      this.env.wantsOutput(this);
    }
    if (this.keepAlive) {
      this.keepProbes = 0;
      this.env.timers.arm(this.keepTimer, this.keepIdleMs);
    }
  }

  /**
   * Hand the held segments up (the batch ended, or something that came after them goes up now):
   * one alone as it is (the flow copies it, as any such view), several as one chunk copied
   * together (counted in rx_coalesced, per segment joined).
   */
  releaseHeld(): void {
    const h = this.held;
    const bytes = this.heldBytes;
    const n = this.heldN;
    if (!h || bytes === 0) return;
    this.heldBytes = 0;
    this.heldN = 0;
    if (n === 1) {
      const only = h[0]!;
      h[0] = undefined as unknown as Uint8Array;
      this.events?.onData(only, false);
      return;
    }
    const chunk = Buffer.allocUnsafe(bytes);
    let at = 0;
    for (let i = 0; i < n; i++) {
      const v = h[i]!;
      h[i] = undefined as unknown as Uint8Array;
      chunk.set(v, at);
      at += v.length;
    }
    this.env.counters.inc("rx_coalesced", n - 1);
    this.events?.onData(chunk, true);
  }

  /** Held segments will never go up (nobody listens any more): let go of the views. */
  private dropHeld(): void {
    this.held = undefined;
    this.heldN = 0;
    this.heldBytes = 0;
  }

  private deliver(data: Uint8Array, fin: boolean, owned: boolean): void {
    if (data.length > 0) {
      this.rcvNxt = seqAdd(this.rcvNxt, data.length);
      this.unread += data.length;
      this.charge(data.length);
      this.bytesRead += data.length;
      const env = this.env;
      if (owned) {
        // A frame given up (a TAP's super-frame) goes up as it is, after what was held.
        if (this.heldBytes > 0) this.releaseHeld();
        this.upIn = -1;
        this.events?.onData(data, true);
      } else if (env.holdInput !== undefined && this.upIn === env.batches && env.holdInput(this)) {
        (this.held ??= [])[this.heldN++] = data;
        this.heldBytes += data.length;
      } else {
        if (this.heldBytes > 0) this.releaseHeld();
        this.upIn = env.batches ?? -1;
        this.events?.onData(data, false);
      }
    }
    if (fin) {
      if (this.heldBytes > 0) this.releaseHeld();
      this.rcvNxt = seqAdd(this.rcvNxt, 1);
      this.ackNow = true;
      this.env.counters.inc("fins_received");
      // Nothing lies past the peer's FIN: what it sent beyond it (held out of order) is dropped,
      // never handed up after the end (as Linux purges its out-of-order queue at the FIN).
      const beyond = this.ooo.bytes;
      if (this.ooo.segs.length > 0) {
        this.ooo.clear();
        this.charge(-beyond);
        this.env.counters.drop("data_beyond_fin");
      }
      this.events?.onEnd();
      switch (this.state) {
        case "SYN-RECEIVED":
        case "ESTABLISHED":
          this.state = "CLOSE-WAIT";
          break;
        case "FIN-WAIT-1":
          // Our FIN not yet acknowledged: simultaneous close.
          this.state = "CLOSING";
          break;
        case "FIN-WAIT-2":
          this.enterTimeWait();
          break;
        default:
          break;
      }
    }
  }

  private inputSynSent(seg: TcpSegment): void {
    const c = this.env.counters;
    const f = seg.flags;
    if (f & ACK && (seqLe(seg.ack, this.iss) || seqGt(seg.ack, this.sndMax))) {
      if (!(f & RST)) this.env.reset(this.route, this.localPort, this.remotePort, seg.ack, 0, false);
      return c.drop("bad_synack");
    }
    if (f & RST) {
      if (f & ACK) return this.teardown(errnoError("ECONNREFUSED", "connect", this.peerText()));
      return;
    }
    if (!(f & SYN)) return;
    this.irs = seg.seq;
    this.rcvNxt = seqAdd(seg.seq, 1);
    // Our SYN carried an unscaled window in a sequence space not known until now.
    this.rcvAdvRight = seqAdd(this.rcvNxt, this.synWindow);
    this.negotiate(seg);
    if (f & ACK) {
      this.sndUna = seg.ack;
      this.sndWnd = seg.window; // a SYN-ACK's window is never scaled (RFC 7323 §2.2)
      this.sndWl1 = seg.seq;
      this.sndWl2 = seg.ack;
      this.maxSndWnd = this.sndWnd;
      if (this.tsOk && seg.tsEcr) this.rtt.sample(this.tsNow() - seg.tsEcr);
      else if (this.synRetries === 0) this.rtt.sample(this.now() - this.rttTime);
      this.env.timers.cancel(this.rtoTimer);
      this.established();
      this.ackNow = true;
      this.env.wantsOutput(this);
      this.events?.onConnect();
      if (seg.payload.length) {
        // Data on a SYN-ACK: rare, but legal.
        this.deliver(seg.payload, false, false);
      }
    } else {
      // Simultaneous open (§3.10.7.3): SYN without ACK -> SYN-RECEIVED, send SYN-ACK.
      this.state = "SYN-RECEIVED";
      this.sndWnd = seg.window;
      this.sndWl1 = seg.seq;
      this.env.counters.inc("simultaneous_open");
      this.sendSyn(true);
    }
  }

  private established(): void {
    if (this.state === "SYN-SENT" || this.state === "SYN-RECEIVED") this.state = "ESTABLISHED";
    this.synRetries = 0;
    this.backoff = 0;
    this.env.counters.inc("established");
    this.listener?.halfOpenDone();
    if (this.keepAlive) this.env.timers.arm(this.keepTimer, this.keepIdleMs);
  }

  private processAck(seg: TcpSegment): void {
    const c = this.env.counters;
    const ack = seg.ack;
    const wnd = seg.window << this.sndWscale;
    if (this.sackOk && seg.sackCount > 0) {
      for (let i = 0; i < seg.sackCount; i++) this.sb.add(seg.sack[2 * i]!, seg.sack[2 * i + 1]!, this.sndUna, this.sndMax);
    }
    if (seqGt(ack, this.sndUna)) {
      const acked = seqSub(ack, this.sndUna);
      // RTT sample (RFC 6298 §3 / RFC 7323 §4.1); Karn: not from retransmitted data.
      if (this.tsOk && seg.hasTimestamp && seg.tsEcr !== 0) this.rtt.sample(seqSub(this.tsNow(), seg.tsEcr));
      else if (this.rttSeq >= 0 && seqGe(ack, this.rttSeq)) this.rtt.sample(this.now() - this.rttTime);
      if (this.rttSeq >= 0 && seqGe(ack, this.rttSeq)) this.rttSeq = -1;
      // SYN and FIN occupy sequence space but not the send queue.
      let dataAcked = acked;
      if (seqLe(this.sndUna, this.iss)) dataAcked--;
      if (this.finSeq >= 0 && seqGt(ack, this.finSeq)) dataAcked--;
      dataAcked = Math.min(Math.max(0, dataAcked), this.sendQ.length);
      this.sendQ.consume(dataAcked);
      this.charge(-dataAcked);
      this.sndUna = ack;
      if (seqLt(this.sndNxt, ack)) this.sndNxt = ack;
      this.sb.advance(ack);
      // An orphan still delivering to a peer that acknowledges is alive: its deadline counts from
      // the last progress (a slow reader of a large last response is not cut off mid-way).
      if (this.orphanTimer) this.env.timers.arm(this.orphanTimer, this.o.orphanTimeoutMs);
      this.backoff = 0;
      this.retransmits = 0;
      // Congestion control.
      if (this.inRecovery) {
        if (seqGe(ack, this.recover)) {
          this.inRecovery = false;
          this.cc.exitRecovery(this.now());
          c.inc("recoveries");
        } else if (!this.sackOk) {
          // NewReno partial ACK (RFC 6582 §3.2 step 3): retransmit the next segment at once.
          this.retransmitAt(this.sndUna);
          this.cc.cwnd = Math.max(this.mss, this.cc.cwnd - dataAcked + this.mss);
        }
      } else {
        // Data bytes only (RFC 5681 §3.1, RFC 3465): the ACK of our SYN or FIN says nothing about
        // what the path carries, and counting it made every slow-start burst k * MSS + 1 bytes.
        if (this.cwndIsLimiting()) this.cc.onAck(dataAcked, this.now(), this.rtt.srtt);
        else c.inc("cwnd_not_grown_app_limited");
      }
      this.dupAcks = 0;
      if (seqLt(this.rxtNext, ack)) this.rxtNext = ack;
      if (this.sndUna === this.sndMax) {
        this.env.timers.cancel(this.rtoTimer);
        this.env.timers.cancel(this.ptoTimer);
      } else this.armRto(true);
      if (dataAcked > 0) {
        this.autotuneSend();
        if (this.sendSpace > 0) this.events?.onDrain();
      }
      // Our FIN acknowledged?
      if (this.finSeq >= 0 && seqGt(ack, this.finSeq)) {
        switch (this.state) {
          case "FIN-WAIT-1":
            this.state = "FIN-WAIT-2";
            if (this.o.finWait2TimeoutMs > 0) this.env.timers.arm(this.waitTimer, this.o.finWait2TimeoutMs);
            break;
          case "CLOSING":
            this.enterTimeWait();
            break;
          case "LAST-ACK":
            this.teardown(undefined);
            return;
          default:
            break;
        }
      }
    } else if (ack === this.sndUna && seg.payload.length === 0 && !(seg.flags & (SYN | FIN)) && this.sndMax !== this.sndUna && wnd === this.sndWnd) {
      // Duplicate ACK (RFC 5681 §2).
      this.dupAcks++;
      c.inc("dup_acks");
      if (this.inRecovery) {
        if (!this.sackOk) this.cc.cwnd += this.mss; // NewReno inflation
      } else if (this.dupAcks === 3 || (this.sackOk && this.sb.sacked >= 3 * this.mss)) {
        this.enterRecovery();
      } else if (this.dupAcks <= 2 && this.o.limitedTransmit) {
        // RFC 3042 limited transmit: one new segment per duplicate ACK.
        this.limitedTransmit = true;
      }
    }
    // Window update (§3.10.7.4: SND.WL1 / SND.WL2 rule).
    if (seqLt(this.sndWl1, seg.seq) || (this.sndWl1 === seg.seq && seqLe(this.sndWl2, ack))) {
      const opened = this.sndWnd === 0 && wnd > 0;
      this.sndWnd = wnd;
      this.sndWl1 = seg.seq;
      this.sndWl2 = ack;
      if (wnd > this.maxSndWnd) this.maxSndWnd = wnd;
      if (opened) {
        this.cancelT(this.persistT);
        this.persistBackoff = 0;
      }
    }
    this.env.wantsOutput(this);
  }

  private enterRecovery(): void {
    const c = this.env.counters;
    c.inc("fast_retransmits");
    this.inRecovery = true;
    this.recover = this.sndMax;
    this.cc.enterRecovery(seqSub(this.sndMax, this.sndUna), this.now());
    this.rxtNext = this.sndUna;
    this.retransmitAt(this.sndUna);
    this.rxtNext = seqAdd(this.sndUna, Math.min(this.mss, this.sendQ.length));
    this.rttSeq = -1;
  }

  private challengeAck(): void {
    const c = this.env.counters;
    if (!this.env.challengeAllowed()) return c.drop("challenge_ack_rate_limited");
    c.inc("challenge_acks");
    this.sendAck();
  }

  // ==== output ================================================================================

  /** Send whatever the windows allow, then a pure ACK if one is still owed. */
  flush(): void {
    if (this.state === "CLOSED" || this.state === "SYN-SENT") return;
    if (this.state === "TIME-WAIT" && this.env.keepTimeWait && !this.waitT?.armed) return this.handOverTimeWait();
    if (this.state !== "SYN-RECEIVED" && this.state !== "TIME-WAIT") this.output();
    if (this.ackNow) this.sendAck();
  }

  /** Bytes between sndUna and the segment we might send, excluding SACKed data (RFC 6675 pipe). */
  private pipe(): number {
    return seqSub(this.sndMax, this.sndUna) - this.sb.sacked;
  }

  private output(): void {
    const c = this.env.counters;
    // During SACK recovery, fill holes below the highest SACKed byte first.
    if (this.inRecovery && this.sackOk) {
      const high = this.sb.highest();
      while (high !== undefined && seqLt(this.rxtNext, high) && this.pipe() < this.cc.cwnd) {
        const s = this.sb.skip(seqMax(this.rxtNext, this.sndUna));
        if (!seqLt(s, high)) break;
        const n = this.sb.holeLength(s, Math.min(this.mss, seqSub(high, s)));
        this.retransmitAt(s, n);
        this.rxtNext = seqAdd(s, n);
      }
    }
    for (;;) {
      const off = seqSub(this.sndNxt, this.sndUna) - (seqLe(this.sndUna, this.iss) ? 1 : 0);
      const unsent = this.sendQ.length - Math.max(0, off);
      // After an RTO everything past SND.NXT counts as lost (RFC 6675 §5.1): what is in flight
      // is only what was resent since.
      const inflight = this.inRecovery && this.sackOk ? this.pipe() : seqLt(this.sndNxt, this.sndMax) ? seqSub(this.sndNxt, this.sndUna) : seqSub(this.sndMax, this.sndUna);
      let cwnd = this.cc.cwnd;
      if (this.limitedTransmit) {
        cwnd += 2 * this.mss;
        this.limitedTransmit = false;
      }
      const wndRight = seqAdd(this.sndUna, this.sndWnd);
      const usable = Math.min(seqSub(wndRight, this.sndNxt), cwnd - inflight);
      // Windows are real numbers (CUBIC); segments are whole bytes. New data may go out as one
      // super-segment when the netif segments for us (TSO); retransmissions stay one MSS.
      const seg = this.room();
      const g = this.env.gsoMax;
      const cap = g > 0 && !this.route.local && !seqLt(this.sndNxt, this.sndMax) ? Math.max(seg, Math.floor((g - 120) / seg) * seg) : seg;
      let n = Math.floor(Math.min(cap, unsent, Math.max(0, usable)));
      const finNow = this.finQueued && this.finSeq < 0 && unsent - n <= 0 && (this.state === "FIN-WAIT-1" || this.state === "LAST-ACK" || this.state === "CLOSING");
      if (n <= 0 && !finNow) {
        // Blocked by the peer's window with nothing in flight: only a probe (or a window update)
        // can unblock us (§3.8.6.1).
        if (unsent > 0 && seqSub(wndRight, this.sndNxt) <= 0 && seqSub(this.sndMax, this.sndUna) === 0 && !this.persistT?.armed) this.armPersist();
        break;
      }
      if (n > 0 && n < this.mss && !finNow) {
        // Sender SWS avoidance (§3.8.6.2.1) and Nagle (RFC 896).
        const allIn = n === unsent;
        const idle = seqSub(this.sndMax, this.sndUna) === 0;
        const ok = (allIn && (this.noDelay || idle)) || n >= this.maxSndWnd / 2 || this.swsOverride;
        if (!ok) {
          // Sender SWS avoidance holds a small segment back; with nothing in flight nothing else
          // will wake us, so the persist timer doubles as the override timeout (§3.8.6.2.1).
          if (idle && !this.persistT?.armed) this.armPersist();
          break;
        }
      }
      // Skip data the peer already holds after an RTO rewound SND.NXT.
      if (this.sackOk && seqLt(this.sndNxt, this.sndMax) && this.sb.isSacked(this.sndNxt)) {
        const to = this.sb.skip(this.sndNxt);
        this.sndNxt = seqLt(to, this.sndMax) ? to : this.sndMax;
        continue;
      }
      const retrans = seqLt(this.sndNxt, this.sndMax);
      if (retrans && this.sackOk) n = this.sb.holeLength(this.sndNxt, n);
      let flags = ACK;
      const last = n === unsent;
      if (last && n > 0) flags |= PSH;
      if (finNow && last) flags |= FIN;
      if (!this.emit(this.sndNxt, flags, this.advertise(), this.sendQ, Math.max(0, off), n, NO_EXTRA, seg)) {
        // The local queue is full (the netif could not take the burst): this is no loss on the
        // path, so don't count it as sent; try again once the queue has drained.
        this.env.retryOutput(this);
        break;
      }
      if (retrans) c.inc("retransmitted_segments");
      else if (this.rttSeq < 0 && n > 0 && !this.tsOk) {
        this.rttSeq = seqAdd(this.sndNxt, n);
        this.rttTime = this.now();
      }
      this.sndNxt = seqAdd(this.sndNxt, n + (flags & FIN ? 1 : 0));
      if (flags & FIN) this.finSeq = seqAdd(this.sndNxt, -1);
      if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
      if (!this.rtoTimer.armed) this.armRto();
      if (flags & FIN) break;
    }
    this.noteCwndUse();
  }

  /** After output: record how much of cwnd the flight used (see maxInflight). */
  private noteCwndUse(): void {
    const inflight = this.inRecovery && this.sackOk ? this.pipe() : seqSub(this.sndNxt, this.sndUna);
    const limited = this.cc.cwnd - inflight < this.mss;
    if (!seqLt(this.sndUna, this.cwndUsageSeq) || limited || (!this.cwndLimited && inflight > this.maxInflight)) {
      this.cwndLimited = limited;
      this.maxInflight = inflight;
      this.cwndUsageSeq = this.sndNxt;
    }
  }

  /** Whether an ACK may grow cwnd: in slow start while cwnd is under twice the flight, after it while cwnd held the sender back. */
  private cwndIsLimiting(): boolean {
    if (this.cc.cwnd < this.cc.ssthresh) return this.cc.cwnd < 2 * this.maxInflight;
    return this.cwndLimited;
  }

  /** Retransmit up to one MSS (or `len`) starting at `seq`. */
  private retransmitAt(seq: number, len = this.mss): void {
    const off = seqSub(seq, this.sndUna) - (seqLe(this.sndUna, this.iss) ? 1 : 0);
    if (off < 0) return;
    // Only what was sent before: a retransmission never reaches past SND.MAX.
    const sentData = seqSub(this.finSeq >= 0 ? this.finSeq : this.sndMax, seq);
    const n = Math.min(len, this.room(), this.sendQ.length - off, sentData);
    let flags = ACK;
    if (n <= 0) {
      if (this.finSeq >= 0 && seq === this.finSeq) flags |= FIN;
      else return;
    }
    if (this.finSeq >= 0 && seqAdd(seq, Math.max(0, n)) === this.finSeq && n === this.sendQ.length - off) flags |= FIN;
    this.emit(seq, flags, this.advertise(), this.sendQ, off, Math.max(0, n));
    this.env.counters.inc("retransmitted_segments");
    this.rttSeq = -1; // Karn
  }

  /** Window to advertise now, scaled; never moves the right edge left. */
  private advertise(): number {
    let w = this.rcvWindow();
    const adv = seqSub(this.rcvAdvRight, this.rcvNxt);
    // Receiver SWS avoidance: don't advertise small increases.
    if (w > adv && w - adv < Math.min(this.rcvBuf / 2, this.mss)) w = Math.max(adv, 0);
    if (w < adv) w = adv;
    // Round up to the scale (RFC 7323 §2.3): rounding down would move the right edge the peer
    // was already given to the left, and the bytes it then sends up to that edge would be refused
    // (and with a zero window, its ACKs with them). The few bytes over are promised like the rest.
    const unit = 2 ** this.rcvWscale;
    const scaled = Math.min(0xffff, Math.ceil(w / unit));
    const right = seqAdd(this.rcvNxt, scaled * unit);
    if (seqGt(right, this.rcvAdvRight)) this.rcvAdvRight = right;
    // A window cut by memory pressure is reopened with an update once the pressure eases.
    this.noteSqueeze();
    this.ackNow = false;
    this.unackedSegs = 0;
    this.lastAckSent = this.rcvNxt;
    this.env.timers.cancel(this.delackTimer);
    return scaled;
  }

  /**
   * Build and send one segment: our ports, `seq`, the ACK field (RCV.NXT when ACK is set), the
   * window, the timestamp and SACK options the connection negotiated, `extra` options (a SYN's),
   * and `len` bytes of `q` from `off`; as a TSO super-segment of `gsoSize`-byte segments when the
   * payload is larger.
   */
  private emit(seq: number, flags: number, window: number, q: SendQueue | undefined, off: number, len: number, extra: Partial<TcpEmit> = NO_EXTRA, gsoSize = 0): boolean {
    const sack = flags & ACK && !(flags & SYN) ? this.sackBlocks() : undefined;
    const gso = gsoSize > 0 && len > gsoSize ? gsoSize : 0;
    if (extra === NO_EXTRA) {
      const h = HDR;
      h.srcPort = this.localPort;
      h.dstPort = this.remotePort;
      h.seq = seq;
      h.ack = flags & ACK ? this.rcvNxt : 0;
      h.flags = flags;
      h.window = window;
      if (this.tsOk) {
        HDR_TS.val = this.tsNow();
        HDR_TS.ecr = this.tsRecent;
        h.ts = HDR_TS;
      } else h.ts = undefined;
      h.sack = sack;
      return this.env.transmit(this.route, h, q, off, len, gso);
    }
    const ts = extra.ts ?? this.tsOption();
    // Built in place (no spreads).
    // Sequence numbers: made with doubles, then filled (core/double.ts).
    const repr: TcpEmit = { srcPort: this.localPort, dstPort: this.remotePort, seq: DOUBLE_ZERO, ack: DOUBLE_ZERO, flags, window };
    repr.seq = seq;
    if (flags & ACK) repr.ack = this.rcvNxt;
    Object.assign(repr, extra);
    if (ts) repr.ts = ts;
    if (sack) repr.sack = sack;
    return this.env.transmit(this.route, repr, q, off, len, gso);
  }

  sendAck(): void {
    if (this.state === "CLOSED" || this.state === "SYN-SENT" || this.state === "LISTEN") return;
    // SND.MAX, not SND.NXT: after a retransmission timeout rewound SND.NXT, the peer may already
    // hold everything up to SND.MAX and would find an older sequence number unacceptable,
    // dropping the acknowledgment with it.
    this.emit(this.sndMax, ACK, this.advertise(), undefined, 0, 0);
  }

  /** Payload bytes that fit in one segment now: the MSS less any SACK option we must carry. */
  private room(): number {
    const blocks = this.sackOk ? Math.min(this.ooo.segs.length, this.tsOk ? 3 : 4) : 0;
    return blocks > 0 ? this.mss - (4 + 8 * blocks) : this.mss;
  }

  /** SACK blocks to put on an outgoing segment (the out-of-order data we hold). */
  sackBlocks(): number[] | undefined {
    if (!this.sackOk || this.ooo.segs.length === 0) return undefined;
    return this.ooo.sackBlocks(this.tsOk ? 3 : 4);
  }

  tsOption(): { val: number; ecr: number } | undefined {
    return this.tsOk ? this.tsPair(this.tsRecent) : undefined;
  }

  /** A timestamp option: made with doubles, then filled (both carry 32-bit values; core/double.ts). */
  private tsPair(ecr: number): { val: number; ecr: number } {
    const o = { val: DOUBLE_ZERO, ecr: DOUBLE_ZERO };
    o.val = this.tsNow();
    o.ecr = ecr;
    return o;
  }

  // ==== timers ================================================================================

  private armRto(restart = false): void {
    if (this.rtoTimer.armed && !restart) return;
    this.deferredSince = -1; // a new timeout: any deferral was for an earlier one
    const rto = Math.min(this.o.maxRtoMs, this.rtt.rto * Math.pow(2, this.backoff));
    this.env.timers.arm(this.rtoTimer, rto);
    this.armPto(rto);
  }

  /**
   * RFC 8985 §7.2: a probe timeout of 2 SRTT (plus a delayed-ACK allowance when one segment is in
   * flight) fires before the RTO, so a lost tail — or a lost retransmission — is repaired by
   * SACK-driven recovery instead of a timeout that collapses the window.
   */
  private armPto(rto: number): void {
    if (!this.o.tailLossProbe || !this.rtt.hasSample || this.sndUna === this.sndMax || !this.isSynchronized()) return;
    let pto = Math.max(2 * this.rtt.srtt, 10);
    if (seqSub(this.sndMax, this.sndUna) <= this.mss) pto = Math.max(pto, 1.5 * this.rtt.srtt + this.o.delayedAckMs * 2);
    if (pto >= rto) return this.env.timers.cancel(this.ptoTimer);
    this.env.timers.arm(this.ptoTimer, pto);
  }

  /**
   * A retransmission timer (RTO or probe) expired while received frames wait unread: the event
   * loop was busy (a burst of TLS handshakes), and the ACK the timer waits for may be among them,
   * where the kernel would have taken it in its softirq long ago. Wait for them to be read,
   * checking again after 1, 1, 2, 4 ... ms (a dozen checks at most, so that thousands of
   * connections under a flood do not spin the timers), for at most one more RTO in all (as long
   * as one backoff would add); true if the timer was set again. Only for synchronized
   * connections: a half-open one under a SYN flood retransmits one small SYN-ACK on time.
   * Without this, 400 handshakes at once on a TAP took 400 spurious RTOs and 1,500 probes on a
   * link that lost nothing.
   */
  private deferRetransmit(t: Timer): boolean {
    if (!this.isSynchronized() || !this.env.inputPending()) {
      this.deferredSince = -1;
      return false;
    }
    const now = this.now();
    if (this.deferredSince < 0) {
      this.deferredSince = now;
      this.env.counters.inc("retransmits_deferred");
    }
    const waited = now - this.deferredSince;
    const left = this.rtt.rto - waited;
    if (left <= 0) {
      this.deferredSince = -1;
      return false;
    }
    this.env.timers.arm(t, Math.max(1, Math.min(waited, left)));
    return true;
  }

  private onPto(): void {
    if (!this.isSynchronized() || this.sndUna === this.sndMax || this.sndWnd === 0) return;
    if (this.deferRetransmit(this.ptoTimer)) return;
    const c = this.env.counters;
    c.inc("tail_loss_probes");
    const off = seqSub(this.sndMax, this.sndUna) - (seqLe(this.sndUna, this.iss) ? 1 : 0);
    const unsent = this.sendQ.length - off;
    if (this.inRecovery) {
      // The first hole's retransmission may itself be lost: send it again.
      this.retransmitAt(this.sndUna);
    } else if (unsent > 0 && seqSub(seqAdd(this.sndUna, this.sndWnd), this.sndMax) > 0) {
      // New data as the probe (§7.3).
      const n = Math.min(this.room(), unsent, seqSub(seqAdd(this.sndUna, this.sndWnd), this.sndMax));
      const saveNxt = this.sndNxt;
      this.sndNxt = this.sndMax;
      this.emit(this.sndNxt, ACK | PSH, this.advertise(), this.sendQ, off, n);
      this.sndNxt = seqAdd(this.sndMax, n);
      this.sndMax = this.sndNxt;
      if (seqGt(saveNxt, this.sndNxt)) this.sndNxt = saveNxt;
    } else {
      // Otherwise the highest outstanding segment.
      const dataEnd = this.finSeq >= 0 ? this.finSeq : this.sndMax;
      const back = Math.min(this.room(), seqSub(dataEnd, this.sndUna));
      this.retransmitAt(back > 0 ? (dataEnd - back) >>> 0 : this.sndUna);
    }
    // One probe per tail; the RTO stays armed behind it.
  }

  private onRto(): void {
    const c = this.env.counters;
    if (this.state === "CLOSED" || this.state === "TIME-WAIT") return;
    if (this.deferRetransmit(this.rtoTimer)) return;
    if (this.state === "SYN-SENT" || this.state === "SYN-RECEIVED") {
      // A passive open gives up sooner than connect() (synAckRetries, like Linux).
      if (++this.synRetries > (this.listener ? this.o.synAckRetries : this.o.synRetries)) {
        return this.teardown(errnoError("ETIMEDOUT", "connect", `${this.peerText()} (no answer to SYN)`));
      }
      this.backoff++;
      c.inc("syn_retransmits");
      this.sendSyn(this.state === "SYN-RECEIVED");
      return;
    }
    if (this.sndUna === this.sndMax) return;
    if (this.sndWnd === 0 && this.lastRecv > this.lastRtoAt) {
      // The peer is alive but its window is closed: data past the window is not lost, the timer
      // is a zero-window probe (§3.8.6.1) and neither counts toward giving up nor shrinks cwnd.
      this.lastRtoAt = this.now();
      c.inc("window_probes");
      this.backoff = Math.min(this.backoff + 1, 10);
      this.retransmitAt(this.sndUna, 1);
      this.armRto(true);
      return;
    }
    this.lastRtoAt = this.now();
    if (++this.retransmits > this.o.maxRetransmits) {
      return this.teardown(errnoError("ETIMEDOUT", "read", "(retransmissions unanswered)"));
    }
    c.inc("rto_timeouts");
    // RFC 6298 §5.5-5.7: back off, retransmit the earliest unacknowledged segment, slow start.
    this.backoff = Math.min(this.backoff + 1, 16);
    this.cc.onRto(seqSub(this.sndMax, this.sndUna), this.now());
    this.inRecovery = false;
    this.dupAcks = 0;
    this.rttSeq = -1;
    // RFC 2018 §8: after an RTO the receiver may have dropped SACKed data; start over.
    this.sb.clear();
    this.sndNxt = this.sndUna;
    this.rxtNext = this.sndUna;
    this.armRto(true);
    this.output();
    if (this.sndNxt === this.sndUna) this.retransmitAt(this.sndUna);
  }

  private armPersist(): void {
    const t = Math.min(60_000, Math.max(this.o.minRtoMs, this.rtt.rto) * Math.pow(2, this.persistBackoff));
    this.env.timers.arm(this.persistTimer, t);
  }

  private swsOverride = false;

  private lastRtoAt = -1;

  /** Zero-window probe (§3.8.6.1): a segment below the window elicits an ACK carrying it. */
  private onPersist(): void {
    if (!this.isSynchronized()) return;
    if (this.sndWnd > 0) {
      // The SWS override timeout: send what the (small) window allows.
      this.swsOverride = true;
      this.output();
      this.swsOverride = false;
      return;
    }
    this.env.counters.inc("window_probes");
    this.emit(seqAdd(this.sndUna, -1), ACK, this.advertise(), undefined, 0, 0);
    this.persistBackoff = Math.min(this.persistBackoff + 1, 10);
    this.armPersist();
  }

  private onKeepalive(): void {
    if (!this.keepAlive || !this.isSynchronized()) return;
    const idle = this.now() - this.lastRecv;
    if (idle < this.keepIdleMs && this.keepProbes === 0) {
      this.env.timers.arm(this.keepTimer, this.keepIdleMs - idle);
      return;
    }
    if (this.keepProbes >= this.o.keepAliveProbes) {
      return this.teardown(errnoError("ETIMEDOUT", "read", "(keepalive probes unanswered)"));
    }
    this.keepProbes++;
    this.env.counters.inc("keepalive_probes");
    this.emit(seqAdd(this.sndUna, -1), ACK, this.advertise(), undefined, 0, 0);
    this.env.timers.arm(this.keepTimer, this.o.keepAliveIntervalMs);
  }

  private enterTimeWait(): void {
    if (!this.env.timeWait(1)) {
      // Like Linux past tcp_max_tw_buckets: acknowledge the FIN and close without TIME-WAIT,
      // rather than let closed connections crowd out live ones.
      this.env.counters.drop("time_wait_overflow");
      this.sendAck();
      this.events?.onClose(undefined);
      this.events = undefined;
      return this.teardown(undefined);
    }
    this.clearOrphanTimer();
    this.state = "TIME-WAIT";
    this.env.timers.cancel(this.rtoTimer);
    this.cancelT(this.persistT);
    this.cancelT(this.keepT);
    // Where the stack keeps TIME-WAIT records (timewait.ts), this connection hands over to one at
    // the end of the batch (flush), once the ACK it owes has gone; elsewhere it waits itself.
    // (The wait timer may still run FIN-WAIT-2's timeout.)
    if (this.env.keepTimeWait) {
      this.cancelT(this.waitT);
      this.env.wantsOutput(this);
    } else this.env.timers.arm(this.waitTimer, 2 * this.o.mslMs);
    this.env.counters.inc("time_wait");
    this.events?.onClose(undefined);
    this.events = undefined;
  }

  /**
   * TIME-WAIT passes to a small record of the stack's (timewait.ts): this connection's buffers,
   * timers and congestion state go, and it reads CLOSED from here on (its flow's tcpState says
   * TIME-WAIT while the record lasts).
   */
  private handOverTimeWait(): void {
    if (this.ackNow) this.sendAck();
    const rec = this.env.keepTimeWait?.(this);
    if (!rec) return this.env.timers.arm(this.waitTimer, 2 * this.o.mslMs);
    this.timeWaitRecord = rec;
    this.teardown(undefined);
  }

  private restartTimeWait(): void {
    this.ackNow = true;
    this.env.wantsOutput(this);
    if (!this.env.keepTimeWait || this.waitT?.armed) this.env.timers.arm(this.waitTimer, 2 * this.o.mslMs);
  }

  private onWaitTimer(): void {
    if (this.state === "TIME-WAIT") return this.teardown(undefined);
    if (this.state === "FIN-WAIT-2") return this.teardown(undefined); // peer never closed (like tcp_fin_timeout)
  }

  /** Accept a new SYN on a TIME-WAIT connection's 4-tuple (RFC 6191 style: only if it is newer). */
  canReuse(seg: TcpSegment): boolean {
    if (this.state !== "TIME-WAIT") return false;
    if (this.tsOk && seg.hasTimestamp) return seqGt(seg.tsVal, this.tsRecent);
    return seqGt(seg.seq, this.rcvNxt);
  }

  /** Remove the connection from the stack; tell the owner once. */
  teardown(e: (Error & { code: string }) | undefined): void {
    if (this.state === "CLOSED") return;
    const wasHalfOpen = this.state === "SYN-RECEIVED" && this.listener;
    if (this.state === "TIME-WAIT" && !this.timeWaitRecord) this.env.timeWait(-1);
    this.state = "CLOSED";
    const t = this.env.timers;
    t.cancel(this.rtoTimer);
    t.cancel(this.delackTimer);
    this.cancelT(this.persistT);
    this.cancelT(this.keepT);
    this.cancelT(this.waitT);
    t.cancel(this.ptoTimer);
    this.clearOrphanTimer();
    if (wasHalfOpen) this.listener?.halfOpenDone();
    this.charge(-(this.sendQ.length + this.ooo.bytes + this.unread));
    this.sendQ.clear();
    this.ooo.clear();
    this.unread = 0;
    this.env.memory.forget(this, this.host);
    this.closedErr = e;
    this.env.closed(this);
    if (this.heldBytes > 0) this.releaseHeld(); // what came before the end goes up before it
    const ev = this.events;
    this.events = undefined;
    ev?.onClose(e);
  }
}

function inWin(x: number, start: number, wnd: number): boolean {
  return seqLe(start, x) && seqLt(x, seqAdd(start, wnd));
}
