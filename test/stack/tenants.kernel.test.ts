// Two tenants in this process on one scheduler, each a stack on its own TAP in its own namespace,
// on the same addresses, with the Linux kernel as their clients. Tenant 0 is flooded (UDP at a
// fixed rate, then HTTP with wrk) with its limits on: the floods are dropped early and counted,
// its own legitimate user (another address) still gets through, and tenant 1 keeps serving.
// Tenant 2 has a CPU cap (10 % of a CPU): under the same HTTP flood it uses no more than that.
// Timing on a shared machine varies, so the bounds are loose; `make bench` reports the figures.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Netns, ifname, privileged } from "../helpers/netns.js";
import { udpbench as udpbenchBinary } from "../helpers/udpbench.js";
import { TapNetif } from "../../stack/netif/tap.js";
import { Stack } from "../../stack/stack.js";
import { Scheduler } from "../../stack/core/scheduler.js";
import { serve, type ServeHandle } from "../../http/serve.js";
import { stackListener } from "../../http/listener.js";
import { httpService } from "../../http/services.js";

const run = privileged();
/** The requests per second in wrk's report. */
const wrkRps = (out: string) => Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
/** Tenant 2's CPU cap, percent of a CPU. */
const CAP_PCT = 10;

describe.skipIf(!run)("tenants under floods over TAPs", () => {
  const nss: Netns[] = [];
  const stacks: Stack[] = [];
  const webs: ServeHandle[] = [];
  const udpbench = udpbenchBinary();

  beforeAll(async () => {
    const scheduler = new Scheduler();
    for (let i = 0; i < 3; i++) {
      const ns = await Netns.create(`fl${i}`);
      nss.push(ns);
      const tap = TapNetif.open(ifname(`fl${i}`), { netns: ns.path, up: true });
      const limits = i === 0 ? { tenant: { packetsPerSec: 20_000, sourceSharePct: 50, cpuPerTurnUs: 500 }, tcp: { maxConnectionsPerHost: 32 } } : i === 2 ? { tenant: { cpuPercent: CAP_PCT } } : {};
      const stack = Stack.create({ netif: tap, ipv4: { address: "198.18.0.2/24" }, scheduler, limits });
      stacks.push(stack);
      webs.push(
        serve(
          httpService((_req, res) => res.end(`tenant ${i}\n`)),
          stackListener(stack, { port: 80 }),
        ),
      );
      await ns.kernelSide(tap.name, "198.18.0.1/24", "");
      if (i !== 1) await ns.ip("addr", "add", "198.18.0.3/24", "dev", tap.name);
    }
  });

  afterAll(async () => {
    await Promise.all(webs.map((w) => w.stop(500)));
    await Promise.all(stacks.map((s) => s.close()));
    for (const ns of nss) await ns.destroy();
  });

  /** `n` sequential curls in namespace `i` (from `src`), `limit` s each: how many answered right. */
  const probe = async (i: number, n: number, limit: number, src = "198.18.0.1") => {
    const r = await nss[i]!.exec(
      "bash",
      ["-c", `ok=0; for k in $(seq ${n}); do [ "$(curl -s --max-time ${limit} --interface ${src} http://198.18.0.2/)" = "tenant ${i}" ] && ok=$((ok+1)); done; echo $ok`],
      (n * limit + 30) * 1000,
    );
    return Number(r.stdout.trim());
  };

  it("a UDP flood on tenant 0 is dropped before parsing and counted; its own user and tenant 1 are still served", async () => {
    expect(await probe(1, 5, 2)).toBe(5);
    const before = stacks[0]!.stats().tenant!;
    const flood = nss[0]!.exec(udpbench, ["flood", "198.18.0.2", "9", "64", "6", "100000"], 30_000);
    await new Promise((r) => setTimeout(r, 500));
    const [own, other] = await Promise.all([probe(0, 10, 2, "198.18.0.3"), probe(1, 10, 2)]);
    const sent = JSON.parse((await flood).stdout) as { sent: number };
    const t = stacks[0]!.stats().tenant!;
    expect(sent.sent).toBeGreaterThan(100_000);
    // The flood's source took at most its share of 20,000 frames/s: most of it was dropped early.
    expect(t["drop_source_share"]! + t["drop_packet_rate"]! - before["drop_source_share"]! - before["drop_packet_rate"]!).toBeGreaterThan(sent.sent / 3);
    expect(stacks[0]!.stats().udp!["rx_datagrams"] ?? 0).toBeLessThan(sent.sent / 2);
    expect(own).toBeGreaterThanOrEqual(5);
    expect(other).toBeGreaterThanOrEqual(9);
    // Tenant 1 saw none of it.
    expect(stacks[1]!.stats().tenant!["drops_by_limit"]).toBe(0);
    expect(stacks[1]!.stats().udp!["rx_datagrams"] ?? 0).toBe(0);
  });

  it("an HTTP flood on tenant 0 (wrk, 64 connections from one address) leaves its user and tenant 1 served; connections per address bounded", async () => {
    const wrk = nss[0]!.exec("wrk", ["-t1", "-c64", "-d5s", "http://198.18.0.2/"], 30_000);
    await new Promise((r) => setTimeout(r, 500));
    const [own, other] = await Promise.all([probe(0, 10, 2, "198.18.0.3"), probe(1, 10, 2)]);
    const out = (await wrk).stdout;
    expect(wrkRps(out)).toBeGreaterThan(100);
    expect(own).toBeGreaterThanOrEqual(5);
    expect(other).toBeGreaterThanOrEqual(9);
    const t = stacks[0]!.stats().tenant!;
    expect(t["drop_host_connections"]).toBeGreaterThan(0); // 64 asked, 32 allowed
    expect(t["cpu_ms"]).toBeGreaterThan(stacks[1]!.stats().tenant!["cpu_ms"]!);
  });

  it("with a CPU cap, tenant 2 under an HTTP flood uses no more than its share of a CPU; its own user and tenant 1 are still served", async () => {
    const before = stacks[2]!.stats().tenant!;
    const t0 = performance.now();
    const wrk = nss[2]!.exec("wrk", ["-t1", "-c64", "-d4s", "http://198.18.0.2/"], 30_000);
    await new Promise((r) => setTimeout(r, 500));
    const [own, other] = await Promise.all([probe(2, 10, 2, "198.18.0.3"), probe(1, 10, 2)]);
    const out = (await wrk).stdout;
    const elapsed = performance.now() - t0;
    const t = stacks[2]!.stats().tenant!;
    expect(wrkRps(out)).toBeGreaterThan(50);
    expect(own).toBeGreaterThanOrEqual(5);
    expect(other).toBeGreaterThanOrEqual(9);
    expect(t["cpu_throttled"]! - before["cpu_throttled"]!).toBeGreaterThan(0);
    expect(t["cpu_throttled_ms"]! - before["cpu_throttled_ms"]!).toBeGreaterThan(0);
    // Its input's CPU: the cap over the time it was busy, plus the bucket (10 ms) and an overshoot
    // or two (its timers' few ms are counted in cpu_ms too). Uncapped, the same flood takes
    // most of a CPU (the test above: tenant 0).
    const used = t["cpu_ms"]! - before["cpu_ms"]!;
    expect(used).toBeLessThan((CAP_PCT / 100) * elapsed * 1.25 + 30);
  });
});
