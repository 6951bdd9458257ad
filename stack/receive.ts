/**
 * A stack's receive side, between its netif and its Ethernet layer: frames are admitted by the
 * tenant's rates before anything parses them (ingress.ts), each batch runs with time frozen at
 * its start and its CPU time charged to the stack's share in the scheduler, which polls a
 * pollable netif at the stack's turn and pauses a pushing one while the stack is over its share.
 */
import type { Netif, NetifReceiver, RxMeta } from "./netif/netif.js";
import type { Scheduler, Task } from "./core/scheduler.js";
import type { InternalErrors } from "./core/errors.js";
import type { EthernetLayer } from "./ethernet.js";
import type { Ingress } from "./ingress.js";

export class StackReceiver implements NetifReceiver {
  readonly task: Task;
  /** CPU clock at the start of the batch in progress, -1 between batches. */
  private batchStart = -1;
  /** What the last batch charged (afterBatch adds the rest). */
  private lastBatchMs = 0;
  /** endBatch for queueMicrotask, made at the first frame. */
  private endBatchNow: (() => void) | undefined;
  /** Present for a pollable netif only: the scheduler then decides when its frames are taken. */
  readonly ready?: () => void;

  constructor(
    private readonly sched: Scheduler,
    netif: Netif,
    private readonly ingress: Ingress,
    private readonly eth: EthernetLayer,
    private readonly bugs: InternalErrors,
    quantumMs: number,
  ) {
    // The netif is the task's driver (its poll, or its pause and resume: the task uses them in pairs).
    this.task = sched.task(netif, quantumMs);
    if (netif.poll) this.ready = () => this.task.ready();
  }

  frame(buf: Uint8Array, meta?: RxMeta): void {
    if (this.batchStart < 0) {
      this.batchStart = this.sched.beginBatch();
      // A netif that never ends its batches still gets its time charged.
      queueMicrotask((this.endBatchNow ??= () => this.endBatch()));
    }
    if (!this.ingress.admit(buf, this.sched.timers.now())) return;
    try {
      this.eth.input(buf, meta);
    } catch (err) {
      this.bugs.report("frame input", err);
    }
  }

  /** The last batch's whole cost is known: charge what its own measure missed (the application's part). */
  afterBatch(ms: number): void {
    const extra = ms - this.lastBatchMs;
    this.lastBatchMs = 0;
    if (extra > 0) this.task.charge(extra);
  }

  /** Over this stack's CPU share for the turn, counting the batch in progress? */
  overBudget(): boolean {
    return this.batchStart >= 0 && this.task.overBudget(this.sched.cpuNow() - this.batchStart);
  }

  batchEnd(): void {
    try {
      this.eth.batchEnd();
    } catch (err) {
      this.bugs.report("batch end", err);
    }
    this.endBatch();
  }

  private endBatch(): void {
    if (this.batchStart < 0) return;
    const ms = this.sched.endBatch(this.batchStart);
    this.batchStart = -1;
    this.lastBatchMs = ms;
    this.task.charge(ms);
  }
}
