/**
 * Network namespaces for tests that need the Linux kernel as a peer (TAP, ping, curl, socat ...).
 *
 * Rules these helpers keep, so tests can't leak traffic or state onto the machine:
 *  - every namespace is created here, named paf-<tag><pid>-<n>, and deleted by destroy(), by
 *    useNetns()'s afterAll, on process exit and on SIGINT/SIGTERM (and by .ci/run before a run);
 *  - nothing is configured in the root namespace: the kernel side of a TAP lives in the namespace
 *    (TapNetif.open(name, { netns: ns.path })), addresses come from 198.18.0.0/15 and 2001:db8::/32;
 *  - every command has a timeout, every background process is killed on cleanup.
 *
 * Typical use:
 *
 *   const run = requirePrivileged();            // at module level: fails, or skips if allowed
 *   describe.skipIf(!run)("...", () => {
 *     const ctx = useNetns("tap");              // beforeAll creates, afterAll destroys
 *     it("...", async () => {
 *       const tap = TapNetif.open(ifname("pt"), { netns: ctx.ns.path, up: true });
 *       await ctx.ns.kernelSide(tap.name);      // 198.18.0.1/24 + 2001:db8::1/64, link up
 *       await ctx.ns.exec("ping", ["-c", "1", "-W", "2", "198.18.0.2"]);
 *     });
 *   });
 *
 * or, for one test: `await withNetns("x", async (ns) => { ... })`.
 */
import { execFile, execFileSync, spawn, type ChildProcess, type StdioOptions } from "node:child_process";
import { existsSync, openSync, closeSync, constants } from "node:fs";
import { afterAll, beforeAll } from "vitest";

/** Default time limit of a command run through these helpers. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * True if this process can run privileged tests (root and a usable /dev/net/tun). Otherwise:
 * with PAF_ALLOW_SKIP_PRIVILEGED=1, warn loudly and return false (the caller skips with
 * describe.skipIf(!run)); without it, throw, so the file fails and says why and how to skip.
 */
export function requirePrivileged(): boolean {
  let why = "";
  if (process.getuid?.() !== 0) why = "not running as root (tests create network namespaces and TAP devices)";
  else if (!existsSync("/dev/net/tun")) why = "/dev/net/tun is missing (modprobe tun, or give the container --device /dev/net/tun)";
  else {
    try {
      closeSync(openSync("/dev/net/tun", constants.O_RDWR));
    } catch (e) {
      why = `/dev/net/tun cannot be opened (${(e as Error).message})`;
    }
  }
  if (!why) return true;
  const msg = `privileged test cannot run: ${why}. Run as root (CI does), or set PAF_ALLOW_SKIP_PRIVILEGED=1 to skip these tests.`;
  if (process.env.PAF_ALLOW_SKIP_PRIVILEGED === "1") {
    console.warn(`\n${"!".repeat(100)}\n!!! SKIPPING: ${msg}\n${"!".repeat(100)}\n`);
    return false;
  }
  throw new Error(msg);
}

/** The former name of requirePrivileged(). */
export const privileged = requirePrivileged;

export interface ShResult {
  stdout: string;
  stderr: string;
}

