/**
 * Transmit buffers that are used again once the netif is done with them, instead of one new
 * ArrayBuffer per frame sent.
 *
 * Why: a bulk TCP sender over a TAP with TSO builds one ~64 KB frame per super-segment. A new
 * `Uint8Array` for each is zero-filled by the allocator, then freed by the garbage collector; at
 * 1 GB/s that is 16,000 external buffers a second, and V8 answers the external memory growth
 * with full mark-compacts (78 in one 3 GB download against 2-4 in others, and the run with them
 * half as fast). Small frames (a reply, an ACK) cost a young-generation ArrayBuffer each, which
 * lengthens every scavenge (the wrk tail).
 *
 * Only the netif that finally writes a frame may `release` it, and only after the write: the
 * buffer is then handed out again, uninitialised, so the frame's builder writes every byte of
 * it (the Ethernet, IP, TCP and UDP emitters do; nothing relies on zero fill). What the netif
 * never writes (dropped, looped back, kept by a wrapper) is simply not released and the garbage
 * collector takes it, so a frame kept elsewhere is never overwritten. A frame released twice (sent
 * twice) is released once.
 *
 * Bounded: each size class keeps at most `keep` free buffers (documented per netif).
 */
export class FramePool {
  private readonly free: ArrayBuffer[][];
  /** Buffers handed out and not yet released: what release() accepts. */
  private readonly out = new WeakSet<ArrayBuffer>();
  /** Buffers made (not taken from a free list), for stats and tests. */
  made = 0;
  /** Buffers taken again from a free list. */
  reused = 0;

  /** `classes`: buffer sizes, ascending; `keep`: free buffers kept per class. */
  constructor(
    private readonly classes: readonly number[],
    private readonly keep: readonly number[],
  ) {
    this.free = classes.map(() => []);
  }

  /** A frame of `len` bytes; its contents are undefined (not zeroed). */
  alloc(len: number): Uint8Array {
    const classes = this.classes;
    for (let c = 0; c < classes.length; c++) {
      if (len > classes[c]!) continue;
      let ab = this.free[c]!.pop();
      if (ab) this.reused++;
      else {
        ab = new ArrayBuffer(classes[c]!);
        this.made++;
      }
      this.out.add(ab);
      return new Uint8Array(ab, 0, len);
    }
    return new Uint8Array(len);
  }

  /** The netif has written `frame`: its buffer may be handed out again (if it came from here). */
  release(frame: Uint8Array): void {
    const ab = frame.buffer as ArrayBuffer;
    if (!this.out.delete(ab)) return;
    const classes = this.classes;
    for (let c = 0; c < classes.length; c++) {
      if (ab.byteLength !== classes[c]) continue;
      const f = this.free[c]!;
      if (f.length < this.keep[c]!) f.push(ab);
      return;
    }
  }
}
