/**
 * A stack's receive side, between its netif and its Ethernet layer: frames are admitted by the
 * tenant's rates before anything parses them (ingress.ts), each batch runs with time frozen at
 * its start and its CPU time charged to the stack's share in the scheduler, which polls a
 * pollable netif at the stack's turn and pauses a pushing one while the stack is over its share.
 */
import type { Netif, NetifReceiver, RxMeta } from "./netif/netif.js";
import type { CpuCap, Scheduler, Task } from "./core/scheduler.js";
import type { InternalErrors } from "./core/errors.js";
import type { EthernetLayer } from "./ethernet.js";
import type { Ingress } from "./ingress.js";

export class StackReceiver implements NetifReceiver {
  readonly task: Task;
  /** CPU clock at the start of the batch in progress, -1 between batches. */
  private batchStart = -1;
  /** What the last batch the netif pushed charged (afterBatch adds the rest). */
  private lastBatchMs = 0;
  /** endBatch for queueMicrotask, made at the first frame. */
  private endBatchNow: (() => void) | undefined;
  /** The netif has called batchEnd(): it ends every batch, no end is scheduled as a fallback. */
  private endsBatches = false;
  /** Frames of the batch in progress. */
  private frames = 0;
  /**
   * overBudget reads the clock at every `stride`-th question: 8 while eight frames (with the work
   * they bring) cost under a quarter of the quantum, as small datagrams do (a clock read is
   * 40-70 ns, a few per cent of a UDP frame's processing), 1 once frames cost more (an HTTP
   * request: tens of microseconds, where eight could overshoot the share).
   */
  private stride = 1;
  private asked = 0;
  /** Present for a pollable netif only: the scheduler then decides when its frames are taken. */
  readonly ready?: () => void;

  constructor(
    private readonly sched: Scheduler,
    netif: Netif,
    private readonly ingress: Ingress,
    private readonly eth: EthernetLayer,
    private readonly bugs: InternalErrors,
    quantumMs: number,
    cap?: CpuCap,
  ) {
    // The netif is the task's driver (its poll, or its pause and resume: the task uses them in pairs).
    this.task = sched.task(netif, quantumMs, cap);
    if (netif.poll) this.ready = () => this.task.ready();
  }

  frame(buf: Uint8Array, meta?: RxMeta): void {
    this.frames++;
    if (this.batchStart < 0) {
      this.batchStart = this.sched.beginBatch();
      // A netif that does not end its batches still gets its time charged (one that has ended
      // one ends them all: NetifReceiver.batchEnd).
      if (!this.endsBatches) queueMicrotask((this.endBatchNow ??= () => this.endBatch()));
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
    const sync = this.lastBatchMs;
    const extra = ms - sync;
    this.lastBatchMs = 0;
    const t = this.task;
    if (sync > 0.005) t.inflate += (Math.min(8, Math.max(1, ms / sync)) - t.inflate) / 4;
    if (extra > 0) t.charge(extra);
  }

  /** Over this stack's CPU share for the turn (Task.overBudget), counting the batch in progress and the application work it will bring? */
  overBudget(): boolean {
    if (this.batchStart < 0 || ++this.asked < this.stride) return false;
    this.asked = 0;
    return this.task.overBudget(this.sched.cpuNow() - this.batchStart);
  }

  batchEnd(): void {
    this.endsBatches = true;
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
    const t = this.task;
    if (this.frames > 0) this.stride = (8 * ms * t.inflate) / this.frames < t.quantumMs / 4 ? 8 : 1;
    this.frames = 0;
    this.asked = 0;
    // A batch the scheduler polled: what its frames bring runs after the visit, where no
    // netif measures it, so it is charged as estimated. A pushed one: afterBatch adds it.
    if (t.polling) t.charge(ms * t.inflate);
    else {
      this.lastBatchMs = ms;
      t.charge(ms);
    }
  }
}