export interface ShOptions {
  /** Kill the command (SIGKILL) after this long and reject. Default 30 s. */
  timeoutMs?: number;
  /** Written to the command's stdin, which is then closed (without it, stdin stays open). */
  input?: string | Uint8Array;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/**
 * Run a command without a shell (use sh("bash", ["-c", ...]) for pipes) and wait for it. Rejects
 * on a non-zero exit or timeout, with the command line, stdout and stderr in the message.
 */
export function sh(cmd: string, args: readonly string[] = [], opts: number | ShOptions = {}): Promise<ShResult> {
  const o: ShOptions = typeof opts === "number" ? { timeoutMs: opts } : opts;
  const timeout = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout, killSignal: "SIGKILL", maxBuffer: 64 * 1024 * 1024, encoding: "utf8", env: o.env ? { ...process.env, ...o.env } : process.env },
      (err, stdout, stderr) => {
        if (!err) return resolve({ stdout, stderr });
        const e = err as Error & { code?: unknown; killed?: boolean; signal?: string };
        const how = e.killed ? `killed after the ${timeout} ms timeout` : `exit ${String(e.code ?? e.signal)}`;
        reject(new Error(`\`${[cmd, ...args].join(" ")}\` failed (${how})\nstdout: ${stdout}\nstderr: ${stderr}`));
      },
    );
    // Without input, stdin stays an open pipe (as it always was here): a command that reads it
    // waits, it does not see EOF.
    if (o.input !== undefined) child.stdin?.end(o.input);
  });
}

