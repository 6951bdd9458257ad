// The receiver's out-of-order queue (stack/tcp/buffers.ts ReorderQueue): what it hands back once
// a hole fills, and the SACK blocks it reports (RFC 2018 §4).
import { describe, expect, it } from "vitest";
import { ReorderQueue } from "../../../stack/tcp/buffers.js";

const bytes = (n: number) => new Uint8Array(n);

describe("ReorderQueue SACK blocks (RFC 2018 §4)", () => {
  it("reports the block of the segment that arrived last first, then the others from the most recent", () => {
    const q = new ReorderQueue(1 << 20, 64);
    q.add(3000, bytes(100), false);
    expect(q.sackBlocks(3)).toEqual([3000, 3100]);
    q.add(1000, bytes(100), false);
    expect(q.sackBlocks(3)).toEqual([1000, 1100, 3000, 3100]);
    q.add(5000, bytes(100), false);
    expect(q.sackBlocks(3)).toEqual([5000, 5100, 1000, 1100, 3000, 3100]);
    // A segment that extends a block makes that block the most recent.
    q.add(3100, bytes(50), false);
    expect(q.sackBlocks(3)).toEqual([3000, 3150, 5000, 5100, 1000, 1100]);
    // A duplicate of what is held also triggers an ACK: its block goes first.
    q.add(1000, bytes(100), false);
    expect(q.sackBlocks(3)).toEqual([1000, 1100, 3000, 3150, 5000, 5100]);
    // More holes than blocks: the newest is reported, the oldest left out.
    q.add(7000, bytes(10), false);
    expect(q.sackBlocks(3)).toEqual([7000, 7010, 1000, 1100, 3000, 3150]);
  });

  it("hands back what a filled hole makes contiguous, trimmed, in order", () => {
    const q = new ReorderQueue(1 << 20, 64);
    q.add(1100, bytes(100), false);
    q.add(1150, bytes(100), false); // overlaps: trimmed to 1200..1250
    q.add(1400, bytes(10), true);
    expect(q.take(1050).map((s) => [s.seq, s.data.length, s.fin])).toEqual([]);
    expect(q.take(1100).map((s) => [s.seq, s.data.length, s.fin])).toEqual([
      [1100, 100, false],
      [1200, 50, false],
    ]);
    expect(q.sackBlocks(3)).toEqual([1400, 1410]);
  });
});
