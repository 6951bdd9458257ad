// The lab as a library: two kernels through paf's impairing bridge (a TCP transfer under loss and
// delay, ping's RTT and loss against the settings, a seeded replay), the kernel against a paf
// stack with pcap on both sides, two labs at once, and cleanup: nothing left behind after an
// exception, a signal or an uncaught error.
import { describe, expect, it } from "vitest";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { Lab } from "../../lab/lab.js";
import type { BridgeFaultEvent } from "../../lab/bridge.js";
import { readPcap } from "../../stack/netif/pcap.js";
import { serve } from "../../http/serve.js";
import { stackListener } from "../../http/listener.js";
import { httpService } from "../../http/services.js";
import { requirePrivileged, sh, waitFor } from "../helpers/netns.js";
import { ensureBuilt, ROOT } from "../helpers/cli.js";

const run = requirePrivileged();

/** ping's summary: packets sent and received, average RTT (ms). */
function pingSummary(out: string): { sent: number; received: number; avg: number; seqs: number[] } {
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  if (!m) throw new Error(`no ping summary in: ${out}`);
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(out);
  const seqs = [...out.matchAll(/icmp_seq=(\d+)/g)].map((x) => Number(x[1]));
  return { sent: Number(m[1]), received: Number(m[2]), avg: rtt ? Number(rtt[1]) : NaN, seqs };
}

/** Running (a zombie waiting for its parent to reap it counts as gone). */
const alive = (pid: number): boolean => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
};
/** SIGKILL takes effect asynchronously: allow it a moment. */
const gone = (pids: number[]) => waitFor(() => !pids.some(alive), `processes ${pids.join(", ")} to be gone`, 2000);

/** Open /dev/net/tun descriptors of this process (a TAP left open would keep its namespace alive). */
const tunFds = (): number =>
  readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === "/dev/net/tun";
    } catch {
      return false;
    }
  }).length;

const netnsList = async (): Promise<string> => (await sh("ip", ["netns", "list"])).stdout;

