// disableAllocationSitePretenuring() (stack/core/tuning.ts), and the `paf` command calling it at
// start. Observed in fresh processes, as V8 behaves: an allocation site whose objects all survive
// young collections is switched to old-generation allocation (pretenured) by V8's default
// heuristic; with the heuristic off, later objects from that site are still made young. The
// probe runs with V8 single-threaded (see probed()).
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, ROOT, ensureBuilt } from "../helpers/cli.js";

// Run at the process's exit (after the program set its flags): 3 million objects from one site,
// all kept (so nearly every one survives the scavenges they cause), then 20,000 more from the
// same site, and where they went.
const PROBE = `import v8 from "node:v8";
function make(i) { return { a: i, b: i + 1, c: null }; }
const space = (n) => v8.getHeapSpaceStatistics().find((s) => s.space_name === n).space_used_size;
export function probe() {
  const keep = [];
  for (let i = 0; i < 3e6; i++) keep.push(make(i));
  const o0 = space("old_space"), n0 = space("new_space");
  const more = [];
  for (let i = 0; i < 20000; i++) more.push(make(i));
  return { old: space("old_space") - o0, young: space("new_space") - n0, kept: keep.length + more.length };
}
`;

let dir = "";
beforeAll(() => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), "paf-tuning-"));
  writeFileSync(join(dir, "probe.mjs"), PROBE);
  // A preload that probes at exit and prints the result on stderr.
  writeFileSync(join(dir, "atexit.mjs"), `import { probe } from "./probe.mjs";\nprocess.on("exit", () => process.stderr.write("PROBE " + JSON.stringify(probe()) + "\\n"));\n`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Run node with `args` and the probe at exit. `--single-threaded`: V8 compiles, marks and sweeps
 * on the main thread, so when it makes (and acts on) its pretenuring decision does not depend on
 * background threads; with them, under a loaded machine (the test suite in parallel), 1 probe of
 * 12 found the site not yet switched.
 */
function probed(args: string[], env: Record<string, string> = {}): { old: number; young: number } {
  const r = spawnSync(process.execPath, ["--single-threaded", ...args], { cwd: ROOT, env: { ...process.env, ...env }, encoding: "utf8", timeout: 60_000 });
  const line = r.stderr.split("\n").find((l) => l.startsWith("PROBE "));
  if (!line) throw new Error(`no probe output (exit ${r.status}): ${r.stderr}`);
  return JSON.parse(line.slice(6));
}

describe("V8 allocation-site pretenuring", () => {
  it("by default V8 pretenures a site whose objects survive: later objects from it are made old", () => {
    // The control: shows the probe can tell the two apart on this Node.
    const r = probed(["--import", pathToFileURL(join(dir, "atexit.mjs")).href, "-e", "0"]);
    expect(r.old).toBeGreaterThan(r.young);
  });

  it("after disableAllocationSitePretenuring() later objects from that site are made young", () => {
    const index = pathToFileURL(join(ROOT, "dist", "index.js")).href;
    const r = probed([
      "--import",
      pathToFileURL(join(dir, "atexit.mjs")).href,
      "--input-type=module",
      "-e",
      `import { disableAllocationSitePretenuring } from ${JSON.stringify(index)}; disableAllocationSitePretenuring();`,
    ]);
    expect(r.young).toBeGreaterThan(r.old);
  });

  it("the paf command turns it off at start, unless PAF_V8_PRETENURING=1", () => {
    const preload = pathToFileURL(join(dir, "atexit.mjs")).href;
    const off = probed(["--import", preload, CLI, "help"]);
    expect(off.young).toBeGreaterThan(off.old);
    const on = probed(["--import", preload, CLI, "help"], { PAF_V8_PRETENURING: "1" });
    expect(on.old).toBeGreaterThan(on.young);
  });
});
