/**
 * `stack.net`: node:net's shape over a paf stack, so code written for node:net (and libraries
 * that take a connection factory) runs unchanged on the userspace stack:
 *
 *   const server = stack.net.createServer((socket) => socket.pipe(socket)).listen(7, () => ...);
 *   const socket = stack.net.connect(7, "echo.test", () => socket.end("hi"));
 *
 * Servers have node:net's events ('listening', 'connection', 'close', 'error'), address(),
 * getConnections(), close(cb), maxConnections, ref()/unref(); connect()/createConnection() take
 * Node's overloads and return the socket at once (a TcpFlow, net.Socket-like), resolving host
 * names through the stack's own DNS (stack.dns), trying the addresses in turn, IPv6 first with
 * the families interleaved (RFC 8305's order; the client side's happy eyeballs races them).
 * Errors carry Node's codes: ERR_SOCKET_BAD_PORT, ECONNREFUSED, ENOTFOUND, EADDRINUSE,
 * ERR_SERVER_NOT_RUNNING ...
 */
import { EventEmitter } from "node:events";
import { isIP, isIPv4, isIPv6 } from "node:net";
import type { TcpApi, TcpServer } from "./tcp/index.js";
import { TcpFlow } from "./tcp/flow.js";
import type { LookupAddress } from "./dns.js";
import type { Tcb } from "./tcp/tcb.js";
import { parseIP } from "./wire/addr.js";
import { ERR_INVALID_ARG_TYPE, codedError, errnoError } from "./core/errors.js";
import { validatePort } from "./core/validate.js";

/** What the module needs of a stack (structural: the Stack passes itself). */
export interface NetStack {
  readonly tcp: TcpApi;
  readonly dns: { lookup(name: string, opts: { all: true }): Promise<LookupAddress[]> };
}

export interface ServerOptions {
  /** Keep the writable side open after the peer's FIN (node:net's default: false). */
  allowHalfOpen?: boolean;
  /** Hand sockets over paused. */
  pauseOnConnect?: boolean;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
}

export interface ListenOptions {
  port?: number;
  host?: string;
  backlog?: number;
}

export interface AddressInfo {
  address: string;
  family: "IPv4" | "IPv6";
  port: number;
}

export interface NetConnectOptions {
  port: number;
  host?: string;
  localAddress?: string;
  localPort?: number;
  /** 4 or 6: only addresses of that family. */
  family?: 0 | 4 | 6;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
  allowHalfOpen?: boolean;
  /** Idle timeout, as socket.setTimeout(ms) ('timeout' event). */
  timeout?: number;
}

export interface ServerEvents {
  listening: [];
  connection: [socket: TcpFlow];
  close: [];
  error: [err: Error];
  drop: [data: { localAddress?: string; localPort?: number; remoteAddress?: string; remotePort?: number; remoteFamily?: string }];
}

/** A TCP server on the stack, shaped like net.Server. */
export class NetServer extends EventEmitter<ServerEvents> {
  /** Connections beyond this are closed on arrival ('drop' event), as net.Server#maxConnections. */
  maxConnections = Infinity;
  private server: TcpServer | undefined;
  private readonly open = new Set<TcpFlow>();
  private closing = false;
  private unrefed = false;

  constructor(
    private readonly stack: NetStack,
    private readonly opts: ServerOptions = {},
  ) {
    super();
  }

  get listening(): boolean {
    return this.server?.listening ?? false;
  }

  listen(port?: number, host?: string, backlog?: number, cb?: () => void): this;
  listen(port?: number, host?: string, cb?: () => void): this;
  listen(port?: number, cb?: () => void): this;
  listen(options: ListenOptions, cb?: () => void): this;
  listen(...args: unknown[]): this {
    const cb = typeof args[args.length - 1] === "function" ? (args.pop() as () => void) : undefined;
    let o: ListenOptions;
    if (typeof args[0] === "object" && args[0] !== null) o = args[0] as ListenOptions;
    else o = { port: args[0] as number | undefined, host: typeof args[1] === "string" ? args[1] : undefined, backlog: typeof args[1] === "number" ? args[1] : (args[2] as number | undefined) };
    if (cb) this.once("listening", cb);
    if (this.server?.listening) throw codedError("ERR_SERVER_ALREADY_LISTEN", "Listen method has been called more than once without closing.");
    const port = validatePort(o.port ?? 0, "options.port");
    try {
      this.server = this.stack.tcp.listen(
        {
          port: port === 0 ? this.stack.tcp.layer.freePort() : port,
          ...(o.host !== undefined ? { host: o.host } : {}),
          ...(o.backlog !== undefined ? { backlog: o.backlog } : {}),
          allowHalfOpen: this.opts.allowHalfOpen ?? false,
        },
        (f) => this.accept(f),
      );
    } catch (e) {
      // node:net reports listen errors asynchronously, as 'error'.
      process.nextTick(() => this.emit("error", e as Error));
      return this;
    }
    if (this.unrefed) this.server.unref();
    this.closing = false;
    this.server.once("close", () => this.maybeClosed());
    process.nextTick(() => this.emit("listening"));
    return this;
  }

