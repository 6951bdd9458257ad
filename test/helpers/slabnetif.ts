/**
 * A netif wrapper for tests that hands received frames up the way a TAP does: copied into a
 * fixed set of reused slots, up to `batch` frames per batch, each batch ended with batchEnd(),
 * and every slot written over (0xEE) right after, so a receiver that uses a view past the end
 * of its batch reads garbage and a SHA-256 check fails. adopt() is absent (every kept byte must
 * be copied) and it claims rxKeptUntilBatchEnd, as a TAP, so TCP holds a connection's segments
 * of a batch and hands them up joined at the end (Tcb.releaseHeld). Frames that arrive while
 * the event loop runs one task are one batch (a microtask delivers them), as a TAP's read takes
 * what the kernel queued meanwhile.
 */
import type { Netif, NetifFeatures, NetifReceiver, NetifStats, TxMeta } from "../../stack/netif/netif.js";

export class SlabNetif implements Netif {
  /** Batches handed up, and the frames in them. */
  batches = 0;
  frames = 0;
  private rx: NetifReceiver | undefined;
  private readonly waiting: Uint8Array[] = [];
  private readonly slots: Uint8Array[];
  private scheduled = false;
  private closed = false;

  constructor(
    private readonly inner: Netif,
    private readonly batch = 64,
  ) {
    const size = Math.max(2048, inner.mtu + 64);
    this.slots = Array.from({ length: batch }, () => new Uint8Array(size));
  }

  get name(): string {
    return `${this.inner.name}+slab`;
  }
  get mtu(): number {
    return this.inner.mtu;
  }
  get features(): NetifFeatures {
    return { ...this.inner.features, rxKeptUntilBatchEnd: true };
  }
  start(rx: NetifReceiver): void {
    this.rx = rx;
    this.inner.start({
      frame: (buf) => {
        this.waiting.push(buf.slice());
        if (!this.scheduled) {
          this.scheduled = true;
          queueMicrotask(this.deliver);
        }
      },
      batchEnd: () => {},
    });
  }
  inputPending(): boolean {
    return this.waiting.length > 0 || (this.inner.inputPending?.() ?? false);
  }
  send(frame: Uint8Array, meta?: TxMeta): boolean {
    return this.inner.send(frame, meta);
  }
  stats(): NetifStats {
    return this.inner.stats();
  }
  close(): Promise<void> {
    this.closed = true;
    return this.inner.close();
  }

  private readonly deliver = (): void => {
    this.scheduled = false;
    const rx = this.rx;
    if (!rx || this.closed) return;
    const frames = this.waiting.splice(0, this.batch);
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i]!;
      const slot = this.slots[i]!;
      slot.set(f);
      rx.frame(slot.subarray(0, f.length));
    }
    rx.batchEnd?.();
    for (let i = 0; i < frames.length; i++) this.slots[i]!.fill(0xee);
    this.batches++;
    this.frames += frames.length;
    if (this.waiting.length > 0 && !this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.deliver);
    }
  };
}
