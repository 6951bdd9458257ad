/** Run the built `paf` CLI (dist/cli/main.js), building it first if needed. */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll } from "vitest";

/** Background CLI processes of this test file: killed when the file ends, pass or fail. */
const children = new Set<ChildProcess>();
const killAll = () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  children.clear();
};
afterAll(killAll);
process.once("exit", killAll);

export const ROOT = join(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..", "..");
export const CLI = join(ROOT, "dist", "cli", "main.js");

/** Build dist/ if it is missing or older than the CLI sources (make test builds first anyway). */
export function ensureBuilt(): void {
  const src = join(ROOT, "cli", "main.ts");
  if (existsSync(CLI) && statSync(CLI).mtimeMs >= statSync(src).mtimeMs) return;
  execFileSync("npx", ["tsc", "-p", "tsconfig.json"], { cwd: ROOT, stdio: "inherit" });
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], timeoutMs = 10_000): Promise<RunResult> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d) => (stdout += d));
    c.stderr.on("data", (d) => (stderr += d));
    c.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Start the CLI in the background; resolves once a stdout line matches `ready`. */
export function startCli(args: string[], ready: RegExp, timeoutMs = 15_000, env: Record<string, string> = {}): Promise<{ child: ChildProcess; line: string; output: () => string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    children.add(c);
    c.once("exit", () => children.delete(c));
    let out = "";
    const t = setTimeout(() => {
      c.kill("SIGKILL");
      reject(new Error(`paf ${args.join(" ")} did not print ${ready} within ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    const onData = (d: Buffer) => {
      out += d;
      const m = out.split("\n").find((l) => ready.test(l));
      if (m) {
        clearTimeout(t);
        resolve({ child: c, line: m, output: () => out });
      }
    };
    c.stdout.on("data", onData);
    c.stderr.on("data", (d) => (out += d));
    c.on("exit", (code) => {
      clearTimeout(t);
      reject(new Error(`paf exited early (${code}):\n${out}`));
    });
  });
}
