/**
 * One timer per HTTP connection, whatever carries it (HTTP/1.x, h2c, TLS with either), so that
 * no connection can sit on a server's resources for free:
 * - head: from accept (TLS handshake and h2c preface included) to the first complete request
 *   head, and again from the first byte after an idle period to the next head (slowloris);
 * - request: from a request head until its body has arrived;
 * - idle: no request in flight (an HTTP/1.1 keep-alive connection, an HTTP/2 session without
 *   streams); bytes that arrive meanwhile (a next request begun, pings) start a head deadline.
 * node:http enforces its own headersTimeout / requestTimeout only on connections its own
 * listening server accepted, node:http2 has none of them, and TLS handshakes have none: a few
 * thousand silent sockets would otherwise hold every slot of `maxConnections` for good.
 */
import type { Duplex, Readable } from "node:stream";
import type { Flow } from "./listener.js";

export type DeadlinePhase = "head" | "request" | "idle";

export interface DeadlineLimits {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
}

/** Deadlines that expired, by phase, and connections evicted to make room (a service's stats). */
export interface DeadlineCounts {
  head_timeouts: number;
  request_timeouts: number;
  idle_timeouts: number;
  evicted: number;
}

/**
 * Connections with no request in flight, longest waiting first: a list threaded through the
 * deadlines themselves, so a keep-alive request moving a connection out and back in allocates
 * nothing (a long-lived Set's delete-then-add leaves holes that rebuild its table in the old
 * generation every few requests).
 */
export class WaitingList {
  head: ConnectionDeadline | undefined;
  tail: ConnectionDeadline | undefined;

  append(d: ConnectionDeadline): void {
    if (d.listed) this.remove(d);
    d.listed = true;
    d.prev = this.tail;
    d.next = undefined;
    if (this.tail) this.tail.next = d;
    else this.head = d;
    this.tail = d;
  }

  remove(d: ConnectionDeadline): void {
    if (!d.listed) return;
    if (d.prev) d.prev.next = d.next;
    else this.head = d.next;
    if (d.next) d.next.prev = d.prev;
    else this.tail = d.prev;
    d.prev = d.next = undefined;
    d.listed = false;
  }
}

export class ConnectionDeadline {
  /**
   * One timer at a time, set for `timerAt` or earlier than the deadline: a later deadline (the
   * next keep-alive request's) leaves it running, and when it fires early it is set again for
   * what remains. A connection serving many requests sets a timer every few seconds, not two per
   * request.
   */
  private timer: NodeJS.Timeout | undefined;
  private timerAt = 0;
  /** When the current phase expires (performance.now() ms). */
  private due = 0;
  private phase: DeadlinePhase | undefined;
  /** Requests in flight (pipelined HTTP/1.1 requests, concurrent HTTP/2 streams). */
  private active = 0;
  /** Requests in flight whose body is still arriving. */
  private receiving = 0;
  /** The connection's bytesRead when it fell idle. */
  private idleMark = 0;
  private stopped = false;
  /** What the service put over the flow, for closing it: TLS, an HTTP/2 session, HTTP/1.x. */
  upper: Duplex | undefined;
  session: { close(): void; destroy(): void; readonly destroyed: boolean } | undefined;
  http1 = false;
  /** @internal WaitingList links. */
  prev: ConnectionDeadline | undefined;
  next: ConnectionDeadline | undefined;
  listed = false;
  private readonly onTimer = (): void => this.fire();

  constructor(
    /** The accepted connection (the TCP flow or kernel socket, under any TLS). */
    readonly flow: Flow,
    private readonly limits: DeadlineLimits,
    private readonly onExpire: (d: ConnectionDeadline, phase: DeadlinePhase) => void,
    /** Connections with no request in flight (head or idle phase), longest waiting first. */
    private readonly waiting: WaitingList,
  ) {
    this.arm("head", limits.headersTimeoutMs);
    flow.on("close", () => this.stop());
  }

  /** A complete request head arrived; `req` ends when its body has. */
  requestStarted(req: Readable): void {
    this.active++;
    this.receiving++;
    let received = false;
    const bodyDone = (): void => {
      if (received) return;
      received = true;
      this.receiving--;
      this.update();
    };
    if (req.readableEnded) bodyDone();
    // 'close' alone: it follows 'end' (a request destroys itself once read) and comes without it
    // when the request is aborted. Not 'end' as well: node:http adds its own 'end' listener to
    // a request whose body is unread when the response finishes, and a second listener makes a
    // [first, second] array per request (see guarded() in services.ts). On, not once: bodyDone
    // guards itself, and once() costs a wrapper and its state each.
    else req.on("close", bodyDone);
    if (!received && this.phase !== "request") this.arm("request", this.limits.requestTimeoutMs);
  }

