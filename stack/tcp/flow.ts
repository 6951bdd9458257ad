/**
 * A TCP connection as a Node Duplex that behaves like a net.Socket to any library handed one
 * (node:tls, node:http, node:http2, undici): addresses, setNoDelay / setKeepAlive / setTimeout,
 * bytesRead / bytesWritten, end() sends FIN, destroy() closes like net.Socket (FIN, or RST with data
 * left unread), resetAndDestroy() sends RST, errors carry codes.
 * Backpressure both ways: write() returns false once the send buffer is full and 'drain' follows;
 * unread data shrinks the advertised receive window instead of buffering without limit.
 */
import { Duplex } from "node:stream";
import type { Tcb } from "./tcb.js";
import type { Timer } from "../core/timers.js";
import { formatIP } from "../wire/addr.js";
import { errnoError } from "../core/errors.js";

export interface FlowOptions {
  allowHalfOpen?: boolean;
}

type WriteCb = (err?: Error | null) => void;

export class TcpFlow extends Duplex {
  /** Like net.Socket#connecting: true until the handshake completes. */
  connecting: boolean;
  private pendingWrites: Array<{ cb: WriteCb }> = [];
  private idleTimer: Timer | undefined;
  private idleMs = 0;
  private readonly tcb: Tcb;
  /** A stable object some libraries probe for (net.Socket has one); it carries nothing. */
  readonly _handle = null;

  constructor(tcb: Tcb, opts: FlowOptions & { connecting?: boolean } = {}) {
    super({ allowHalfOpen: opts.allowHalfOpen ?? false, emitClose: true, decodeStrings: true, readableHighWaterMark: tcb.o.receiveBufferSize });
    this.tcb = tcb;
    this.connecting = opts.connecting ?? false;
    tcb.events = {
      onConnect: () => {
        this.connecting = false;
        this.emit("connect");
        this.emit("ready");
        this.touch();
      },
      onData: (d) => {
        this.touch();
        // Copy: the view points into a reused receive buffer.
        this.push(Buffer.from(d));
      },
      onEnd: () => {
        this.touch();
        this.push(null);
      },
      onDrain: () => this.releaseWrites(),
      onClose: (err) => {
        this.cancelIdle();
        // The owner closing its own stack is no failure of the network: a flow nobody listens
        // to for errors then just closes (its pending writes fail quietly, destroyed), rather
        // than crash the process with ECONNABORTED.
        if (err && this.tcb.closedByStack && this.listenerCount("error") === 0) return void this.destroy();
        this.failWrites(err);
        if (err) this.destroy(err);
        else if (!this.readableEnded && this.tcb.state === "CLOSED" && !this.destroyed) {
          // Closed without a FIN from the peer (e.g. our RST after destroy): nothing more to read.
          this.push(null);
          // Nothing more can be written either: end with 'close' (a stack closing an idle flow).
          if (!this.writableFinished) this.destroy();
        }
      },
    };
  }

  // ---- net.Socket-like surface -----------------------------------------------------------------

  get remoteAddress(): string {
    return formatIP(this.tcb.remoteAddress);
  }
  get remotePort(): number {
    return this.tcb.remotePort;
  }
  get remoteFamily(): "IPv4" | "IPv6" {
    return this.tcb.route.family === 4 ? "IPv4" : "IPv6";
  }
  get localAddress(): string {
    return formatIP(this.tcb.localAddress);
  }
  get localPort(): number {
    return this.tcb.localPort;
  }
  get localFamily(): "IPv4" | "IPv6" {
    return this.remoteFamily;
  }
  address(): { address: string; family: "IPv4" | "IPv6"; port: number } {
    return { address: this.localAddress, family: this.localFamily, port: this.localPort };
  }
  get bytesRead(): number {
    return this.tcb.bytesRead;
  }
  get bytesWritten(): number {
    return this.tcb.bytesWritten;
  }
  get pending(): boolean {
    return this.connecting;
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
    return this.tcb.state;
  }
  /** Connection counters and timing (srtt, rto, cwnd...). */
  get tcpInfo(): { state: string; srtt: number; rto: number; cwnd: number; ssthresh: number; mss: number; sndWnd: number; unread: number } {
    const t = this.tcb;
    return { state: t.state, srtt: t.rtt.srtt, rto: t.rtt.rto, cwnd: t.cc.cwnd, ssthresh: t.cc.ssthresh, mss: t.mss, sndWnd: t.sndWnd, unread: t.unread };
  }

  setNoDelay(noDelay = true): this {
    this.tcb.noDelay = noDelay;
    return this;
  }
  setKeepAlive(enable = false, initialDelayMs = 0): this {
    this.tcb.setKeepAlive(enable, initialDelayMs > 0 ? initialDelayMs : undefined);
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
    this.tcb.abort();
    return this.destroy();
  }

  private touch(): void {
    if (this.idleMs <= 0) return;
    const q = this.tcb.env.timers;
    if (!this.idleTimer) this.idleTimer = q.timer(() => this.emit("timeout"), true);
    q.arm(this.idleTimer, this.idleMs);
  }
  private cancelIdle(): void {
    if (this.idleTimer) this.tcb.env.timers.cancel(this.idleTimer);
  }

  // ---- Duplex implementation -----------------------------------------------------------------

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: WriteCb): void {
    this.queue(chunk, cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: WriteCb): void {
    for (let i = 0; i < chunks.length - 1; i++) this.queue(chunks[i]!.chunk, undefined);
    this.queue(chunks[chunks.length - 1]!.chunk, cb);
  }

  private queue(chunk: Buffer, cb: WriteCb | undefined): void {
    const t = this.tcb;
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
    while (this.pendingWrites.length > 0 && this.tcb.sendSpace >= 0) this.pendingWrites.shift()!.cb();
    // Still over the stack-wide bound: wait for the next wake-up.
    if (this.pendingWrites.length > 0) this.tcb.waitIfOverMemory();
  }

  private failWrites(err: Error | undefined): void {
    const w = this.pendingWrites;
    this.pendingWrites = [];
    for (const p of w) p.cb(err ?? errnoError("EPIPE", "write", "(the connection closed)"));
  }

  override _final(cb: WriteCb): void {
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
  override read(size?: number): any {
    const r = super.read(size);
    this.noteConsumed();
    return r;
  }

  private noteConsumed(): void {
    const consumed = this.tcb.unread - this.readableLength;
    if (consumed > 0) this.tcb.consumed(consumed);
  }

  override _destroy(err: Error | null, cb: (e: Error | null) => void): void {
    this.cancelIdle();
    const t = this.tcb;
    if (t.state !== "CLOSED") {
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
