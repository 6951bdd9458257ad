// Number fields that carry 32-bit sequence numbers, timestamps, times and byte counts start as
// doubles (stack/core/double.ts), so V8 never changes their representation under a running
// stack: a change from small integer to double deprecates the maps of a connection's state and
// deoptimizes the receive path, and with random initial sequence numbers it came on whichever
// connection first drew a number of 2^30 or more. Observed as V8 reports it: a fresh process runs
// connections on a virtual switch under `--trace-generalization`, and no field of the TCP code,
// its segments or a netif's counters goes from small integer (s) to double (d).
import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, ensureBuilt } from "../../helpers/cli.js";
import { Stack } from "../../../stack/stack.js";
import { VirtualSwitch } from "../../../stack/netif/vswitch.js";

const dist = (p: string) => JSON.stringify(pathToFileURL(join(ROOT, "dist", p)).href);

// Eight echo connections of 1 MiB each way (16 sequence numbers drawn each side, timestamps,
// RTT samples, TIME-WAIT), then a control: a field of this script's own that must show up.
const PROBE = `import { Stack } from ${dist("stack/stack.js")};
import { VirtualSwitch } from ${dist("stack/netif/vswitch.js")};
const sw = new VirtualSwitch();
const client = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.1/24" } });
const server = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" } });
server.tcp.listen({ port: 7 }, (f) => f.pipe(f));
for (let i = 0; i < 8; i++) {
  const f = await client.tcp.connect({ host: "198.18.0.2", port: 7 });
  let got = 0;
  await new Promise((resolve) => { f.on("data", (d) => { got += d.length; }); f.on("close", resolve); f.end(Buffer.alloc(1 << 20, i)); });
  if (got !== 1 << 20) throw new Error("echoed " + got);
}
await client.close();
await server.close();
class ControlProbe { constructor() { this.wide = 0; } }
new ControlProbe().wide = 2 ** 31;
process.stdout.write("PROBE DONE\\n");
`;

let dir = "";
beforeAll(() => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), "paf-repr-"));
  writeFileSync(join(dir, "probe.mjs"), PROBE);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("V8 field representations", () => {
  it("no field of the TCP code, its segments or a netif's counters changes from small integer to double", () => {
    // --no-sparkplug: V8 11's tracer can fail a CHECK printing a baseline-compiled frame. The
    // trace goes to a file: V8 prints it with C stdio, and into a pipe (which Node makes
    // non-blocking) a write that meets a full pipe is dropped: 5 runs in 10 lost their last lines.
    const out = join(dir, "trace.txt");
    const fd = openSync(out, "w");
    let r: ReturnType<typeof spawnSync>;
    try {
      r = spawnSync(process.execPath, ["--no-sparkplug", "--trace-generalization", join(dir, "probe.mjs")], { cwd: ROOT, encoding: "utf8", timeout: 60_000, stdio: ["ignore", fd, "pipe"] });
    } finally {
      closeSync(fd);
    }
    expect(r.stderr).toBe("");
    const trace = readFileSync(out, "utf8");
    expect(trace).toContain("PROBE DONE");
    const widened = trace
      .split("\n")
      .map((l) => /^\[generalizing\](\S+?):s\{[^}]*\}->d\{.* at (\S+?):\d+\]?$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ field: m[1]!, at: m[2]! }));
    // The control: the trace reports this script's own field going from 0 to 2^31.
    expect(widened.some((w) => w.field === "wide" && w.at.endsWith("probe.mjs"))).toBe(true);
    const ours = widened.filter((w) => /\/dist\/stack\/(tcp\/|wire\/tcp\.js|netif\/)/.test(w.at));
    expect(ours).toEqual([]);
  });

  it("counters that start as -0 read as +0 from outside", async () => {
    const sw = new VirtualSwitch();
    const port = sw.port();
    const client = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.1/24" } });
    const server = Stack.create({ netif: port, ipv4: { address: "198.18.0.2/24" } });
    try {
      const accepted = new Promise<{ bytesRead: number; bytesWritten: number }>((resolve) => server.tcp.listen({ port: 9 }, resolve));
      const idle = sw.port().stats();
      expect(Object.is(idle.rxBytes, 0) && Object.is(idle.txBytes, 0)).toBe(true);
      // A stack that has held nothing yet (its memory account starts at -0).
      const buffered = server.stats().tcp?.buffered_bytes;
      expect(buffered).toBeDefined();
      expect(Object.is(buffered, 0)).toBe(true);
      const f = await client.tcp.connect({ host: "198.18.0.2", port: 9 });
      const s = await accepted;
      expect(Object.is(f.bytesRead, 0)).toBe(true);
      expect(Object.is(f.bytesWritten, 0)).toBe(true);
      expect(Object.is(s.bytesRead, 0)).toBe(true);
      expect(port.stats().rxBytes).toBeGreaterThan(0);
      f.destroy();
    } finally {
      await client.close();
      await server.close();
    }
  });
});
