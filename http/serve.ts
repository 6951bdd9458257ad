/**
 * serve(service, listener): the accept loop. A service turns flows into HTTP (or anything else);
 * the listener says where flows come from. One bad connection never disturbs another: every flow
 * gets its own error handler, and the connection bound is enforced before a service sees it.
 */
import { socketLike, type Flow, type Listener } from "./listener.js";

export interface Service {
  /** Take over one accepted flow. */
  handle(flow: Flow): void;
  /** Stop: let in-flight requests finish until `deadline` (ms since epoch), then close what remains. */
  shutdown(deadline: number): Promise<void>;
  /** The service's own counters (e.g. deadlines that expired, by kind). */
  stats?(): Record<string, number>;
  /**
   * At maxConnections: close the connection that has waited longest without a request in flight,
   * so a newcomer is served instead of refused (false: none to close).
   */
  evictIdle?(): boolean;
}

export interface ServeOptions {
  /**
   * Connections served at once. Beyond it, the one that has waited longest without a request in
   * flight is closed to make room (counted in the service's `evicted`); if every connection has
   * a request in flight, the newcomer is closed on arrival (counted in `rejected`). Default 10000.
   */
  maxConnections?: number;
}

export interface ServeHandle {
  readonly listener: Listener;
  /** Connections open now, accepted in total, refused by the bound; and the service's counters. */
  stats(): { open: number; accepted: number; rejected: number } & Record<string, number>;
  /** Stop accepting, let in-flight requests finish within `graceMs`, then close what remains. */
  stop(graceMs?: number): Promise<void>;
}

export function serve(service: Service, listener: Listener, opts: ServeOptions = {}): ServeHandle {
  const max = opts.maxConnections ?? 10_000;
  const open = new Set<Flow>();
  let accepted = 0;
  let rejected = 0;
  let stopping = false;
  listener.accept((flow) => {
    flow.on("error", () => {}); // a peer's reset ends only its own connection
    if (stopping || (open.size >= max && !service.evictIdle?.())) {
      rejected++;
      flow.destroy();
      return;
    }
    accepted++;
    // Like node:http's default (noDelay: true): request/response traffic must not wait for Nagle
    // (TLS in particular writes small records that Nagle would hold behind a delayed ACK).
    socketLike(flow).setNoDelay?.(true);
    open.add(flow);
    flow.once("close", () => open.delete(flow));
    service.handle(flow);
  });
  return {
    listener,
    stats: () => ({ ...service.stats?.(), open: open.size, accepted, rejected }),
    async stop(graceMs = 5000) {
      stopping = true;
      const deadline = Date.now() + graceMs;
      await listener.close();
      await service.shutdown(deadline);
      // What is left is idle (keep-alive HTTP/1.1, TLS without a request) or past the deadline:
      // send FIN so well-behaved peers see an orderly close, and destroy what is still open 1 s on
      // (its transport finishes or resets the close).
      for (const f of open) f.end();
      const until = Date.now() + 1000;
      while (open.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      for (const f of open) f.destroy();
    },
  };
}