describe.skipIf(!run)("Lab: two kernels through paf's bridge", () => {
  it("a kernel TCP transfer under 3% loss and 40 ms delay each way arrives intact; ping's RTT and loss match the settings", async () => {
    await Lab.with({ seed: 1 }, async (lab) => {
      const { a, b, bridge } = await lab.bridge({ faults: { drop: 0.03, delayMs: 40 }, quiet: true });
      const dir = mkdtempSync(join(tmpdir(), "paf-lab-"));
      try {
        const blob = randomBytes(1 << 20);
        writeFileSync(join(dir, "blob"), blob);
        b.ns.spawn("python3", ["-m", "http.server", "8000", "--bind", b.ipv4!, "--directory", dir], { stdio: "ignore", timeoutMs: 120_000 });
        await waitFor(async () => (await b.ns.exec("ss", ["-Hltn"])).stdout.includes(":8000"), "http.server in b", 10_000, 50);
        const got = await a.ns.exec("bash", ["-c", `curl -sS --max-time 60 http://${b.ipv4}:8000/blob | sha256sum`], { timeoutMs: 70_000 });
        expect(got.stdout.split(" ")[0]).toBe(createHash("sha256").update(blob).digest("hex"));
        const t = bridge.stats();
        // The transfer did cross a lossy path: about 3% of the frames each way were lost.
        for (const d of [t.aToB, t.bToA]) {
          expect(d.frames).toBeGreaterThan(300);
          expect(d.dropped / d.frames).toBeGreaterThan(0.015);
          expect(d.dropped / d.frames).toBeLessThan(0.05);
        }

        // ping: RTT = twice the one-way delay; every lost echo is a frame the bridge dropped.
        const before = bridge.stats();
        const { stdout } = await a.ns.exec("ping", ["-c", "400", "-i", "0.01", "-W", "1", b.ipv4!], { timeoutMs: 30_000 });
        const p = pingSummary(stdout);
        const after = bridge.stats();
        const dropped = after.aToB.dropped - before.aToB.dropped + (after.bToA.dropped - before.bToA.dropped);
        expect(p.sent).toBe(400);
        expect(p.sent - p.received).toBe(dropped);
        // 1 - 0.97^2 = 5.9% expected; +-3 standard deviations over 400 echoes.
        expect((p.sent - p.received) / p.sent).toBeGreaterThan(0.024);
        expect((p.sent - p.received) / p.sent).toBeLessThan(0.095);
        expect(p.avg).toBeGreaterThanOrEqual(80);
        expect(p.avg).toBeLessThan(90);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  it("a 20 mbit bottleneck: a kernel TCP download runs at the rate, not faster", async () => {
    await Lab.with({ seed: 4 }, async (lab) => {
      const { a, b, bridge } = await lab.bridge({ faults: { rateBps: 20e6 }, quiet: true });
      const dir = mkdtempSync(join(tmpdir(), "paf-lab-"));
      try {
        writeFileSync(join(dir, "blob"), randomBytes(5_000_000));
        b.ns.spawn("python3", ["-m", "http.server", "8000", "--bind", b.ipv4!, "--directory", dir], { stdio: "ignore", timeoutMs: 60_000 });
        await waitFor(async () => (await b.ns.exec("ss", ["-Hltn"])).stdout.includes(":8000"), "http.server in b", 10_000, 50);
        const { stdout } = await a.ns.exec("curl", ["-sS", "-o", "/dev/null", "-w", "%{size_download} %{speed_download}", `http://${b.ipv4}:8000/blob`], { timeoutMs: 30_000 });
        const [size, bytesPerSec] = stdout.split(" ").map(Number);
        expect(size).toBe(5_000_000);
        // Payload rate: 20 Mbit/s less the headers (1448 of 1514 bytes a frame), less slow start.
        const mbit = (bytesPerSec! * 8) / 1e6;
        expect(mbit).toBeGreaterThan(15);
        expect(mbit).toBeLessThan(19.2);
        expect(bridge.stats().bToA.delayed).toBeGreaterThan(3000);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  it("a seeded run drops the same packets again, another seed others", async () => {
    const lost = (seed: number) =>
      Lab.with({ seed }, async (lab) => {
        const events: BridgeFaultEvent[] = [];
        const { a, b } = await lab.bridge({ faults: { drop: 0.1 }, quiet: true, onFault: (e) => events.push(e) });
        const { stdout } = await a.ns.exec("ping", ["-c", "100", "-i", "0.01", "-W", "1", b.ipv4!], { timeoutMs: 30_000 });
        const got = new Set(pingSummary(stdout).seqs);
        const frames = (dir: string) => events.filter((e) => e.dir === dir).map((e) => e.frame);
        return { seqs: [...Array(100).keys()].map((i) => i + 1).filter((s) => !got.has(s)), aToB: frames("aToB"), bToA: frames("bToA") };
      });
    const first = await lost(5);
    const again = await lost(5);
    const other = await lost(6);
    expect(first.seqs.length).toBeGreaterThan(5);
    expect(again).toEqual(first);
    expect(other.seqs).not.toEqual(first.seqs);
  });
});

describe.skipIf(!run)("Lab: the kernel and a paf stack", () => {
  it("pcap on both sides: the kernel's wire has the echoes the path lost, the stack's view has not", async () => {
    const dir = mkdtempSync(join(tmpdir(), "paf-lab-"));
    try {
      await Lab.with({ seed: 2 }, async (lab) => {
        const pcap = { kernel: join(dir, "kernel.pcap"), stack: join(dir, "stack.pcap") };
        const { kernel, faults, ipv4 } = await lab.stack({ toStack: { drop: 0.2 }, pcap });
        const { stdout } = await kernel.ns.exec("ping", ["-c", "50", "-i", "0.01", "-W", "1", ipv4!], { timeoutMs: 20_000 });
        const p = pingSummary(stdout);
        expect(p.received).toBeLessThan(47);
        // Every lost echo was dropped on its way to the stack (other frames may have been too: ARP, NDP).
        expect(faults.faultStats("rx").dropped).toBeGreaterThanOrEqual(p.sent - p.received);
        expect(faults.faultStats("tx").dropped).toBe(0);
        await lab.close(); // flushes and closes the pcap files
        const echoRequests = (file: string) => readPcap(file).filter((r) => r.data[12] === 0x08 && r.data[13] === 0x00 && r.data[23] === 1 && r.data[34] === 8).length;
        expect(echoRequests(pcap.kernel)).toBe(50);
        expect(echoRequests(pcap.stack)).toBe(p.received);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("two labs at once: their own namespaces, the same addresses, no collision", async () => {
    const one = (body: string) =>
      Lab.with({}, async (lab) => {
        const { kernel, stack, ipv4 } = await lab.stack({ faults: { delayMs: 10 } });
        const web = serve(
          httpService((_req, res) => res.end(body)),
          stackListener(stack, { port: 80 }),
        );
        const { stdout } = await kernel.ns.exec("curl", ["-sS", "--max-time", "10", `http://${ipv4}/`]);
        await web.stop(500);
        return { body: stdout, ns: kernel.ns.name, tap: kernel.ifname };
      });
    const [x, y] = await Promise.all([one("x"), one("y")]);
    expect([x.body, y.body]).toEqual(["x", "y"]);
    expect(x.ns).not.toBe(y.ns);
    expect(x.tap).not.toBe(y.tap);
  });

  it("veth: two kernels joined directly", async () => {
    await Lab.with({}, async (lab) => {
      const { a, b } = await lab.veth();
      const p = pingSummary((await a.ns.exec("ping", ["-c", "2", "-i", "0.2", "-W", "2", b.ipv4!])).stdout);
      expect(p.received).toBe(2);
    });
  });
});

describe.skipIf(!run)("Lab: nothing is left behind", () => {
  it("after an exception inside the lab: no namespace, no process (grandchildren too), no TAP", async () => {
    const fdsBefore = tunFds();
    let names: string[] = [];
    let pids: number[] = [];
    const err = await Lab.with({ seed: 3 }, async (lab) => {
      const s = await lab.stack({ faults: { delayMs: 5 } });
      const br = await lab.bridge({});
      // sh and the background sleep it starts: only the first is our child.
      br.b.ns.spawn("sh", ["-c", "sleep 300 & sleep 300"]);
      names = [s.kernel.ns.name, br.a.ns.name, br.b.ns.name];
      await waitFor(async () => (await br.b.ns.pids()).length >= 3, "sh and two sleeps in the namespace");
      pids = await br.b.ns.pids();
      expect(tunFds()).toBe(fdsBefore + 3);
      throw new Error("boom");
    }).catch((e: Error) => e);
    expect(err.message).toBe("boom [lab seed 3]");
    const listed = await netnsList();
    for (const n of names) expect(listed).not.toContain(n);
    await gone(pids);
    expect(tunFds()).toBe(fdsBefore);
    // Nothing of ours ever appeared in the root namespace.
    expect((await sh("ip", ["-o", "link"])).stdout).not.toContain(`${process.pid % 100000}x`);
  });

  for (const how of ["SIGTERM", "SIGINT", "uncaught exception"] as const) {
    it(`when the process ends by ${how}`, async () => {
      ensureBuilt();
      const dir = mkdtempSync(join(tmpdir(), "paf-lab-"));
      const script = join(dir, "lab.mjs");
      writeFileSync(
        script,
        `import { Lab } from ${JSON.stringify(join(ROOT, "dist", "index.js"))};
const lab = await Lab.create();
const s = await lab.stack({ faults: { delayMs: 5 } });
const br = await lab.bridge({});
br.b.ns.spawn("sh", ["-c", "sleep 300 & sleep 300"]);
await new Promise((r) => setTimeout(r, 300));
console.log(JSON.stringify({ names: [s.kernel.ns.name, br.a.ns.name, br.b.ns.name], pids: await br.b.ns.pids() }));
${how === "uncaught exception" ? `setTimeout(() => { throw new Error("uncaught"); }, 200);` : ""}
setTimeout(() => {}, 60_000);
`,
      );
      try {
        const child = spawn(process.execPath, [script], { stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 });
        let out = "";
        child.stdout.on("data", (d) => (out += d));
        child.stderr.on("data", (d) => (out += d));
        await waitFor(() => out.includes("\n"), "the lab to be up", 20_000, 20);
        const { names, pids } = JSON.parse(out.split("\n")[0]!) as { names: string[]; pids: number[] };
        expect(pids.length).toBeGreaterThanOrEqual(3);
        expect(await netnsList()).toContain(names[0]);
        const ended = new Promise<{ code: number | null; sig: string | null }>((r) => child.once("exit", (code, sig) => r({ code, sig })));
        if (how !== "uncaught exception") child.kill(how);
        const end = await ended;
        // With no handler of its own, the process still dies of the signal (after cleaning up).
        if (how === "uncaught exception") expect(end.code).toBe(1);
        else expect(end.sig).toBe(how);
        const listed = await netnsList();
        for (const n of names) expect(listed).not.toContain(n);
        await gone(pids);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
