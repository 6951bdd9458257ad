/** Does a small program keep its process alive? (ref/unref tests: a child that must exit, or stay.) */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { ROOT, ensureBuilt } from "./cli.js";

export const DIST = join(ROOT, "dist", "index.js");

/**
 * Run `code` (an ES module; `paf` is the built package's index) in a child node. Resolves
 * "exited" (exit code 0 required) if it ends within `ms` after printing "ready", else kills it and
 * resolves "alive". Output is included in errors.
 */
export async function lives(code: string, ms: number): Promise<"exited" | "alive"> {
  ensureBuilt();
  const src = `import * as paf from ${JSON.stringify(DIST)};\n${code}\nconsole.log("ready");`;
  const c = spawn(process.execPath, ["--input-type=module", "-e", src], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  c.stdout.on("data", (d) => (out += d));
  c.stderr.on("data", (d) => (out += d));
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const guard = setTimeout(() => {
      c.kill("SIGKILL");
      reject(new Error(`never ready:\n${out}`));
    }, 20_000);
    c.stdout.on("data", () => {
      if (timer || !out.includes("ready")) return;
      clearTimeout(guard);
      timer = setTimeout(() => {
        c.kill("SIGKILL");
        resolve("alive");
      }, ms);
    });
    c.on("exit", (code) => {
      clearTimeout(guard);
      if (timer) clearTimeout(timer);
      if (code === 0) resolve("exited");
      else if (code !== null) reject(new Error(`exited ${code}:\n${out}`));
    });
  });
}
