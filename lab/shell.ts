/**
 * Commands with time limits: every command run here is killed (SIGKILL) when its limit passes,
 * and fails with its command line, stdout and stderr in the message.
 */
import { execFile, execFileSync, type ChildProcess } from "node:child_process";

/** Default time limit of a command (sh, Netns.exec). */
export const DEFAULT_TIMEOUT_MS = 30_000;

export interface ShResult {
  stdout: string;
  stderr: string;
}

export interface ShOptions {
  /** Kill the command (SIGKILL) after this long and reject. Default 30 s (DEFAULT_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Written to the command's stdin, which is then closed (without it, stdin stays open). */
  input?: string | Uint8Array;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Working directory. Default: this process's. */
  cwd?: string;
}

/** Raised by sh() for a non-zero exit or a timeout; carries what the command printed. */
export class CommandError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly timedOut: boolean,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(message);
    this.name = "CommandError";
  }
}

/**
 * Run a command without a shell (use sh("bash", ["-c", ...]) for pipes) and wait for it. Rejects
 * with a CommandError on a non-zero exit or timeout.
 */
export function sh(cmd: string, args: readonly string[] = [], opts: number | ShOptions = {}): Promise<ShResult> {
  const o: ShOptions = typeof opts === "number" ? { timeoutMs: opts } : opts;
  const timeout = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout, killSignal: "SIGKILL", maxBuffer: 64 * 1024 * 1024, encoding: "utf8", env: o.env ? { ...process.env, ...o.env } : process.env, ...(o.cwd ? { cwd: o.cwd } : {}) },
      (err, stdout, stderr) => {
        if (!err) return resolve({ stdout, stderr });
        const e = err as Error & { code?: unknown; killed?: boolean; signal?: string };
        const how = e.killed ? `killed after the ${timeout} ms timeout` : `exit ${String(e.code ?? e.signal)}`;
        const exit = typeof e.code === "number" ? e.code : null;
        reject(new CommandError(`\`${[cmd, ...args].join(" ")}\` failed (${how})\nstdout: ${stdout}\nstderr: ${stderr}`, exit, !!e.killed, stdout, stderr));
      },
    );
    // Without input, stdin stays an open pipe: a command that reads it waits, it does not see EOF.
    if (o.input !== undefined) child.stdin?.end(o.input);
  });
}

/** The synchronous sh(): blocks the event loop, so never use it while a stack of this process must answer. */
export function shSync(cmd: string, args: readonly string[] = [], timeoutMs = DEFAULT_TIMEOUT_MS): string {
  return execFileSync(cmd, args, { timeout: timeoutMs, killSignal: "SIGKILL", encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Wait until `cond()` is true, polling every `stepMs`; throws naming `what` after `timeoutMs`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000, stepMs = 10): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Resolve with the first match of `re` in a child's stdout (or stderr); reject on exit or timeout. */
export function waitForOutput(child: ChildProcess, re: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const done = (f: () => void): void => {
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      child.stderr?.off("data", onData);
      child.off("exit", onExit);
      f();
    };
    const onData = (d: Buffer): void => {
      seen += d.toString("utf8");
      const m = seen.match(re);
      if (m) done(() => resolve(m));
    };
    const onExit = (code: number | null, sig: string | null): void => done(() => reject(new Error(`process exited (${code ?? sig}) before printing ${re}; output: ${seen}`)));
    const timer = setTimeout(() => done(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re}; output: ${seen}`))), timeoutMs);
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.on("exit", onExit);
  });
}
