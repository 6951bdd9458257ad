/** The TCP API of a stack: listen() and connect() returning TcpFlow duplex streams. */
import { EventEmitter } from "node:events";
import { TcpLayer, TcpListener, type TcpOptions } from "./layer.js";
import type { KeepAlive } from "../core/scheduler.js";
import { TcpFlow, type FlowOptions } from "./flow.js";
import { formatIP, ipFamily, parseIP } from "../wire/addr.js";
import { ERR_INVALID_IP_ADDRESS, errnoError } from "../core/errors.js";
import type { Timer } from "../core/timers.js";

export { TcpLayer, TcpListener, TcpFlow, type TcpOptions, type FlowOptions };

export interface ListenOptions extends FlowOptions {
  port: number;
  /** Local address to accept on (default: all of the stack's addresses). */
  host?: string;
  /**
   * Half-open connections before SYN cookies take over. Default 4096 (Linux's somaxconn): a
   * userspace stack answers the third ACK later than the kernel does, so more handshakes are in
   * flight at once, and a cookie whose ACK is lost leaves the client with a connection we never
   * knew (a half-open one is recovered by retransmitting the SYN-ACK).
   */
  backlog?: number;
}

export interface ConnectOptions extends FlowOptions {
  host: string;
  port: number;
  localPort?: number;
  localAddress?: string;
  /** Give up (ETIMEDOUT) if the handshake has not completed after this many ms. */
  timeout?: number;
  noDelay?: boolean;
}

/**
 * A listening server; close() stops accepting (existing connections are not touched) and emits
 * 'close', as does the stack's close(). Like a net.Server it keeps the process alive while it
 * listens, unless unref()'d (or its stack is).
 *
 * Its events go through an EventEmitter made at the first on()/once(): a thousand tenants' idle
 * servers then cost no emitter each, and (more to the point) making that many long-lived
 * emitters up front leads V8 to allocate every later emitter's listener table (each request's
 * and stream's) straight into the old generation, which slowed all tenants' requests measurably.
 */
export class TcpServer {
  private release: (() => void) | undefined;
  private events: EventEmitter | undefined;
  constructor(
    private readonly l: TcpListener,
    private readonly keepAlive: KeepAlive | undefined,
  ) {
    this.release = keepAlive?.add();
    l.onClose = () => {
      this.release?.();
      this.release = undefined;
      queueMicrotask(() => this.events?.emit("close"));
    };
  }
  on(event: "close", listener: () => void): this {
    (this.events ??= new EventEmitter()).on(event, listener);
    return this;
  }
  once(event: "close", listener: () => void): this {
    (this.events ??= new EventEmitter()).once(event, listener);
    return this;
  }
  off(event: "close", listener: () => void): this {
    this.events?.off(event, listener);
    return this;
  }
  get port(): number {
    return this.l.port;
  }
  /** True until close() (or the stack's). */
  get listening(): boolean {
    return !this.l.closed;
  }
  address(): { port: number; address: string } {
    return { port: this.l.port, address: this.l.addr ? formatIP(this.l.addr) : "" };
  }
  close(cb?: () => void): this {
    if (cb) this.once("close", cb);
    this.l.close();
    return this;
  }
  /** Keep the process alive while listening (the default). */
  ref(): this {
    if (!this.release && !this.l.closed) this.release = this.keepAlive?.add();
    return this;
  }
  /** Listening alone no longer keeps the process alive. */
  unref(): this {
    this.release?.();
    this.release = undefined;
    return this;
  }
}

export class TcpApi {
  constructor(
    readonly layer: TcpLayer,
    private readonly keepAlive?: KeepAlive,
  ) {}

  listen(opts: ListenOptions, onConnection: (flow: TcpFlow) => void): TcpServer {
    const host = opts.host && opts.host !== "0.0.0.0" && opts.host !== "::" ? parseHost(opts.host) : undefined;
    const l = this.layer.listen(opts.port, host, opts.backlog ?? 4096, (t) => {
      const f = new TcpFlow(t, opts);
      onConnection(f);
    });
    return new TcpServer(l, this.keepAlive);
  }

  /** Open a connection; resolves once established (rejects with ECONNREFUSED / ETIMEDOUT / EHOSTUNREACH ...). */
  connect(opts: ConnectOptions): Promise<TcpFlow> {
    return new Promise((resolve, reject) => {
      let flow: TcpFlow;
      try {
        flow = this.connectFlow(opts);
      } catch (e) {
        return reject(e);
      }
      const onErr = (e: Error) => reject(e);
      flow.once("error", onErr);
      flow.once("connect", () => {
        flow.off("error", onErr);
        resolve(flow);
      });
    });
  }

  /** Like net.connect(): returns the flow at once; it emits 'connect' (or 'error'). */
  connectFlow(opts: ConnectOptions): TcpFlow {
    const dst = parseHost(opts.host);
    const src = opts.localAddress ? parseHost(opts.localAddress) : undefined;
    const t = this.layer.connect(dst, opts.port, opts.localPort ?? 0, src);
    const flow = new TcpFlow(t, { ...opts, connecting: true });
    if (opts.noDelay) flow.setNoDelay(true);
    if (opts.timeout && opts.timeout > 0) {
      const q = this.layer.timers;
      const timer: Timer = q.timer(() => {
        if (flow.connecting) flow.destroy(errnoError("ETIMEDOUT", "connect", `${opts.host}:${opts.port}`));
      });
      q.arm(timer, opts.timeout);
      flow.once("connect", () => q.cancel(timer));
      flow.once("close", () => q.cancel(timer));
    }
    return flow;
  }
}

function parseHost(h: string): Uint8Array {
  if (ipFamily(h) === 0) throw new ERR_INVALID_IP_ADDRESS(`${h} (names are resolved by the client side or stack.dns)`);
  return parseIP(h);
}