  private accept(f: TcpFlow): void {
    if (this.open.size >= this.maxConnections) {
      this.emit("drop", { localAddress: f.localAddress, localPort: f.localPort, remoteAddress: f.remoteAddress, remotePort: f.remotePort, remoteFamily: f.remoteFamily });
      f.destroy();
      return;
    }
    this.open.add(f);
    f.once("close", () => {
      this.open.delete(f);
      this.maybeClosed();
    });
    if (this.opts.noDelay) f.setNoDelay(true);
    if (this.opts.keepAlive) f.setKeepAlive(true, this.opts.keepAliveInitialDelay ?? 0);
    if (this.opts.pauseOnConnect) f.pause();
    this.emit("connection", f);
  }

  address(): AddressInfo | null {
    if (!this.server?.listening) return null;
    const a = this.server.address();
    const address = a.address || "::";
    return { address, family: address.includes(":") ? "IPv6" : "IPv4", port: a.port };
  }

  getConnections(cb: (err: Error | null, count: number) => void): this {
    const n = this.open.size;
    process.nextTick(() => cb(null, n));
    return this;
  }

  /** Stop listening; 'close' once the open connections have ended too (net.Server#close). */
  close(cb?: (err?: Error) => void): this {
    if (!this.server?.listening) {
      const e = codedError("ERR_SERVER_NOT_RUNNING", "Server is not running.");
      if (cb) process.nextTick(() => cb(e));
      else process.nextTick(() => this.emit("error", e));
      return this;
    }
    if (cb) this.once("close", () => cb());
    this.closing = true;
    this.server.close();
    return this;
  }

  private maybeClosed(): void {
    if (this.closing && !this.server?.listening && this.open.size === 0) {
      this.closing = false;
      process.nextTick(() => this.emit("close"));
    }
  }

  ref(): this {
    this.unrefed = false;
    this.server?.ref();
    return this;
  }

  unref(): this {
    this.unrefed = true;
    this.server?.unref();
    return this;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.server?.listening) await new Promise<void>((r) => this.close(() => r()));
  }
}

/** node:net's interface over one stack (`stack.net`). */
export class StackNet {
  readonly isIP = isIP;
  readonly isIPv4 = isIPv4;
  readonly isIPv6 = isIPv6;

  constructor(private readonly stack: NetStack) {}

  createServer(listener?: (socket: TcpFlow) => void): NetServer;
  createServer(options: ServerOptions, listener?: (socket: TcpFlow) => void): NetServer;
  createServer(a?: ServerOptions | ((socket: TcpFlow) => void), b?: (socket: TcpFlow) => void): NetServer {
    const opts = typeof a === "object" && a !== null ? a : {};
    const listener = typeof a === "function" ? a : b;
    const s = new NetServer(this.stack, opts);
    if (listener) s.on("connection", listener);
    return s;
  }

  connect(port: number, host?: string, listener?: () => void): TcpFlow;
  connect(port: number, listener?: () => void): TcpFlow;
  connect(options: NetConnectOptions, listener?: () => void): TcpFlow;
  connect(a: number | NetConnectOptions, b?: string | (() => void), c?: () => void): TcpFlow {
    const [o, listener] = connectArgs([a, b, c]);
    return this.start(this.socket(o.allowHalfOpen ?? false, false), o, listener);
  }

  /**
   * node:net's Socket class over this stack: `new stack.net.Socket([{ allowHalfOpen }])`, then
   * `socket.connect(port[, host][, listener])` or `socket.connect(options[, listener])`. For
   * libraries that make the socket and connect it themselves (pg's `stream` option, for one).
   */
  readonly Socket: new (options?: { allowHalfOpen?: boolean }) => TcpFlow = ((net: StackNet) =>
    function Socket(options?: { allowHalfOpen?: boolean }) {
      return net.socket(options?.allowHalfOpen ?? false, true);
    } as unknown as new (options?: {
      allowHalfOpen?: boolean;
    }) => TcpFlow)(this);

