// `paf serve --tenants FILE`: tenants on the same addresses, each its own stack on its own TAP in
// its own namespace, one process; curl from each namespace reaches only its tenant; GET /stats
// answers each tenant's own counters; bad files are refused naming the tenant and the field.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { ensureBuilt, runCli, startCli } from "../helpers/cli.js";
import { Netns, ifname, privileged } from "../helpers/netns.js";

beforeAll(() => ensureBuilt(), 120_000);
const dir = mkdtempSync(join(tmpdir(), "paf-tenants-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(doc: unknown): string {
  const p = join(dir, `t${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(p, typeof doc === "string" ? doc : JSON.stringify(doc));
  return p;
}

describe("paf serve --tenants: bad files", () => {
  const t = (o: object = {}) => ({ name: "a", tap: "ta", ipv4: "198.18.0.2/24", ...o });
  const cases: Array<[unknown, RegExp]> = [
    ["{", /--tenants: cannot read .*JSON/],
    [{ tenants: [] }, /at least one tenant/],
    [{ tenants: [t()], extra: 1 }, /unknown top-level field "extra"/],
    [{ tenants: [t({ colour: "red" })] }, /tenants\[0\]: unknown field "colour"/],
    [{ tenants: [t({ name: "bad name" })] }, /tenants\[0\]\.name is required/],
    [{ tenants: [t(), t({ tap: "tb" })] }, /tenant name "a" is used twice/],
    [{ tenants: [t(), t({ name: "b" })] }, /tenant "b": TAP ta is another tenant's/],
    [{ tenants: [t({ ipv4: undefined })] }, /tenant "a": give at least one address/],
    [{ tenants: [t({ ipv4: "198.18.0.300/24" })] }, /tenant "a": --ipv4: invalid IPv4 address/],
    [{ tenants: [t({ limits: { tenant: { packetsPerSec: -1 } } })] }, /tenant "a": .*limits\.tenant\.packetsPerSec/],
    [{ tenants: [t({ limits: { tcp: { maxConnections: 0 } } })] }, /tenant "a": .*limits\.tcp\.maxConnections/],
    [{ tenants: [t({ limits: { tenant: { cpuPercent: 0 } } })] }, /tenant "a": .*limits\.tenant\.cpuPercent/],
    [{ tenants: [t({ limits: { disk: {} } })] }, /unknown group "disk"/],
    [{ tenants: [t({ http: 70000 })] }, /"http" must be a whole number from 1 to 65535/],
    [{ tenants: [t({ root: "/nonexistent-dir" })] }, /root.*nonexistent-dir/],
  ];
  for (const [doc, msg] of cases) {
    it(`rejects ${JSON.stringify(doc).slice(0, 80)}`, async () => {
      const r = await runCli(["serve", "--tenants", file(doc)]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(msg);
    });
  }

  it("--help prints the file's format", async () => {
    const r = await runCli(["serve", "--tenants", "x", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: paf serve --tenants FILE/);
  });
});

const run = privileged();

describe.skipIf(!run)("paf serve --tenants over TAPs in namespaces, curl from each", () => {
  const nss: Netns[] = [];
  afterAll(async () => {
    for (const ns of nss) await ns.destroy();
  });

  it("two tenants on the same addresses, one process: each namespace reaches its own tenant and its own /stats", async () => {
    for (let i = 0; i < 2; i++) nss.push(await Netns.create(`ten${i}`));
    const taps = [ifname("tna"), ifname("tnb")];
    // The TAPs exist first (as root would make them for the tenants), kernel side up.
    for (let i = 0; i < 2; i++) {
      await nss[i]!.ip("tuntap", "add", taps[i]!, "mode", "tap");
      await nss[i]!.kernelSide(taps[i]!, "198.18.0.1/24", "");
    }
    writeFileSync(join(dir, "app.mjs"), "export default (req, res) => res.end('tenant b app ' + req.url + '\\n');\n");
    writeFileSync(join(dir, "hello.txt"), "static of a\n");
    const cfg = file({
      limits: { tenant: { packetsPerSec: 20000 } },
      tenants: [
        { name: "a", tap: taps[0], netns: nss[0]!.name, ipv4: "198.18.0.2/24", root: ".", limits: { tcp: { maxConnections: 500 }, tenant: { packetsPerSec: 20000, sourcePacketsPerSec: 5000 } } },
        { name: "b", tap: taps[1], netns: nss[1]!.name, ipv4: "198.18.0.2/24", app: "app.mjs", limits: { tenant: { cpuPercent: 50 } } },
      ],
    });
    const { child, output } = await startCli(["serve", "--tenants", cfg], /^listening 2 tenants/, 20_000);
    try {
      expect(output()).toMatch(new RegExp(`^tenant a listening on ${taps[0]} mac [0-9a-f:]{17} 198\\.18\\.0\\.2 http 80 source limit 5000/s in the kernel$`, "m"));
      expect(output()).toMatch(new RegExp(`^tenant b listening on ${taps[1]} mac [0-9a-f:]{17} 198\\.18\\.0\\.2 http 80 cpu cap 50%$`, "m"));
      const curl = (i: number, path: string) => nss[i]!.exec("curl", ["-sS", "--max-time", "5", `http://198.18.0.2${path}`]).then((r) => r.stdout);
      expect(await curl(0, "/hello.txt")).toBe("static of a\n");
      expect(await curl(0, "/")).toMatch(/^Hello from paf/);
      expect(await curl(1, "/x")).toBe("tenant b app /x\n");
      for (let k = 0; k < 3; k++) await curl(1, "/y");
      const a = JSON.parse(await curl(0, "/stats"));
      const b = JSON.parse(await curl(1, "/stats"));
      expect(a.tenant).toMatchObject({ drops_by_limit: 0 });
      expect(typeof b.tenant.cpu_ms).toBe("number");
      // b's CPU cap (50 %) is in force and counted; five requests do not reach it.
      expect(b.tenant.cpu_throttled).toBe(0);
      expect(a.tenant.cpu_throttled).toBe(0);
      // Separate counters: b served 5 connections (x, 3 y, stats), a 3 (hello, /, stats).
      expect(a.tcp.passive_opens).toBe(3);
      expect(b.tcp.passive_opens).toBe(5);
    } finally {
      child.kill("SIGTERM");
    }
    expect(await new Promise((r) => (child.exitCode !== null ? r(child.exitCode) : child.once("exit", r)))).toBe(0);
  });
});
