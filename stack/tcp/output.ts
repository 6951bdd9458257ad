/**
 * The one output scheduler of a stack's TCP: connections that owe output are flushed once, at
 * the end of the batch of frames that made them owe it (so the ACKs and data of a batch go out
 * together, one write to the netif), or at the end of the tick when the cause was not a frame (a
 * write by the application, a timer). Connections whose segment the netif refused (its queue was
 * full) are retried once I/O had a turn (setImmediate), not in a tight loop.
 *
 * The lists are plain arrays, reused, with a mark on each connection (listed once), not Sets: a
 * stack lives long, so its Sets live in the old generation, and `Set.prototype.clear()` (once per
 * batch) allocates the emptied Set a fresh table there: old-space garbage at every batch, paid in
 * mark-compact collections. With a thousand stacks each batch is small and that cost came per
 * request (a third of the time lost between 10 and 1000 tenants in `make bench`).
 */
import type { Flushable } from "./env.js";

/**
 * A reused list of connections, each listed once by a mark of its own (the owner checks and sets
 * it); here an entry whose mark was taken back (forget) is skipped. Also the layer's list of
 * connections holding data for the end of a batch (TcpLayer.holdInput).
 */
export class Owed<T> {
  items: T[] = [];
  n = 0;
  push(t: T): void {
    this.items[this.n++] = t;
  }
}

export class OutputScheduler {
  // The lists are made at first use: an idle stack (of thousands) holds none.
  private due: Owed<Flushable> | undefined;
  /** The list being flushed (swapped with `due`: nothing allocated per batch). */
  private flushing: Owed<Flushable> | undefined;
  private scheduled = false;
  private runNow: (() => void) | undefined;
  private retrying: Owed<Flushable> | undefined;
  private retryScheduled = false;

  want(t: Flushable): void {
    if (t.outputDue) return;
    t.outputDue = true;
    (this.due ??= new Owed()).push(t);
    if (this.scheduled) return;
    this.scheduled = true;
    // The end of the netif's batch normally comes first; this covers output owed outside a batch.
    queueMicrotask((this.runNow ??= () => this.run()));
  }

  /** Flush everything owed (called at the end of a batch of received frames). */
  run(): void {
    this.scheduled = false;
    const list = this.due;
    if (!list || list.n === 0) return;
    // What a flush owes anew (its own next segment, another connection's ACK) goes to the other
    // list, for the next run.
    this.due = this.flushing ?? new Owed();
    this.flushing = list;
    const items = list.items;
    const n = list.n;
    for (let i = 0; i < n; i++) {
      const t = items[i]!;
      items[i] = undefined as unknown as Flushable; // hold no closed connection until the next batch
      if (!t.outputDue) continue; // forgotten meanwhile
      t.outputDue = false;
      t.flush();
    }
    list.n = 0;
  }

  retry(t: Flushable): void {
    if (t.retryDue) return;
    t.retryDue = true;
    (this.retrying ??= new Owed()).push(t);
    if (this.retryScheduled) return;
    this.retryScheduled = true;
    setImmediate(() => {
      this.retryScheduled = false;
      const list = this.retrying!;
      // A retry that fails again lists itself anew: take this round's entries out first.
      const items = list.items.slice(0, list.n);
      list.items.fill(undefined as unknown as Flushable, 0, list.n);
      list.n = 0;
      for (const x of items) {
        if (!x.retryDue) continue;
        x.retryDue = false;
        if (x.state !== "CLOSED") x.flush();
      }
    });
  }

  forget(t: Flushable): void {
    t.outputDue = false;
    t.retryDue = false;
  }
}
