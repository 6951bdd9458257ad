// Buffer autotuning on the virtual clock, over a link with 5 ms of delay each way (a 10 ms round
// trip, where a 256 KiB buffer caps a connection at 26 MB/s): the send buffer grows while a writer
// is held back by it, the receive buffer while the application reads more than half of it per
// round trip, both within their maxima; a reader that does not read keeps the starting window;
// maxima equal to the starting sizes keep the buffers fixed; the data arrives intact either way.
import { describe, expect, it } from "vitest";
import { collect, connected, pattern, sha256 } from "./helpers.js";
import type { StackLimits } from "../../../stack/stack.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const BYTES = 16 * MiB;

/** Send BYTES from the client to the server (writing as it drains); the virtual time it took and the buffers at the end. */
async function bulk(limits?: StackLimits) {
  const p = await connected({ faults: { delayMs: 5 }, ...(limits ? { limits } : {}) });
  const data = pattern(BYTES, 3);
  const got = collect(p.server);
  const t0 = p.clock.now();
  let off = 0;
  const pump = () => {
    while (off < data.length) {
      const chunk = data.subarray(off, off + 64 * KiB);
      off += chunk.length;
      if (!p.client.write(chunk)) return void p.client.once("drain", pump);
    }
    p.client.end();
  };
  pump();
  await p.until(() => got.ended, "the transfer");
  const ms = p.clock.now() - t0;
  expect(got.bytes).toBe(BYTES);
  expect(sha256(got.data())).toBe(sha256(data));
  const out = { ms, sender: p.client.tcpInfo!, receiver: p.server.tcpInfo!, a: p.a.stats().tcp!, b: p.b.stats().tcp! };
  await p.close();
  return out;
}

describe("TCP buffer autotuning", () => {
  it("both buffers grow past their starting 256 KiB (within 4 MiB) and the transfer takes a fraction of the time fixed buffers take", async () => {
    const tuned = await bulk();
    const fixed = await bulk({ tcp: { maxSendBufferSize: 256 * KiB, maxReceiveBufferSize: 256 * KiB } });
    expect(tuned.sender.sndBuf).toBeGreaterThan(256 * KiB);
    expect(tuned.sender.sndBuf).toBeLessThanOrEqual(4 * MiB);
    expect(tuned.receiver.rcvBuf).toBeGreaterThan(256 * KiB);
    expect(tuned.receiver.rcvBuf).toBeLessThanOrEqual(4 * MiB);
    expect(tuned.a["send_buffer_grown"]).toBeGreaterThan(0);
    expect(tuned.b["receive_buffer_grown"]).toBeGreaterThan(0);
    // Fixed: the buffers never moved, and 16 MiB at most 256 KiB per 10 ms round trip takes >= 0.64 s.
    expect(fixed.sender.sndBuf).toBe(256 * KiB);
    expect(fixed.receiver.rcvBuf).toBe(256 * KiB);
    expect(fixed.ms).toBeGreaterThan(640);
    expect(tuned.ms).toBeLessThan(fixed.ms / 3);
  }, 120_000);

  it("a reader that does not read keeps the starting window: the receive buffer does not grow", async () => {
    const p = await connected({ faults: { delayMs: 5 } });
    p.server.pause();
    p.client.on("error", () => {});
    p.client.write(pattern(2 * MiB));
    await p.until(() => p.server.tcpInfo!.unread >= 256 * KiB - 4 * KiB, "the window to fill");
    await p.until(() => false, "a while", 2000).catch(() => undefined);
    expect(p.server.tcpInfo!.rcvBuf).toBe(256 * KiB);
    // What it holds is the buffer, give or take the rounding of the closing edge to the scale
    // (128 bytes with the 4 MiB maximum, at each ACK): at most the buffer and an eighth.
    expect(p.server.tcpInfo!.unread).toBeGreaterThanOrEqual(256 * KiB - 4 * KiB);
    expect(p.server.tcpInfo!.unread).toBeLessThanOrEqual(256 * KiB * (9 / 8));
    expect(p.b.stats().tcp!["receive_buffer_grown"] ?? 0).toBe(0);
    // The writer is held back by its buffer, which grows only up to two congestion windows
    // while that window is not full; the data it holds is bounded by the maximum.
    expect(p.client.tcpInfo!.sndBuf).toBeLessThanOrEqual(4 * MiB);
    await p.close();
  }, 60_000);

  it("limits.tcp: a maximum below the starting size is raised to it; out of range is an error naming the option", async () => {
    const p = await connected({ limits: { tcp: { sendBufferSize: 64 * KiB, maxSendBufferSize: 16 * KiB } } });
    expect(p.client.tcpInfo!.sndBuf).toBe(64 * KiB);
    await p.close();
    await expect(connected({ limits: { tcp: { maxReceiveBufferSize: 10 } } })).rejects.toThrow(/limits\.tcp\.maxReceiveBufferSize/);
  });
});
