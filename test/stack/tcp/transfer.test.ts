// Bulk transfers both ways over a faulty link (drop, duplicate, reorder, corrupt, delay), many
// seeds, checked by SHA-256; deterministic on the virtual clock.
import { describe, expect, it } from "vitest";
import { pair, pattern, sha256, collect } from "./helpers.js";
import type { TcpFlow } from "../../../stack/tcp/flow.js";

async function transfer(seed: number, size: number, faults: object, family: 4 | 6 = 4, cc: "cubic" | "newreno" = "cubic", tso = false, slab = false) {
  const p = await pair({ seed, faults, family, tso, slab, limits: { tcp: { congestionControl: cc } } });
  let server: TcpFlow | undefined;
  const up = pattern(size, seed);
  const down = pattern(size, seed + 1000);
  let serverGot: ReturnType<typeof collect> | undefined;
  p.b.tcp.listen({ port: 5000 }, (f) => {
    server = f;
    serverGot = collect(f);
    f.end(down);
  });
  const host = family === 4 ? "198.18.0.2" : "2001:db8::2";
  const cp = p.a.tcp.connect({ host, port: 5000 });
  await p.until(() => server !== undefined, "accept");
  const c = await cp;
  const clientGot = collect(c);
  c.end(up);
  const show = (st: typeof p.a) =>
    JSON.stringify(st.tcp.layer.connections().map((t) => [t.state, t.sndUna - t.iss, t.sndNxt - t.iss, t.sndMax - t.iss, t.rcvNxt - t.irs, t.rtt.rto, t.sndWnd, t.cc.cwnd, t.unread])) +
    JSON.stringify(st.stats());
  await p
    .until(() => clientGot.ended && (serverGot?.ended ?? false), "both transfers")
    .catch((e) => {
      throw new Error(`${(e as Error).message}: client got ${clientGot.bytes}, server got ${serverGot?.bytes}\nA ${show(p.a)}\nB ${show(p.b)}`);
    });
  expect(clientGot.bytes).toBe(size);
  expect(sha256(clientGot.data())).toBe(sha256(down));
  expect(sha256(serverGot!.data())).toBe(sha256(up));
  const stats = {
    a: p.a.stats().tcp!,
    b: p.b.stats().tcp!,
    faults: p.fa.faultStats(),
    time: p.clock.now(),
    gso: p.ga?.gsoStats,
    slab: p.sa && { batches: p.sa.batches + p.sb!.batches, frames: p.sa.frames + p.sb!.frames },
    chunks: clientGot.chunks.length + serverGot!.chunks.length,
  };
  await p.close();
  return stats;
}

