/**
 * A TCP connection as a Node Duplex that behaves like a net.Socket to any library handed one
 * (node:tls, node:http, node:http2, undici): addresses, setNoDelay / setKeepAlive / setTimeout,
 * bytesRead / bytesWritten, end() sends FIN, destroy() closes like net.Socket (FIN, or RST with data
 * left unread), resetAndDestroy() sends RST, errors carry codes.
 * Backpressure both ways: write() returns false once the send buffer is full and 'drain' follows;
 * unread data shrinks the advertised receive window instead of buffering without limit.
 */
import { Duplex } from "node:stream";
import type { Tcb, TcbEvents } from "./tcb.js";
import { plain } from "../core/double.js";
import type { Timer, TimerQueue } from "../core/timers.js";
import { formatIP } from "../wire/addr.js";
import { codedError, errnoError } from "../core/errors.js";
import type { NetConnectOptions } from "../net.js";

export interface FlowOptions {
  allowHalfOpen?: boolean;
}

/** How a flow is made before its connection exists (stack.net.connect to a name being resolved). */
export interface PendingFlowOptions extends FlowOptions {
  timers: TimerQueue;
  receiveBufferSize: number;
  /**
   * For a flow made by `new stack.net.Socket()`: what its connect() calls (once), with
   * connect()'s arguments. The flow is not connecting until then.
   */
  connector?: (flow: TcpFlow, args: unknown[]) => void;
}

type WriteCb = (err?: Error | null) => void;

/** A write to a `new stack.net.Socket()` before its connect(): fails, as net.Socket's does. */
const notConnected = () => codedError("ERR_SOCKET_CLOSED", "Socket is closed");

/** A TcpFlow's own events beside a Duplex's (as net.Socket's). */
export interface TcpFlowEvents {
  connect: [];
  ready: [];
  timeout: [];
  error: [err: Error & { code?: string }];
}

/** Typed listeners for the socket events a Duplex does not declare (merged into the class). */
export interface TcpFlow {
  on<K extends keyof TcpFlowEvents>(event: K, listener: (...args: TcpFlowEvents[K]) => void): this;
  on(event: "data", listener: (chunk: Buffer) => void): this;
  on(event: string | symbol, listener: (...args: unknown[]) => void): this;
  once<K extends keyof TcpFlowEvents>(event: K, listener: (...args: TcpFlowEvents[K]) => void): this;
  once(event: "data", listener: (chunk: Buffer) => void): this;
  once(event: string | symbol, listener: (...args: unknown[]) => void): this;
}

// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the interface above only adds typed overloads of on()/once()
export class TcpFlow extends Duplex {
  /** Like net.Socket#connecting: true until the handshake completes. */
  connecting: boolean;
  private pendingWrites: Array<{ cb: WriteCb }> = [];
  private idleTimer: Timer | undefined;
  private idleMs = 0;
  /** The connection; undefined while a name is still being resolved (see attach()). */
  private tcb: Tcb | undefined;
  private readonly timers: TimerQueue;
  /** What was asked of the flow before its connection existed, applied by attach(). */
  private early: { writes: Array<{ chunk: Buffer; cb: WriteCb | undefined }>; final: WriteCb | undefined; noDelay: boolean; keepAlive: [boolean, number] | undefined } | undefined;
  /** A stable object some libraries probe for (net.Socket has one); it carries nothing. */
  readonly _handle = null;
  /** Set for a flow made by `new stack.net.Socket()` until connect() is called. */
  private connector: ((flow: TcpFlow, args: unknown[]) => void) | undefined;

  /**
   * A flow over connection `tcb`, or (`tcb` undefined, with PendingFlowOptions) a flow whose
   * connection comes later through attach(): like a net.Socket that is still looking its peer up,
   * it takes writes, end() and options meanwhile and applies them once connected.
   */
  constructor(tcb: Tcb | undefined, opts: (FlowOptions & { connecting?: boolean }) | PendingFlowOptions = {}) {
    const pending = tcb ? undefined : (opts as PendingFlowOptions);
    super({ allowHalfOpen: opts.allowHalfOpen ?? false, emitClose: true, decodeStrings: true, readableHighWaterMark: tcb ? tcb.o.receiveBufferSize : pending!.receiveBufferSize });
    this.timers = tcb ? tcb.env.timers : pending!.timers;
    this.connector = pending?.connector;
    this.connecting = tcb ? ((opts as { connecting?: boolean }).connecting ?? false) : !this.connector;
    if (tcb) this.attach(tcb);
    else this.early = { writes: [], final: undefined, noDelay: false, keepAlive: undefined };
  }