  /** A flow without its connection yet; `unconnected` ones connect when their connect() is called. */
  private socket(allowHalfOpen: boolean, unconnected: boolean): TcpFlow {
    const l = this.stack.tcp.layer;
    return new TcpFlow(undefined, {
      timers: l.timers,
      receiveBufferSize: l.o.receiveBufferSize,
      allowHalfOpen,
      ...(unconnected
        ? {
            connector: (flow: TcpFlow, args: unknown[]) => {
              const [o, listener] = connectArgs(args);
              this.start(flow, o, listener);
            },
          }
        : {}),
    });
  }

  /** Apply the options, then resolve and connect in the background: errors reach the flow. */
  private start(flow: TcpFlow, o: NetConnectOptions, listener: (() => void) | undefined): TcpFlow {
    const port = validatePort(o.port, "Port", false);
    const host = o.host ?? "localhost";
    if (listener) flow.once("connect", listener);
    if (o.noDelay) flow.setNoDelay(true);
    if (o.keepAlive) flow.setKeepAlive(true, o.keepAliveInitialDelay ?? 0);
    if (o.timeout) flow.setTimeout(o.timeout);
    void this.open(flow, host, port, o);
    return flow;
  }

  createConnection(port: number, host?: string, listener?: () => void): TcpFlow;
  createConnection(port: number, listener?: () => void): TcpFlow;
  createConnection(options: NetConnectOptions, listener?: () => void): TcpFlow;
  createConnection(a: number | NetConnectOptions, b?: string | (() => void), c?: () => void): TcpFlow {
    return this.connect(a as never, b as never, c);
  }

  /** Resolve, then try the addresses in turn until one connects; the flow gets the first that does. */
  private async open(flow: TcpFlow, host: string, port: number, o: NetConnectOptions): Promise<void> {
    let addrs: string[];
    const fam = isIP(host);
    if (fam) addrs = [host];
    else {
      try {
        const all = await this.stack.dns.lookup(host === "localhost" ? "localhost" : host, { all: true });
        addrs = interleave(all.filter((x) => !o.family || x.family === o.family).map((x) => x.address));
      } catch (e) {
        return void flow.destroy(e as Error);
      }
      if (addrs.length === 0) return void flow.destroy(errnoError("ENOTFOUND", "getaddrinfo", host));
    }
    let last: Error | undefined;
    for (const address of addrs) {
      if (flow.destroyed) return;
      if (
        await this.attempt(flow, address, port, o).then(
          () => true,
          (e: Error) => {
            last = e;
            return false;
          },
        )
      )
        return;
    }
    flow.destroy(last);
  }

  /**
   * One connection attempt. The flow takes the connection the moment it is established, inside
   * the same event (data right behind the SYN-ACK must reach it), then says 'connect'.
   */
  private attempt(flow: TcpFlow, address: string, port: number, o: NetConnectOptions): Promise<void> {
    return new Promise((resolve, reject) => {
      let t: Tcb;
      try {
        t = this.stack.tcp.layer.connect(parseIP(address), port, o.localPort ?? 0, o.localAddress ? parseIP(o.localAddress) : undefined);
      } catch (e) {
        return reject(e);
      }
      const none = () => {};
      t.events = {
        onConnect: () => {
          if (flow.destroyed) {
            t.abort();
            return resolve();
          }
          flow.attach(t);
          t.events?.onConnect();
          resolve();
        },
        onData: none,
        onEnd: none,
        onDrain: none,
        onClose: (err) => reject(err ?? errnoError("ECONNRESET", "connect", `${address}:${port}`)),
      };
    });
  }
}

/** connect()'s overloads: (port[, host][, listener]) or (options[, listener]). */
function connectArgs(args: unknown[]): [NetConnectOptions, (() => void) | undefined] {
  const [a, b, c] = args;
  let o: NetConnectOptions;
  let listener: unknown;
  if (typeof a === "object" && a !== null) {
    o = a as NetConnectOptions;
    listener = b;
  } else {
    if (typeof a !== "number" && typeof a !== "string") throw new ERR_INVALID_ARG_TYPE("options", "an object", a);
    o = { port: a as number, ...(typeof b === "string" ? { host: b } : {}) };
    listener = typeof b === "function" ? b : c;
  }
  if (listener !== undefined && typeof listener !== "function") throw new ERR_INVALID_ARG_TYPE("listener", "a function", listener);
  return [o, listener as (() => void) | undefined];
}

/** Families interleaved, IPv6 first (RFC 8305 §4). */
function interleave(addrs: string[]): string[] {
  const v6 = addrs.filter((a) => a.includes(":"));
  const v4 = addrs.filter((a) => !a.includes(":"));
  const out: string[] = [];
  for (let i = 0; i < Math.max(v6.length, v4.length); i++) {
    if (v6[i]) out.push(v6[i]!);
    if (v4[i]) out.push(v4[i]!);
  }
  return out;
}
