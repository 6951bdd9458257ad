/**
 * TCP buffer memory of one stack, after Linux's tcp_mem (min / pressure / max) and its per-socket
 * minimum (tcp_rmem[0]): what is bounded is the bytes actually held (unacknowledged send data,
 * out-of-order and unread received data), never windows promised but not filled, so idle
 * connections cost nothing. Above the pressure mark every connection's receive buffer shrinks
 * gradually, down to `minReceiveWindow` at the hard bound, instead of newcomers being offered a
 * zero window; one source address is held to its own share the same way. When memory frees,
 * connections whose window was squeezed are told at once with a window update.
 */

import { DOUBLE_ZERO } from "../core/double.js";

export interface TcpMemoryOptions {
  maxBufferedBytes: number;
  bufferPressureBytes: number;
  maxBufferedBytesPerHost: number;
  minReceiveWindow: number;
}

/** What one remote address holds, shared by its connections. */
export class HostShare {
  held = DOUBLE_ZERO;
  conns = 0;
  /** Pressure step at which its connections were last squeezed (see TcpMemory.level). */
  level = 0;
  /** Its connections that advertised a window shrunk by pressure, to be reopened when it eases. */
  readonly squeezed = new Set<{ reopenWindow(): void }>();
  constructor(readonly key: string) {}
}

/** Pressure is quantised to this many steps; a window update pass runs when it falls by one. */
const STEPS = 16;

export class TcpMemory {
  held = DOUBLE_ZERO;
  private hostMap: Map<string, HostShare> | undefined;
  /** Shares by remote address; made at first use: an idle stack (of thousands) holds none. */
  private get hosts(): Map<string, HostShare> {
    return (this.hostMap ??= new Map());
  }
  private stackLevel = 0;
  private reopenScheduled = false;
  private toReopen: Set<HostShare> | undefined;
  /** Times a window update pass ran because memory freed (for stats). */
  reopenPasses = 0;
  /** Writers held back by a bound, woken (onRoom) when memory frees. */
  private waiting: Set<{ onRoom(): void }> | undefined;
  private wakeScheduled = false;

  constructor(readonly o: TcpMemoryOptions) {}

  /** The share of remote address `key` (one per connection: detach() when it goes). */
  attach(key: string): HostShare {
    let h = this.hosts.get(key);
    if (!h) {
      h = new HostShare(key);
      this.hosts.set(key, h);
    }
    h.conns++;
    return h;
  }

  detach(h: HostShare): void {
    if (--h.conns <= 0 && h.held <= 0) this.hosts.delete(h.key);
  }

  /** Connections (any state) with remote address `key` (an ipKey). */
  connectionsOf(key: string): number {
    return this.hostMap?.get(key)?.conns ?? 0;
  }

  /** Remote addresses with connections or bytes held. */
  get hostCount(): number {
    return this.hostMap?.size ?? 0;
  }

  /** Bytes held by connection(s) of `h` change by `delta`. */
  charge(h: HostShare, delta: number): void {
    this.held += delta;
    h.held += delta;
    if (delta >= 0) return;
    if (this.waiting && this.waiting.size > 0 && !this.wakeScheduled) {
      this.wakeScheduled = true;
      queueMicrotask(() => {
        this.wakeScheduled = false;
        const list = [...this.waiting!];
        this.waiting!.clear();
        for (const w of list) w.onRoom();
      });
    }
    if (h.conns <= 0 && h.held <= 0) this.hosts.delete(h.key);
    // Pressure eased by a step: reopen the squeezed windows (batched to the end of the tick).
    if (this.stackLevel > 0 && this.level(this.stackFraction()) < this.stackLevel) {
      this.stackLevel = this.level(this.stackFraction());
      for (const x of this.hosts.values()) if (x.squeezed.size > 0) (this.toReopen ??= new Set()).add(x);
      this.scheduleReopen();
    } else if (h.level > 0 && h.squeezed.size > 0 && this.level(this.hostFraction(h)) < h.level) {
      (this.toReopen ??= new Set()).add(h);
      this.scheduleReopen();
    }
  }

  /** How far into pressure the stack is: 0 at or below the pressure mark, 1 at the hard bound. */
  stackFraction(): number {
    const lo = this.o.bufferPressureBytes;
    const hi = this.o.maxBufferedBytes;
    return hi > lo ? clamp01((this.held - lo) / (hi - lo)) : this.held >= hi ? 1 : 0;
  }

  /** The same for one host: pressure from half its share, full at its share. */
  private hostFraction(h: HostShare): number {
    const hi = this.o.maxBufferedBytesPerHost;
    return clamp01((h.held - hi / 2) / (hi / 2));
  }

  private level(fraction: number): number {
    return Math.ceil(fraction * STEPS);
  }

  /**
   * The receive buffer a connection of `h` may fill now: `size` without pressure, shrinking
   * linearly to `minReceiveWindow` as the stack (or its host) reaches its bound.
   */
  receiveBuffer(h: HostShare, size: number): number {
    const f = Math.max(this.stackFraction(), this.hostFraction(h));
    if (f === 0) return size;
    const min = Math.min(this.o.minReceiveWindow, size);
    return Math.floor(size - f * (size - min));
  }

  /** No pressure on the stack nor on `h`: buffers may grow (autotuning). */
  relaxed(h: HostShare): boolean {
    return this.stackFraction() === 0 && this.hostFraction(h) === 0;
  }

  /** Note that a connection of `h` advertised a window cut by pressure (reopened when it eases). */
  squeezed(h: HostShare, t: { reopenWindow(): void }): void {
    h.squeezed.add(t);
    const sl = this.level(this.stackFraction());
    if (sl > this.stackLevel) this.stackLevel = sl;
    const hl = this.level(this.hostFraction(h));
    if (hl > h.level) h.level = hl;
  }

  /**
   * Past a hard bound, which one: the stack's ("memory") or `h`'s own share ("host_memory");
   * beyond its minimum, a connection then takes no more. Undefined: within both.
   */
  overLimit(h: HostShare): "memory" | "host_memory" | undefined {
    if (this.held >= this.o.maxBufferedBytes) return "memory";
    if (h.held >= this.o.maxBufferedBytesPerHost) return "host_memory";
    return undefined;
  }

  /** Bytes a writer of `h` may still queue within the stack's and its host's bounds. */
  sendRoom(h: HostShare): number {
    return Math.min(this.o.maxBufferedBytes - this.held, this.o.maxBufferedBytesPerHost - h.held);
  }

  /** A writer over a bound: call `w.onRoom()` once memory frees (it re-registers if still over). */
  waitForRoom(w: { onRoom(): void }): void {
    (this.waiting ??= new Set()).add(w);
  }

  /** `w` is gone. */
  forget(w: { onRoom(): void; reopenWindow(): void }, h: HostShare): void {
    this.waiting?.delete(w);
    h.squeezed.delete(w);
    this.detach(h);
  }

  private scheduleReopen(): void {
    if (this.reopenScheduled) return;
    this.reopenScheduled = true;
    queueMicrotask(() => {
      this.reopenScheduled = false;
      this.reopenPasses++;
      const hosts = [...(this.toReopen ?? [])];
      this.toReopen?.clear();
      for (const h of hosts) {
        h.level = this.level(this.hostFraction(h));
        const conns = [...h.squeezed];
        h.squeezed.clear();
        // Each one re-registers if its window is still cut.
        for (const t of conns) t.reopenWindow();
      }
    });
  }
}

function clamp01(x: number): number {
  return x <= 0 ? 0 : Math.min(x, 1);
}
