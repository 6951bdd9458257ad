/**
 * The kernel-side load tool of the benches (scripts/bench/udpbench.c: UDP floods, TCP senders),
 * compiled once per test process into a temporary directory that is removed at exit.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./cli.js";

let bin: string | undefined;

/** The path of a freshly built udpbench (gcc; a test that needs it runs where gcc is). */
export function udpbench(): string {
  if (bin) return bin;
  const dir = mkdtempSync(join(tmpdir(), "paf-udpbench-"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, "udpbench");
  execFileSync("gcc", ["-O2", "-o", out, join(ROOT, "scripts", "bench", "udpbench.c")]);
  bin = out;
  return out;
}
