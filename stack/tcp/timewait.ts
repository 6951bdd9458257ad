/**
 * TIME-WAIT kept small, as Linux keeps it (inet_timewait_sock): once a connection has sent the
 * ACK that enters TIME-WAIT, its control block (buffers, congestion state, six timers, ~2.8 KB of
 * heap) is let go and the 2 x MSL wait is carried by a record of what the state still needs: the
 * 4-tuple and route, RCV.NXT and the window edge, SND.MAX, the timestamps. A server that closes
 * first holds one per recent connection (up to maxTimeWait, 32768 by default): at ~2.8 KB each
 * that was 90 MB of heap the collector copied and marked, at a few hundred bytes it is a tenth.
 *
 * A record answers what RFC 9293 §3.10.7.4 asks of TIME-WAIT, as the full connection did: a
 * retransmitted FIN is acknowledged again and restarts the wait; an unacceptable segment gets an
 * ACK; an exact RST ends the wait (an in-window one gets an RFC 5961 challenge ACK, as does a SYN
 * that does not qualify for reuse); PAWS applies (RFC 7323 §5.3). A new plain SYN that is newer
 * than the old connection (RFC 6191) replaces the record: the demux asks canReuse() first.
 *
 * Every record waits the same 2 x MSL (one stack, one mslMs) from its last (re)start, so the table
 * is a list in expiry order: a restart moves the record to the tail, and one timer, for the head,
 * serves them all (no heap entry, no timer object per record).
 */
import type { Route } from "../ip.js";
import type { Timer, TimerQueue } from "../core/timers.js";
import type { Counters } from "../core/stats.js";
import { ACK, FIN, RST, SYN, type TcpEmit, type TcpSegment } from "../wire/tcp.js";
import type { SendQueue } from "./buffers.js";
import type { Flushable } from "./env.js";
import { seqAdd, seqGe, seqGt, seqLe, seqLt, seqSub } from "./seq.js";
import { DOUBLE_ZERO } from "../core/double.js";

/** RFC 7323 §5.3: a timestamp one tick old is forgiven (Linux's TCP_PAWS_WINDOW), as in tcb.ts. */
const PAWS_WINDOW = 1;

/** What a record needs of its stack (the TCP layer provides it). */
export interface TimeWaitEnv {
  readonly timers: TimerQueue;
  readonly counters: Counters;
  transmit(route: Route, repr: TcpEmit, payload: SendQueue | undefined, off: number, len: number, gsoSize: number): boolean;
  challengeAllowed(): boolean;
  wantsOutput(t: Flushable): void;
}

/** The connection state a record is made from (a Tcb at the end of its life). */
export interface TimeWaitSource {
  readonly key: string;
  readonly route: Route;
  readonly localPort: number;
  readonly remotePort: number;
  readonly sndMax: number;
  readonly maxSndWnd: number;
  readonly rcvNxt: number;
  readonly rcvAdvRight: number;
  readonly rcvWscale: number;
  readonly tsOk: boolean;
  readonly tsRecent: number;
  readonly tsOffset: number;
}

/** The header of every ACK a record sends (valid during transmit only, as env.transmit allows). */
const HDR: TcpEmit = { srcPort: 0, dstPort: 0, seq: DOUBLE_ZERO, ack: DOUBLE_ZERO, flags: ACK, window: 0 };
const HDR_TS = { val: DOUBLE_ZERO, ecr: DOUBLE_ZERO };

/** One connection in TIME-WAIT. */
export class TimeWait implements Flushable {
  readonly state = "TIME-WAIT";
  outputDue = false;
  retryDue = false;
  /** Ended (expired, reset, replaced or its stack closed). */
  gone = false;
  /** When the wait ends (the table's clock, ms). */
  expires = DOUBLE_ZERO;
  /** Neighbours in the table's expiry order. */
  prev: TimeWait | undefined = undefined;
  next: TimeWait | undefined = undefined;
  readonly key: string;
  readonly route: Route;
  readonly localPort: number;
  readonly remotePort: number;
  private readonly sndMax: number;
  private readonly maxSndWnd: number;
  private readonly rcvNxt: number;
  /** The right edge of the window last offered (§3.8.6.2.1: never moved left; nothing more is offered). */
  private readonly rcvRight: number;
  /** The window field of our ACKs: that edge, scaled as the connection scaled it. */
  private readonly window: number;
  private readonly tsOk: boolean;
  private tsRecent: number;
  private readonly tsOffset: number;
  private ackOwed = false;

