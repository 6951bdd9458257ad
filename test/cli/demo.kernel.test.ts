// The README's first command: `make demo` (scripts/demo.sh as root, scripts/demo-inprocess.mjs
// without). Both must show HTTPS with ALPN h2 served by the userspace stack and fetched from it.
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { ROOT, ensureBuilt } from "../helpers/cli.js";
import { requirePrivileged } from "../helpers/netns.js";

const run = requirePrivileged();

function runScript(cmd: string, args: string[]) {
  ensureBuilt();
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: "utf8", timeout: 120_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe("make demo", () => {
  it("in-process (no root): HTTP/1.1, h2c and HTTPS h2 between two userspace stacks, 10 MB intact", () => {
    const r = runScript(process.execPath, ["scripts/demo-inprocess.mjs"]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/http:\/\/198\.18\.0\.2\/ -> http\/1\.1 200/);
    expect(r.out).toMatch(/http:\/\/198\.18\.0\.2\/ -> h2 200/);
    expect(r.out).toMatch(/https:\/\/198\.18\.0\.2\/ -> h2 200, TLSv1\.3 ALPN h2/);
    expect(r.out).toMatch(/https:\/\/\[2001:db8::2\]\/ -> h2 200/);
    expect(r.out).toMatch(/bytes\/10000000 -> h2 200, TLSv1\.3 ALPN h2, 10000000 bytes/);
  });

  it.skipIf(!run)("over TAP (root): curl from the kernel over HTTP/1.1, h2c, HTTPS h2, and paf get from a second stack; namespace removed", () => {
    const r = runScript("bash", ["scripts/demo.sh"]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/-> HTTP\/1\.1: HTTP\/1\.1 status 200/);
    expect(r.out).toMatch(/-> h2c \(prior knowledge\): HTTP\/2 status 200/);
    expect(r.out).toMatch(/-> HTTPS, ALPN h2: HTTP\/2 status 200/);
    expect(r.out).toMatch(/-> HTTPS, 10 MB streamed: HTTP\/2 status 200, 10000000 bytes/);
    expect(r.out).toMatch(/via paf-tcp \(TLSv1\.3, ALPN h2\)\n\s*< h2 200/);
    const ns = spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout;
    expect(ns).not.toMatch(/paf-demo-/);
  });
});
