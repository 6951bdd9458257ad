/**
 * What one TCP connection (tcb.ts) needs of the world, and nothing more (after smoltcp's socket
 * context): time and timers, counters, randomness, the memory budget, and a way to put a segment
 * on the wire. The demux (layer.ts) provides it for every connection of a stack; a unit test can
 * provide its own and drive a connection segment by segment, with no layer, IP or netif.
 */
import type { TimerQueue } from "../core/timers.js";
import type { Counters } from "../core/stats.js";
import type { Random } from "../core/random.js";
import type { Route } from "../ip.js";
import type { TcpEmit } from "../wire/tcp.js";
import type { SendQueue } from "./buffers.js";
import type { TcpMemory } from "./memory.js";
import type { TimeWaitSource } from "./timewait.js";

/** A connection as its environment sees it. */
export interface Flushable {
  /** Send what the windows allow and any ACK owed. */
  flush(): void;
  readonly state: string;
  /** Listed by the output scheduler, to be flushed at the end of the batch (its mark, kept here). */
  outputDue: boolean;
  /** Listed by the output scheduler for a retry after the netif refused a segment. */
  retryDue: boolean;
}

export interface TcpEnv {
  readonly timers: TimerQueue;
  readonly counters: Counters;
  readonly random: Random;
  /** Buffer memory of the stack, shared by all connections (per remote address too). */
  readonly memory: TcpMemory;
  /** Largest IP packet the netif cuts into segments itself (TSO); 0: none. */
  readonly gsoMax: number;
  /**
   * Put one segment on the wire: the header as `repr`, then `len` payload bytes from `payload` at
   * `off`; with `gsoSize` (and more payload than that) a super-segment the netif cuts. False if
   * it could not leave (no route, the netif's queue full): that is no loss on the path.
   * `repr` (and its `ts`, `sack`) is only valid during the call: it is reused for the next segment.
   */
  transmit(route: Route, repr: TcpEmit, payload: SendQueue | undefined, off: number, len: number, gsoSize: number): boolean;
  /** A RST outside any connection's sequence space (rate limited, RFC 9293 §3.10.7). */
  reset(route: Route, localPort: number, remotePort: number, seq: number, ack: number, withAck: boolean): void;
  /** May an RFC 5961 challenge ACK go out now (rate limited)? */
  challengeAllowed(): boolean;
  /** `t` owes output: flush() runs once, at the end of the current batch of frames or tick. */
  wantsOutput(t: Flushable): void;
  /** Received frames wait to be handed up (the netif's inputPending): see Tcb.deferRetransmit. */
  inputPending(): boolean;
  /**
   * May in-order data just received be handed to the application as it is (a view into the
   * frame), not copied? True when the netif gives the frame's memory up (Netif.adopt).
   */
  adopt(data: Uint8Array): boolean;
  /** Batches of received frames ended so far (where batches are known). */
  readonly batches?: number;
  /**
   * May `t` hold in-order data that is not the application's to keep (adopt false) until the
   * batch of frames ends, to hand it up with the connection's next data of the batch as one
   * chunk? True when the netif keeps its frames until then (NetifFeatures.rxKeptUntilBatchEnd)
   * and a batch is in progress: `t.releaseHeld()` is then called at its end. Absent: never.
   */
  holdInput?(t: { holdDue: boolean; releaseHeld(): void }): boolean;
  /** The netif refused `t`'s last segment: flush() again once I/O had a turn. */
  retryOutput(t: Flushable): void;
  /** `t` reached CLOSED: forget it. */
  closed(t: Flushable): void;
  /**
   * TIME-WAIT accounting: +1 asks for a place (false past maxTimeWait: the connection closes
   * without TIME-WAIT, as Linux past tcp_max_tw_buckets), -1 gives one back.
   */
  timeWait(delta: 1 | -1): boolean;
  /**
   * Where present: take over connection `t`'s TIME-WAIT (which has a place, see timeWait) with a
   * small record of its own for the 2 x MSL (timewait.ts); `t` is then done. Undefined if it
   * cannot (the connection then waits itself).
   */
  keepTimeWait?(t: TimeWaitSource): { readonly gone: boolean } | undefined;
}