  constructor(
    private readonly table: TimeWaitTable,
    s: TimeWaitSource,
  ) {
    this.key = s.key;
    this.route = s.route;
    this.localPort = s.localPort;
    this.remotePort = s.remotePort;
    this.sndMax = s.sndMax;
    this.maxSndWnd = s.maxSndWnd;
    this.rcvNxt = s.rcvNxt;
    this.rcvRight = s.rcvAdvRight;
    this.window = Math.min(0xffff, Math.ceil(Math.max(0, seqSub(s.rcvAdvRight, s.rcvNxt)) / 2 ** s.rcvWscale));
    this.tsOk = s.tsOk;
    this.tsRecent = s.tsRecent;
    this.tsOffset = s.tsOffset;
  }

  /** Accept a new SYN on this 4-tuple (RFC 6191): only if it is newer than the old connection. */
  canReuse(seg: TcpSegment): boolean {
    if (this.tsOk && seg.hasTimestamp) return seqGt(seg.tsVal, this.tsRecent);
    return seqGt(seg.seq, this.rcvNxt);
  }

  /** A segment for this 4-tuple (RFC 9293 §3.10.7.4, in TIME-WAIT). */
  input(seg: TcpSegment): void {
    const c = this.table.env.counters;
    const f = seg.flags;
    if (this.tsOk && seg.hasTimestamp && !(f & RST) && seqLt(seg.tsVal, (this.tsRecent - PAWS_WINDOW) >>> 0)) {
      c.drop("paws_rejected");
      return this.owe();
    }
    const len = seg.payload.length + (f & SYN ? 1 : 0) + (f & FIN ? 1 : 0);
    const wnd = seqSub(this.rcvRight, this.rcvNxt);
    let acceptable: boolean;
    if (len === 0) acceptable = wnd === 0 ? seg.seq === this.rcvNxt : seqLe(this.rcvNxt, seg.seq) && seqLt(seg.seq, seqAdd(this.rcvNxt, Math.max(wnd, 1)));
    else acceptable = wnd > 0 && (inWin(seg.seq, this.rcvNxt, wnd) || inWin(seqAdd(seg.seq, len - 1), this.rcvNxt, wnd));
    if (!acceptable) {
      if (f & FIN) this.table.restart(this);
      if (!(f & RST)) {
        c.inc("out_of_window");
        this.owe();
      }
      return;
    }
    if (f & RST) {
      if (seg.seq !== this.rcvNxt) return this.challengeAck();
      c.inc("resets_received");
      return this.table.end(this);
    }
    if (f & SYN) return this.challengeAck();
    if (!(f & ACK)) return c.drop("no_ack");
    if (seqGt(seg.ack, this.sndMax)) {
      this.owe();
      return c.drop("ack_unsent_data");
    }
    if (this.maxSndWnd > 0 && seqLt(seg.ack, (this.sndMax - this.maxSndWnd) >>> 0)) return this.challengeAck();
    if (this.tsOk && seg.hasTimestamp && seqLe(seg.seq, this.rcvNxt) && seqGe(seg.tsVal, this.tsRecent)) this.tsRecent = seg.tsVal;
    // The peer already sent FIN: data is not taken; a FIN again means our ACK was lost.
    if (seg.payload.length > 0 || f & FIN) {
      if (f & FIN) this.table.restart(this);
      this.owe();
    }
  }

  private challengeAck(): void {
    const c = this.table.env.counters;
    if (!this.table.env.challengeAllowed()) return c.drop("challenge_ack_rate_limited");
    c.inc("challenge_acks");
    this.owe();
  }

