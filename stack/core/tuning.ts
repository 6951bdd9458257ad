/**
 * Process-wide V8 tuning for programs that embed many stacks (one per tenant).
 *
 * V8 learns, per allocation site (an object or array literal in some function), whether the
 * objects made there tend to outlive a young-generation collection, and once nearly all of them
 * have, makes the site allocate in the old generation directly ("allocation-site pretenuring").
 * Node's stream and event-emitter code has sites that serve both the long-lived objects of
 * connections and the short-lived ones of requests: a burst of connections (a thousand tenants'
 * servers, their first clients) can teach V8 to allocate each request's state in the old
 * generation, where it dies young but is only freed by a full collection, and keeps whatever
 * young objects it points to alive through every scavenge until then. In 1000-tenant runs that
 * happened in about half of the processes, at random (when a scavenge fell inside the burst):
 * 0.15-2.8 MB promoted per scavenge, scavenges of 3-15 ms instead of 1, and a third of the
 * throughput. Without the heuristic every run stayed at about 1 ms (README "Tenants").
 */
import v8 from "node:v8";

/**
 * Turns V8's allocation-site pretenuring off for the whole process (what the `paf` command does
 * at start, unless PAF_V8_PRETENURING=1). Takes effect for later decisions; call it before the
 * stacks and servers are made. Idempotent. It changes a V8 flag, so it is the program's choice,
 * never made by the library on its own.
 */
export function disableAllocationSitePretenuring(): void {
  v8.setFlagsFromString("--no-allocation-site-pretenuring");
}
