/**
 * The one output scheduler of a stack's TCP: connections that owe output are flushed once, at
 * the end of the batch of frames that made them owe it (so the ACKs and data of a batch go out
 * together, one write to the netif), or at the end of the tick when the cause was not a frame (a
 * write by the application, a timer). Connections whose segment the netif refused (its queue was
 * full) are retried once I/O had a turn (setImmediate), not in a tight loop.
 */
import type { Flushable } from "./env.js";

export class OutputScheduler {
  // The sets are made at first use: an idle stack (of thousands) holds none.
  private due: Set<Flushable> | undefined;
  /** The set being flushed (swapped with `due`: nothing allocated per batch). */
  private flushing: Set<Flushable> | undefined;
  private scheduled = false;
  private retrying: Set<Flushable> | undefined;
  private retryScheduled = false;

  want(t: Flushable): void {
    (this.due ??= new Set()).add(t);
    if (this.scheduled) return;
    this.scheduled = true;
    // The end of the netif's batch normally comes first; this covers output owed outside a batch.
    queueMicrotask(() => this.run());
  }

  /** Flush everything owed (called at the end of a batch of received frames). */
  run(): void {
    this.scheduled = false;
    const list = this.due;
    if (!list || list.size === 0) return;
    this.due = this.flushing ?? new Set();
    this.flushing = list;
    for (const t of list) t.flush();
    list.clear();
  }

  retry(t: Flushable): void {
    (this.retrying ??= new Set()).add(t);
    if (this.retryScheduled) return;
    this.retryScheduled = true;
    setImmediate(() => {
      this.retryScheduled = false;
      const list = [...this.retrying!];
      this.retrying!.clear();
      for (const x of list) if (x.state !== "CLOSED") x.flush();
    });
  }

  forget(t: Flushable): void {
    this.due?.delete(t);
    this.flushing?.delete(t);
    this.retrying?.delete(t);
  }
}