/** The synchronous sh(): blocks the event loop, so never use it while our stack must answer. */
export function shSync(cmd: string, args: readonly string[] = [], timeoutMs = DEFAULT_TIMEOUT_MS): string {
  return execFileSync(cmd, args, { timeout: timeoutMs, killSignal: "SIGKILL", encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

let counter = 0;
/** Namespaces of this process not yet destroyed: the exit and signal handlers delete them. */
const live = new Set<Netns>();

function destroyAllSync(): void {
  for (const ns of [...live]) ns.destroySync();
}
process.on("exit", destroyAllSync);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(sig, () => {
    destroyAllSync();
    // Ours was the only handler: die of the signal as we would have without it.
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  });
}

/**
 * A unique interface name (at most 15 bytes, IFNAMSIZ - 1) for this process: prefix (up to 5
 * characters), the pid's last 5 digits and a counter.
 */
export function ifname(prefix = "paf"): string {
  const name = `${prefix.slice(0, 5)}${process.pid % 100000}x${(counter++).toString(36)}`;
  return name.slice(0, 15);
}

export interface SpawnOptions {
  stdio?: "pipe" | "ignore" | "inherit" | StdioOptions;
  /** Kill the process (SIGKILL) after this long; it is killed on destroy() anyway. Default: none. */
  timeoutMs?: number;
  env?: Record<string, string>;
}

export class Netns {
  private readonly children = new Set<ChildProcess>();
  private destroyed = false;
  private constructor(readonly name: string) {}

  /** Create a fresh namespace paf-<tag><pid>-<n> with lo up. */
  static async create(tag = "t"): Promise<Netns> {
    if (!/^[a-z0-9]{0,12}$/i.test(tag)) throw new Error(`Netns tag must be 0..12 letters or digits: ${tag}`);
    const name = `paf-${tag}${process.pid}-${counter++}`;
    await sh("ip", ["netns", "add", name]);
    const ns = new Netns(name);
    live.add(ns);
    try {
      await ns.ip("link", "set", "lo", "up");
    } catch (e) {
      await ns.destroy();
      throw e;
    }
    return ns;
  }

  /** The namespace file, for TapNetif.open(name, { netns: ns.path }). */
  get path(): string {
    return `/var/run/netns/${this.name}`;
  }

  /** `ip -n NAME ...` */
  ip(...args: string[]): Promise<ShResult> {
    return sh("ip", ["-n", this.name, ...args]);
  }

  /** Run a command inside the namespace (`ip netns exec NAME cmd args`) and wait for it. */
  exec(cmd: string, args: readonly string[] = [], opts: number | ShOptions = {}): Promise<ShResult> {
    return sh("ip", ["netns", "exec", this.name, cmd, ...args], opts);
  }

  /** Same as exec(); the name says it does not block the event loop. */
  execAsync(cmd: string, args: readonly string[] = [], opts: number | ShOptions = {}): Promise<ShResult> {
    return this.exec(cmd, args, opts);
  }

  /**
   * Run a command inside the namespace synchronously. It blocks the event loop: only for setup
   * that needs no answer from our stack (sysctl, nft, ip), never for ping/curl towards it.
   */
  execSync(cmd: string, args: readonly string[] = [], timeoutMs = DEFAULT_TIMEOUT_MS): string {
    return shSync("ip", ["netns", "exec", this.name, cmd, ...args], timeoutMs);
  }

  /** Start a background process inside the namespace; it is killed on destroy() (and by timeoutMs). */
  spawn(cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): ChildProcess {
    if (this.destroyed) throw new Error(`namespace ${this.name} is destroyed`);
    const c = spawn("ip", ["netns", "exec", this.name, cmd, ...args], {
      stdio: opts.stdio ?? "pipe",
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
    });
    this.children.add(c);
    const timer = opts.timeoutMs ? setTimeout(() => c.kill("SIGKILL"), opts.timeoutMs) : undefined;
    timer?.unref();
    c.on("exit", () => {
      if (timer) clearTimeout(timer);
      this.children.delete(c);
    });
    c.on("error", () => this.children.delete(c));
    return c;
  }

  /** Bring `ifname` up in this namespace and give it the kernel side's addresses. */
  async kernelSide(ifname: string, v4 = "198.18.0.1/24", v6: string | undefined = "2001:db8::1/64"): Promise<void> {
    await this.ip("link", "set", ifname, "up");
    await this.ip("addr", "add", v4, "dev", ifname);
    if (v6) await this.ip("-6", "addr", "add", v6, "dev", ifname, "nodad");
  }

  /** A permanent neighbour entry, so the kernel sends to `addr` without ARP/NDP. */
  async neigh(ifname: string, addr: string, mac: string): Promise<void> {
    await this.ip("neigh", "replace", addr, "lladdr", mac, "dev", ifname, "nud", "permanent");
  }

  /** Kill the background processes and delete the namespace. Idempotent, never throws. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    const exits = [...this.children].map((c) => new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once("exit", () => r()))));
    for (const c of this.children) c.kill("SIGKILL");
    await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, 2000))]);
    this.children.clear();
    live.delete(this);
    await sh("ip", ["netns", "del", this.name], 10_000).catch((e: Error) => {
      if (existsSync(this.path)) console.warn(`could not delete namespace ${this.name}: ${e.message}`);
    });
  }

  /** destroy() for exit handlers, where nothing asynchronous runs any more. */
  destroySync(): void {
    this.destroyed = true;
    for (const c of this.children) c.kill("SIGKILL");
    this.children.clear();
    live.delete(this);
    try {
      execFileSync("ip", ["netns", "del", this.name], { stdio: "ignore", timeout: 10_000 });
    } catch {
      /* already gone */
    }
  }
}

/** Run `fn` with a fresh namespace that is deleted afterwards, whether `fn` succeeds or throws. */
export async function withNetns<T>(tag: string, fn: (ns: Netns) => Promise<T>): Promise<T> {
  const ns = await Netns.create(tag);
  try {
    return await fn(ns);
  } finally {
    await ns.destroy();
  }
}

/**
 * For a describe block: a namespace created in beforeAll and destroyed in afterAll. Read
 * `ctx.ns` inside tests (not at collection time, when it does not exist yet).
 */
export function useNetns(tag: string): { readonly ns: Netns } {
  let ns: Netns | undefined;
  beforeAll(async () => {
    ns = await Netns.create(tag);
  });
  afterAll(async () => {
    await ns?.destroy();
  });
  return {
    get ns(): Netns {
      if (!ns) throw new Error("useNetns: the namespace exists only inside tests and hooks");
      return ns;
    },
  };
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
    const onExit = (code: number | null, sig: string | null): void =>
      done(() => reject(new Error(`process exited (${code ?? sig}) before printing ${re}; output: ${seen}`)));
    const timer = setTimeout(() => done(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re}; output: ${seen}`))), timeoutMs);
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.on("exit", onExit);
  });
}
