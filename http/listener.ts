/**
 * Sources of flows for serve(): the userspace stack's TCP, the host kernel's TCP (node:net), or a
 * Unix domain socket. `http/` knows nothing of `stack/` internals: a stack is anything with a
 * `tcp.listen(opts, onFlow)` of this shape.
 */
import net from "node:net";
import type { Duplex } from "node:stream";

/** What serve() needs from a connection: a Duplex with net.Socket's surface (a paf flow or a net.Socket). */
export type Flow = Duplex & {
  remoteAddress?: string | undefined;
  remotePort?: number | undefined;
  setNoDelay?(noDelay?: boolean): unknown;
};

/**
 * Give a plain Duplex the no-op parts of net.Socket's surface that node:http, node:tls and
 * agents call (setTimeout, setNoDelay, setKeepAlive, ref, unref), so a user's own flow (an
 * in-memory pipe, a custom transport) works wherever a socket is expected. Idempotent.
 */
export function socketLike<T extends Duplex>(d: T): T {
  const x = d as unknown as Record<string, unknown>;
  for (const m of ["setTimeout", "setNoDelay", "setKeepAlive", "ref", "unref"]) {
    if (typeof x[m] !== "function")
      x[m] = function (this: T) {
        return this;
      };
  }
  return d;
}

export interface Listener {
  /** Human-readable endpoint, e.g. "paf 198.18.0.2:80" or "host 127.0.0.1:8080". */
  readonly description: string;
  /** Start delivering accepted flows. */
  accept(onFlow: (flow: Flow) => void): void;
  /** Stop accepting (established flows are not touched). */
  close(): Promise<void>;
}

/** The part of a paf Stack that serving needs. */
export interface TcpProvider {
  tcp: { listen(opts: { port: number; host?: string; backlog?: number }, onConnection: (flow: Flow) => void): { close(): void } };
}

/** Accept on the userspace stack's TCP. */
export function stackListener(stack: TcpProvider, opts: { port: number; host?: string; backlog?: number }): Listener {
  let onFlow: ((f: Flow) => void) | undefined;
  const pending: Flow[] = [];
  const server = stack.tcp.listen(opts, (f) => (onFlow ? onFlow(f) : pending.push(f)));
  return {
    description: `paf ${opts.host ?? "*"}:${opts.port}`,
    accept(cb) {
      onFlow = cb;
      for (const f of pending.splice(0)) cb(f);
    },
    async close() {
      server.close();
    },
  };
}

/** Accept on the host kernel's TCP (the same application on ordinary sockets). */
export async function hostListener(opts: { host: string; port: number; backlog?: number }): Promise<Listener> {
  return netListener(`host ${opts.host}:${opts.port}`, (s) => s.listen({ host: opts.host, port: opts.port, backlog: opts.backlog ?? 511 }));
}

/** Accept on a Unix domain socket. */
export async function unixListener(path: string): Promise<Listener> {
  return netListener(`unix ${path}`, (s) => s.listen(path));
}

async function netListener(description: string, listen: (s: net.Server) => void): Promise<Listener> {
  let onFlow: ((f: Flow) => void) | undefined;
  const pending: Flow[] = [];
  const server = net.createServer({ pauseOnConnect: false }, (sock) => (onFlow ? onFlow(sock) : pending.push(sock)));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.once("listening", () => {
      server.off("error", reject);
      resolve();
    });
    listen(server);
  });
  const addr = server.address();
  return {
    description: typeof addr === "object" && addr ? `${description.split(" ")[0]} ${addr.address}:${addr.port}` : description,
    accept(cb) {
      onFlow = cb;
      for (const f of pending.splice(0)) cb(f);
    },
    // Stop listening now; net.Server's close callback would wait for every open connection to
    // end, which is serve().stop()'s job (it ends or resets them after the grace period).
    close: async () => void server.close(),
  };
}