describe("bulk transfer with SHA-256 check", () => {
  it("8 MB each way on a clean link, IPv4", async () => {
    const s = await transfer(1, 8_000_000, {});
    expect(s.a["retransmitted_segments"] ?? 0).toBe(0);
  });

  it("2 MB each way over IPv6", async () => {
    await transfer(2, 2_000_000, {}, 6);
  });

  const faulty = { drop: 0.03, duplicate: 0.01, reorder: 0.02, corrupt: 0.005, delayMs: 5, jitterMs: 2 };
  const SEEDS = Number(process.env.PAF_TCP_SEEDS ?? 12);
  for (let seed = 1; seed <= SEEDS; seed++) {
    it(`1 MB each way under 3% loss, duplication, reordering, corruption and delay (seed ${seed})`, async () => {
      const s = await transfer(seed, 1_000_000, faulty, seed % 3 === 0 ? 6 : 4, seed % 2 ? "cubic" : "newreno");
      expect((s.a["retransmitted_segments"] ?? 0) + (s.b["retransmitted_segments"] ?? 0)).toBeGreaterThan(0);
      expect((s.a["drop_bad_checksum"] ?? 0) + (s.b["drop_bad_checksum"] ?? 0)).toBeGreaterThanOrEqual(0);
    });
  }

  // The same with TSO: super-segments of up to 64 KB, cut in software before the faults (the
  // path a TAP with offloads takes, where the kernel cuts them).
  it("8 MB each way with TSO super-segments on a clean link", async () => {
    const s = await transfer(1, 8_000_000, {}, 4, "cubic", true);
    expect(s.gso!.superSegments).toBeGreaterThan(0);
    expect(s.gso!.segments).toBeGreaterThan(s.gso!.superSegments * 2);
    expect(s.a["retransmitted_segments"] ?? 0).toBe(0);
  });
  const TSO_SEEDS = Number(process.env.PAF_TCP_SEEDS ?? 6);
  for (let seed = 1; seed <= TSO_SEEDS; seed++) {
    it(`1 MB each way with TSO under 3% loss, duplication, reordering, corruption and delay (seed ${seed})`, async () => {
      const s = await transfer(100 + seed, 1_000_000, faulty, seed % 2 ? 4 : 6, seed % 3 ? "cubic" : "newreno", true);
      expect(s.gso!.superSegments).toBeGreaterThan(0);
      expect((s.a["retransmitted_segments"] ?? 0) + (s.b["retransmitted_segments"] ?? 0)).toBeGreaterThan(0);
    });
  }
  // A retransmission cut at another boundary covered the client's tail and FIN the server held
  // out of order: the server took the FIN twice, and the client dropped every segment the server
  // sent after (they acknowledged data never sent), its data with them (tcb.test.ts replays it).
  it("1 MB each way with TSO, a FIN held out of order and retransmitted in a longer segment (seed 82)", async () => {
    await transfer(82, 1_000_000, faulty, 4, "newreno", true);
  });

  // Frames handed up from reused slots in batches, as a TAP does (SlabNetif, which writes over
  // each slot once its batch has ended): TCP holds a connection's segments of a batch and hands
  // them up joined at the end; data used past the batch's end would fail the SHA-256 check.
  it("8 MB each way from reused receive slots, in batches as from a TAP: segments joined, intact", async () => {
    const s = await transfer(7, 8_000_000, {}, 4, "cubic", false, true);
    const joined = (s.a["rx_coalesced"] ?? 0) + (s.b["rx_coalesced"] ?? 0);
    const segs = (s.a["rx_segments"] ?? 0) + (s.b["rx_segments"] ?? 0);
    console.log(`slab: ${s.slab!.frames} frames in ${s.slab!.batches} batches, ${segs} segments, ${joined} joined, ${s.chunks} chunks`);
    expect(joined).toBeGreaterThan(1000);
    expect(s.chunks).toBeLessThan(segs / 2);
  });
  // No delay or jitter here: frames that leave together arrive in one batch, so segments are
  // joined beside the losses, duplicates, corruptions and frames held back by reordering.
  const burst = { drop: 0.03, duplicate: 0.01, reorder: 0.02, corrupt: 0.005 };
  const SLAB_SEEDS = Number(process.env.PAF_TCP_SEEDS ?? 6);
  for (let seed = 1; seed <= SLAB_SEEDS; seed++) {
    it(`1 MB each way from reused receive slots under 3% loss, duplication, reordering and corruption (seed ${seed})`, async () => {
      const s = await transfer(200 + seed, 1_000_000, burst, seed % 2 ? 4 : 6, seed % 3 ? "cubic" : "newreno", seed % 4 === 0, true);
      expect((s.a["retransmitted_segments"] ?? 0) + (s.b["retransmitted_segments"] ?? 0)).toBeGreaterThan(0);
      expect((s.a["rx_coalesced"] ?? 0) + (s.b["rx_coalesced"] ?? 0)).toBeGreaterThan(0);
      expect((s.a["ooo_queued"] ?? 0) + (s.b["ooo_queued"] ?? 0)).toBeGreaterThan(0);
    });
  }
});