  /**
   * net.Socket#connect, for a flow made by `new stack.net.Socket()` (libraries such as pg's
   * `stream` option make the socket, then connect it): the overloads of stack.net.connect.
   * As net.Socket: connect() on a flow already connecting fails it with EALREADY ('error', then
   * 'close'), on one connected it does nothing; a destroyed flow throws ERR_SOCKET_CLOSED.
   */
  connect(port: number, host?: string, listener?: () => void): this;
  connect(port: number, listener?: () => void): this;
  connect(options: NetConnectOptions, listener?: () => void): this;
  connect(...args: unknown[]): this {
    if (this.destroyed) throw codedError("ERR_SOCKET_CLOSED", "Socket is closed");
    const connector = this.connector;
    if (!connector) {
      if (this.connecting) {
        const err = errnoError("EALREADY", "connect");
        process.nextTick(() => this.destroy(err));
      }
      return this;
    }
    this.connector = undefined;
    this.connecting = true;
    connector(this, args);
    return this;
  }

  /**
   * What the connection tells its flow: one small object per flow whose methods live on the
   * prototype, where five closures and an object of them took ~220 bytes per connection. (A class
   * in the class body: it reaches the flow's private members.)
   */
  private static readonly Events = class FlowEvents implements TcbEvents {
    constructor(
      private readonly f: TcpFlow,
      private readonly tcb: Tcb,
    ) {}
    onConnect(): void {
      const f = this.f;
      f.connecting = false;
      f.emit("connect");
      f.emit("ready");
      f.touch();
    }
    onData(d: Uint8Array, owned: boolean): void {
      const f = this.f;
      f.touch();
      // Copied unless owned: the view then points into a reused receive buffer.
      f.push(owned ? Buffer.from(d.buffer, d.byteOffset, d.byteLength) : Buffer.from(d));
    }
    onEnd(): void {
      const f = this.f;
      f.touch();
      f.push(null);
      // As net.Socket does at EOF: with nothing buffered, 'end' (and, unless half-open, the
      // close that follows) comes even if nobody reads the socket.
      f.read(0);
    }
    onDrain(): void {
      this.f.releaseWrites();
    }
    onClose(err: (Error & { code: string }) | undefined): void {
      const f = this.f;
      f.cancelIdle();
      // The owner closing its own stack is no failure of the network: a flow nobody listens
      // to for errors then just closes (its pending writes fail quietly, destroyed), rather
      // than crash the process with ECONNABORTED.
      if (err && this.tcb.closedByStack && f.listenerCount("error") === 0) return void f.destroy();
      f.failWrites(err);
      if (err) f.destroy(err);
      else if (!f.readableEnded && this.tcb.state === "CLOSED" && !f.destroyed) {
        // Closed without a FIN from the peer (e.g. our RST after destroy): nothing more to read.
        f.push(null);
        // Nothing more can be written either: end with 'close' (a stack closing an idle flow).
        if (!f.writableFinished) f.destroy();
      }
    }
  };

  /** Give a pending flow its connection (once): what was written or set meanwhile goes to it. */
  attach(tcb: Tcb): void {
    if (this.tcb) throw new Error("TcpFlow.attach: the flow already has a connection");
    this.tcb = tcb;
    const early = this.early;
    this.early = undefined;
    if (early) {
      tcb.noDelay = early.noDelay;
      if (early.keepAlive) tcb.setKeepAlive(early.keepAlive[0], early.keepAlive[1] > 0 ? early.keepAlive[1] : undefined);
      for (const w of early.writes) this.queue(w.chunk, w.cb);
      if (early.final) this._final(early.final);
    }
    tcb.events = new TcpFlow.Events(this, tcb);
  }