  /** An ACK is owed: it leaves at the end of the batch, one however many segments asked. */
  owe(): void {
    this.ackOwed = true;
    this.table.env.wantsOutput(this);
  }

  flush(): void {
    if (!this.ackOwed || this.gone) return;
    this.ackOwed = false;
    const env = this.table.env;
    const h = HDR;
    h.srcPort = this.localPort;
    h.dstPort = this.remotePort;
    h.seq = this.sndMax;
    h.ack = this.rcvNxt;
    h.window = this.window;
    if (this.tsOk) {
      HDR_TS.val = (Math.floor(env.timers.now()) + this.tsOffset) >>> 0;
      HDR_TS.ecr = this.tsRecent;
      h.ts = HDR_TS;
    } else h.ts = undefined;
    h.sack = undefined;
    env.transmit(this.route, h, undefined, 0, 0, 0);
  }
}

function inWin(x: number, start: number, wnd: number): boolean {
  return seqLe(start, x) && seqLt(x, seqAdd(start, wnd));
}

/**
 * A stack's TIME-WAIT records by 4-tuple, in expiry order, with one timer for the earliest.
 * `onEnd` is told of each record that ends (to forget it in the output scheduler).
 */
export class TimeWaitTable {
  private readonly map = new Map<string, TimeWait>();
  private head: TimeWait | undefined = undefined;
  private tail: TimeWait | undefined = undefined;
  private readonly timer: Timer;

  constructor(
    readonly env: TimeWaitEnv,
    /** 2 x MSL, ms. */
    private readonly waitMs: number,
    private readonly onEnd: (t: TimeWait) => void,
  ) {
    this.timer = env.timers.timer(() => this.expire(), true);
  }

  get size(): number {
    return this.map.size;
  }

  get(key: string): TimeWait | undefined {
    return this.map.get(key);
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  /** A record of `s` takes over its 4-tuple for 2 x MSL. */
  add(s: TimeWaitSource): TimeWait {
    const t = new TimeWait(this, s);
    const old = this.map.get(t.key);
    if (old) this.end(old);
    this.map.set(t.key, t);
    this.append(t);
    return t;
  }

  /** The wait starts over (a retransmitted FIN): 2 x MSL from now, at the tail. */
  restart(t: TimeWait): void {
    if (t.gone) return;
    this.unlink(t);
    this.append(t);
  }

  /** End `t` now (reset, replaced by a new connection, expired). */
  end(t: TimeWait): void {
    if (t.gone) return;
    t.gone = true;
    const wasHead = this.head === t;
    this.unlink(t);
    this.map.delete(t.key);
    this.onEnd(t);
    if (wasHead) this.armHead();
  }

  /** Every record ends (the stack closes). */
  clear(): void {
    for (const t of [...this.map.values()]) {
      t.gone = true;
      this.onEnd(t);
    }
    this.map.clear();
    this.head = this.tail = undefined;
    this.env.timers.cancel(this.timer);
  }

  private append(t: TimeWait): void {
    t.expires = this.env.timers.now() + this.waitMs;
    t.prev = this.tail;
    t.next = undefined;
    if (this.tail) this.tail.next = t;
    else this.head = t;
    this.tail = t;
    if (this.head === t) this.armHead();
  }

  private unlink(t: TimeWait): void {
    const wasHead = this.head === t;
    if (t.prev) t.prev.next = t.next;
    else if (this.head === t) this.head = t.next;
    if (t.next) t.next.prev = t.prev;
    else if (this.tail === t) this.tail = t.prev;
    t.prev = t.next = undefined;
    if (wasHead && !t.gone) this.armHead();
  }

  private armHead(): void {
    const h = this.head;
    if (h) this.env.timers.armAt(this.timer, h.expires);
    else this.env.timers.cancel(this.timer);
  }

  private expire(): void {
    const now = this.env.timers.now();
    let h = this.head;
    while (h && h.expires <= now) {
      const next = h.next;
      h.gone = true;
      this.unlink(h);
      this.map.delete(h.key);
      this.onEnd(h);
      h = next;
    }
    this.armHead();
  }
}
