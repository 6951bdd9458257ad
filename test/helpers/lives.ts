/** Does a small program keep its process alive? (ref/unref tests: a child that must exit, or stay.) */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { ROOT, ensureBuilt } from "./cli.js";

export const DIST = join(ROOT, "dist", "index.js");

/**
 * Run `code` (an ES module; `paf` is the built package's index) in a child node. Resolves
 * "exited" if it exits with code 0 within `ms` after printing "ready", or "alive" if it is still
 * running then (it is killed). Every other end rejects, with the child's output, its exit code or
 * signal and how long each phase took: never ready within `readyMs`, a non-zero exit, or a death by
 * a signal we did not send (a crash at exit must not pass, nor hang the test).
 */
export async function lives(code: string, ms: number, readyMs = 20_000): Promise<"exited" | "alive"> {
  ensureBuilt();
  const src = `import * as paf from ${JSON.stringify(DIST)};\n${code}\nconsole.log("ready");`;
  const t0 = Date.now();
  const c = spawn(process.execPath, ["--input-type=module", "-e", src], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let readyAt = 0;
  let killedByUs = false;
  const since = () => `spawned ${Date.now() - t0} ms ago${readyAt ? `, ready after ${readyAt - t0} ms` : ", never ready"}`;
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const kill = () => {
      killedByUs = true;
      c.kill("SIGKILL");
    };
    const guard = setTimeout(() => {
      kill();
      reject(new Error(`not ready within ${readyMs} ms (${since()}):\n${out}`));
    }, readyMs);
    const onOutput = (d: Buffer) => {
      out += d;
      if (readyAt || !out.includes("ready")) return;
      readyAt = Date.now();
      clearTimeout(guard);
      timer = setTimeout(() => {
        kill();
        resolve("alive");
      }, ms);
    };
    c.stdout.on("data", onOutput);
    c.stderr.on("data", (d) => (out += d));
    c.on("error", (e) => {
      clearTimeout(guard);
      if (timer) clearTimeout(timer);
      reject(new Error(`cannot run node: ${e.message}`));
    });
    // 'close', not 'exit': by then all of stdout has been read, so "ready" printed just before a
    // quick exit is seen.
    c.on("close", (exitCode, signal) => {
      clearTimeout(guard);
      if (timer) clearTimeout(timer);
      if (killedByUs) return; // settled already by the guard or the timer
      if (exitCode === 0 && readyAt) resolve("exited");
      else reject(new Error(`the child ${signal ? `died of ${signal}` : `exited ${exitCode}`}${exitCode === 0 ? " without printing ready" : ""} (${since()}):\n${out}`));
    });
  });
}