  // ---- net.Socket-like surface -----------------------------------------------------------------

  // Like net.Socket's, the addresses are undefined until the connection exists.
  get remoteAddress(): string | undefined {
    return this.tcb && formatIP(this.tcb.remoteAddress);
  }
  get remotePort(): number | undefined {
    return this.tcb?.remotePort;
  }
  get remoteFamily(): "IPv4" | "IPv6" | undefined {
    return this.tcb && (this.tcb.route.family === 4 ? "IPv4" : "IPv6");
  }
  get localAddress(): string | undefined {
    return this.tcb && formatIP(this.tcb.localAddress);
  }
  get localPort(): number | undefined {
    return this.tcb?.localPort;
  }
  get localFamily(): "IPv4" | "IPv6" | undefined {
    return this.remoteFamily;
  }
  address(): { address: string; family: "IPv4" | "IPv6"; port: number } | Record<string, never> {
    const t = this.tcb;
    if (!t) return {};
    return { address: formatIP(t.localAddress), family: t.route.family === 4 ? "IPv4" : "IPv6", port: t.localPort };
  }
  get bytesRead(): number {
    return plain(this.tcb?.bytesRead ?? 0);
  }
  get bytesWritten(): number {
    const t = this.tcb;
    return t ? plain(t.bytesWritten) : (this.early?.writes.reduce((n, w) => n + w.chunk.length, 0) ?? 0);
  }
  /** As net.Socket#pending: true until the flow has its connection. */
  get pending(): boolean {
    return !this.tcb || this.connecting;
  }
  get readyState(): "opening" | "open" | "readOnly" | "writeOnly" | "closed" {
    if (this.connecting) return "opening";
    if (this.destroyed) return "closed";
    if (this.readable && this.writable) return "open";
    if (this.readable) return "readOnly";
    if (this.writable) return "writeOnly";
    return "closed";
  }
  /** The connection's state in RFC 9293 terms. */
  get tcpState(): string {
    const t = this.tcb;
    if (!t) return "CLOSED";
    // A connection in TIME-WAIT has handed over to a record of its stack's (timewait.ts).
    return t.timeWaitRecord && !t.timeWaitRecord.gone ? "TIME-WAIT" : t.state;
  }
  /** Connection counters and timing (srtt, rto, cwnd...). */
  get tcpInfo(): { state: string; srtt: number; rto: number; cwnd: number; ssthresh: number; mss: number; sndWnd: number; unread: number; sndBuf: number; rcvBuf: number } | undefined {
    const t = this.tcb;
    if (!t) return undefined;
    return { state: t.state, srtt: plain(t.rtt.srtt), rto: t.rtt.rto, cwnd: t.cc.cwnd, ssthresh: t.cc.ssthresh, mss: t.mss, sndWnd: t.sndWnd, unread: t.unread, sndBuf: t.sndBuf, rcvBuf: t.rcvBuf };
  }

  setNoDelay(noDelay = true): this {
    if (this.tcb) this.tcb.noDelay = noDelay;
    else if (this.early) this.early.noDelay = noDelay;
    return this;
  }
  setKeepAlive(enable = false, initialDelayMs = 0): this {
    if (this.tcb) this.tcb.setKeepAlive(enable, initialDelayMs > 0 ? initialDelayMs : undefined);
    else if (this.early) this.early.keepAlive = [enable, initialDelayMs];
    return this;
  }
  /** Like net.Socket#setTimeout: 'timeout' after `ms` of inactivity (0 disables). */
  setTimeout(ms: number, cb?: () => void): this {
    this.idleMs = ms;
    if (cb) {
      if (ms === 0) this.off("timeout", cb);
      else this.once("timeout", cb);
    }
    if (ms === 0) this.cancelIdle();
    else this.touch();
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once("finish", () => this.destroy());
  }
  resetAndDestroy(): this {
    this.tcb?.abort();
    return this.destroy();
  }

