/**
 * Packets an IP layer sends to one of its own addresses never touch the link: they are queued
 * (at most `limit`) and fed back to the layer's input on the next microtask, as one batch.
 */
import type { Counters } from "./core/stats.js";
import { ETH } from "./wire/ethernet.js";

export class Loopback {
  private queue: Uint8Array[] = [];
  /** True while looped packets are being processed (a packet from our own address is legal then). */
  active = false;

  constructor(
    private readonly input: (frame: Uint8Array, payload: Uint8Array) => void,
    private readonly batchEnd: () => void,
    private readonly counters: Counters,
    private readonly limit = 1024,
  ) {}

  send(frame: Uint8Array): boolean {
    if (this.queue.length >= this.limit) {
      this.counters.drop("loopback_queue_full");
      return false;
    }
    this.queue.push(frame);
    if (this.queue.length === 1) queueMicrotask(() => this.drain());
    return true;
  }

  private drain(): void {
    const q = this.queue;
    this.queue = [];
    this.active = true;
    try {
      for (const f of q) this.input(f, f.subarray(ETH.HEADER_LEN));
    } finally {
      this.active = false;
    }
    this.batchEnd();
  }
}
