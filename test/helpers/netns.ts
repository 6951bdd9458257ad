/**
 * Network namespaces for tests that need the Linux kernel as a peer. Every namespace is named
 * paf-t<pid>-<n>, and is deleted in afterAll, on process exit, and by .ci/run before a run.
 * Traffic stays inside: the kernel side of a TAP lives in the namespace, the addresses come from
 * 198.18.0.0/15 and 2001:db8::/32, and nothing is configured in the root namespace.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, accessSync, constants } from "node:fs";
import { promisify } from "node:util";

const execFileP = promisify(execFile);

/**
 * True if this process can run privileged tests (root and /dev/net/tun). Otherwise: with
 * PAF_ALLOW_SKIP_PRIVILEGED=1, warn loudly and return false (the caller skips); without it,
 * throw, so the suite fails and says why.
 */
export function privileged(): boolean {
  let why = "";
  if (process.getuid?.() !== 0) why = "not running as root";
  else if (!existsSync("/dev/net/tun")) why = "/dev/net/tun is missing";
  else {
    try {
      accessSync("/dev/net/tun", constants.R_OK | constants.W_OK);
    } catch {
      why = "/dev/net/tun is not accessible";
    }
  }
  if (!why) return true;
  const msg = `privileged test cannot run: ${why}. Run as root (CI does), or set PAF_ALLOW_SKIP_PRIVILEGED=1 to skip these tests.`;
  if (process.env.PAF_ALLOW_SKIP_PRIVILEGED === "1") {
    console.warn(`\n!!! SKIPPING: ${msg}\n`);
    return false;
  }
  throw new Error(msg);
}

export interface ShResult {
  stdout: string;
  stderr: string;
}

/** Run a command (no shell) with a timeout; rejects with stdout/stderr in the message on failure. */
export async function sh(cmd: string, args: string[], timeoutMs = 30_000): Promise<ShResult> {
  try {
    const r = await execFileP(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, encoding: "utf8" });
    return { stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as Error & { stdout?: string; stderr?: string; code?: unknown };
    throw new Error(`${cmd} ${args.join(" ")} failed (${String(err.code)}): ${err.message}\nstdout: ${err.stdout ?? ""}\nstderr: ${err.stderr ?? ""}`);
  }
}

let counter = 0;
const live = new Set<Netns>();
process.on("exit", () => {
  for (const ns of live) ns.destroySync();
});

export class Netns {
  private readonly children = new Set<ChildProcess>();
  private constructor(readonly name: string) {}

  static async create(tag = "t"): Promise<Netns> {
    const name = `paf-${tag}${process.pid}-${counter++}`;
    await sh("ip", ["netns", "add", name]);
    const ns = new Netns(name);
    live.add(ns);
    await ns.ip("link", "set", "lo", "up");
    return ns;
  }

  /** Path for TapNetif.open(..., { netns }). */
  get path(): string {
    return `/var/run/netns/${this.name}`;
  }

  /** `ip -n NAME ...` */
  ip(...args: string[]): Promise<ShResult> {
    return sh("ip", ["-n", this.name, ...args]);
  }

  /** Run a command inside the namespace and wait for it. */
  exec(cmd: string, args: string[] = [], timeoutMs = 30_000): Promise<ShResult> {
    return sh("ip", ["netns", "exec", this.name, cmd, ...args], timeoutMs);
  }

  /** Start a background process inside the namespace; it is killed on destroy(). */
  spawn(cmd: string, args: string[] = [], opts: { stdio?: "pipe" | "ignore" | "inherit" } = {}): ChildProcess {
    const c = spawn("ip", ["netns", "exec", this.name, cmd, ...args], { stdio: opts.stdio ?? "pipe" });
    this.children.add(c);
    c.on("exit", () => this.children.delete(c));
    return c;
  }

  /** Configure the kernel side of a TAP that lives in this namespace. */
  async kernelSide(ifname: string, v4 = "198.18.0.1/24", v6: string | undefined = "2001:db8::1/64"): Promise<void> {
    await this.ip("link", "set", ifname, "up");
    await this.ip("addr", "add", v4, "dev", ifname);
    if (v6) await this.ip("-6", "addr", "add", v6, "dev", ifname, "nodad");
  }

  async destroy(): Promise<void> {
    for (const c of this.children) c.kill("SIGKILL");
    this.children.clear();
    live.delete(this);
    await sh("ip", ["netns", "del", this.name]).catch(() => undefined);
  }

  destroySync(): void {
    for (const c of this.children) c.kill("SIGKILL");
    try {
      execFileSync("ip", ["netns", "del", this.name], { stdio: "ignore" });
    } catch {
      /* already gone */
    }
    live.delete(this);
  }
}

/** Wait until `cond()` is true, polling every `stepMs`; throws `what` after `timeoutMs`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000, stepMs = 10): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