  private touch(): void {
    if (this.idleMs <= 0) return;
    const q = this.timers;
    if (!this.idleTimer) this.idleTimer = q.timer(() => this.emit("timeout"), true);
    q.arm(this.idleTimer, this.idleMs);
  }
  private cancelIdle(): void {
    if (this.idleTimer) this.timers.cancel(this.idleTimer);
  }

  // ---- Duplex implementation -----------------------------------------------------------------

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: WriteCb): void {
    if (this.connector) return cb(notConnected());
    this.queue(chunk, cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: WriteCb): void {
    if (this.connector) return cb(notConnected());
    for (let i = 0; i < chunks.length - 1; i++) this.queue(chunks[i]!.chunk, undefined);
    this.queue(chunks[chunks.length - 1]!.chunk, cb);
  }

  private queue(chunk: Buffer, cb: WriteCb | undefined): void {
    const t = this.tcb;
    if (!t) {
      // Still resolving: the bytes go out once connected (backpressure holds meanwhile).
      this.early?.writes.push({ chunk, cb });
      return;
    }
    const st = t.state;
    if (st === "CLOSED" || st === "FIN-WAIT-1" || st === "FIN-WAIT-2" || st === "CLOSING" || st === "LAST-ACK" || st === "TIME-WAIT") {
      const e = st === "CLOSED" ? errnoError("EPIPE", "write", "(the connection is closed)") : Object.assign(new Error("write after end"), { code: "EPIPE" });
      cb?.(e);
      return;
    }
    this.touch();
    const space = t.send(chunk);
    if (!cb) return;
    // Hold the callback while the send buffer is over its bound: Writable then reports
    // backpressure (write() returns false) and 'drain' comes when ACKs free space.
    if (space >= 0) cb();
    else this.pendingWrites.push({ cb });
  }

  private releaseWrites(): void {
    const t = this.tcb;
    if (!t) return;
    while (this.pendingWrites.length > 0 && t.sendSpace >= 0) this.pendingWrites.shift()!.cb();
    // Still over the stack-wide bound: wait for the next wake-up.
    if (this.pendingWrites.length > 0) t.waitIfOverMemory();
  }

  private failWrites(err: Error | undefined): void {
    const early = this.early;
    if (early) {
      this.early = { writes: [], final: undefined, noDelay: false, keepAlive: undefined };
      for (const w of early.writes) w.cb?.(err ?? errnoError("EPIPE", "write", "(the connection was never made)"));
    }
    const w = this.pendingWrites;
    this.pendingWrites = [];
    for (const p of w) p.cb(err ?? errnoError("EPIPE", "write", "(the connection closed)"));
  }

  override _final(cb: WriteCb): void {
    if (!this.tcb) {
      if (this.early) this.early.final = cb;
      return;
    }
    this.tcb.close();
    cb();
  }

  override _read(): void {
    this.noteConsumed();
  }

  /**
   * Every way of consuming data (flowing mode, read(), pipe) goes through read(): report what
   * left the readable buffer so TCP reopens the window. (_read alone is not enough: Readable
   * stops calling it until we push again, and we only push once the window reopens.)
   */
  // biome-ignore lint/suspicious/noExplicitAny: Readable#read's own return type
  override read(size?: number): any {
    const r = super.read(size);
    this.noteConsumed();
    return r;
  }

  private noteConsumed(): void {
    const t = this.tcb;
    if (!t) return;
    const consumed = t.unread - this.readableLength;
    if (consumed > 0) t.consumed(consumed);
  }

  override _destroy(err: Error | null, cb: (e: Error | null) => void): void {
    this.cancelIdle();
    const t = this.tcb;
    if (t && t.state !== "CLOSED") {
      if (t.unread > 0) {
        // Like close() of a kernel socket with data unread: RST (RFC 2525 §2.17), the peer must
        // not take the close for an orderly end of what it sent.
        t.env.counters.inc("aborts_on_close");
        t.abort();
      } else {
        // Like net.Socket#destroy(): FIN after the queued data; the close finishes in the
        // background, bounded by the orphan timeout (resetAndDestroy() sends RST).
        t.orphan();
      }
    }
    this.failWrites(err ?? undefined);
    cb(err);
  }
}