  /** A response is complete (or its stream gone). */
  requestDone(): void {
    this.active = Math.max(0, this.active - 1);
    this.update();
  }

  stop(): void {
    this.stopped = true;
    this.clear();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private update(): void {
    if (this.stopped) return;
    if (this.active === 0) {
      if (this.phase === "idle" || this.phase === "head") return;
      this.idleMark = bytesRead(this.flow);
      this.arm("idle", this.limits.keepAliveTimeoutMs);
    } else if (this.receiving > 0) {
      if (this.phase !== "request") this.arm("request", this.limits.requestTimeoutMs);
    } else this.clear(); // the application is answering: its own business
  }

  private arm(phase: DeadlinePhase, ms: number): void {
    if (this.stopped) return;
    this.clear();
    this.phase = phase;
    if (phase !== "request") this.waiting.append(this);
    const now = performance.now();
    this.due = now + ms;
    if (this.timer && this.timerAt <= this.due) return; // fires first, and sets itself again
    if (this.timer) clearTimeout(this.timer);
    this.setTimer(now, ms);
  }

  private setTimer(now: number, ms: number): void {
    this.timerAt = now + ms;
    this.timer = setTimeout(this.onTimer, ms);
    this.timer.unref();
  }

  /** Between phases: no deadline runs (the timer, if any, finds nothing due when it fires). */
  private clear(): void {
    this.phase = undefined;
    this.waiting.remove(this);
  }

  private fire(): void {
    this.timer = undefined;
    if (this.stopped || this.phase === undefined) return;
    const now = performance.now();
    // Node fires a timer up to a millisecond early by this clock (it counts from the loop's time).
    if (now < this.due - 1) return this.setTimer(now, this.due - now);
    const phase = this.phase;
    this.clear();
    // Idle, but bytes came meanwhile: a request (or pings) began; its head gets its own deadline.
    // Unless they lie unread: the protocol above stopped reading (node:http2 does after it sent
    // GOAWAY to a rapid-reset flood, and never closes the connection itself).
    if (phase === "idle" && bytesRead(this.flow) !== this.idleMark && !unreadAndPaused(this.flow)) return this.arm("head", this.limits.headersTimeoutMs);
    this.stopped = true;
    this.onExpire(this, phase);
  }
}

function unreadAndPaused(f: Flow): boolean {
  return f.readableFlowing === false && f.readableLength > 0;
}

function bytesRead(f: Flow): number {
  return (f as { bytesRead?: number }).bytesRead ?? 0;
}

/** Where a connection keeps its deadline (a property: cheaper than a WeakMap of thousands). */
const DEADLINE = Symbol("paf.deadline");
type Tracked = { [DEADLINE]?: ConnectionDeadline };

/** Deadlines by connection; found from the socket a request names (the flow, or TLS over it). */
export class DeadlineTable {
  readonly counts: DeadlineCounts = { head_timeouts: 0, request_timeouts: 0, idle_timeouts: 0, evicted: 0 };
  private readonly waiting = new WaitingList();

  constructor(private readonly limits: DeadlineLimits) {}

  /** Start the clock of a connection just accepted; `onExpire` closes it. */
  track(flow: Flow, onExpire: (d: ConnectionDeadline, phase: DeadlinePhase) => void): ConnectionDeadline {
    const d = new ConnectionDeadline(
      flow,
      this.limits,
      (x, phase) => {
        this.counts[`${phase}_timeouts`]++;
        onExpire(x, phase);
      },
      this.waiting,
    );
    (flow as Tracked)[DEADLINE] = d;
    return d;
  }

  /**
   * Close the connection that has waited longest without a request in flight (still sending its
   * first head, or idle between requests), to make room for a new one; false if there is none.
   */
  evictOldest(): boolean {
    const d = this.waiting.head;
    if (!d) return false;
    this.counts.evicted++;
    d.stop();
    d.session?.destroy();
    d.upper?.destroy();
    d.flow.destroy();
    return true;
  }

  /** The deadline of the connection under `socket` (a flow, or a TLSSocket over one). */
  of(socket: object | null | undefined): ConnectionDeadline | undefined {
    if (!socket) return undefined;
    return (socket as Tracked)[DEADLINE] ?? (socket as { _parent?: Tracked })._parent?.[DEADLINE];
  }
}
