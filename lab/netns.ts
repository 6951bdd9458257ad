/**
 * A network namespace owned by this process: created with a unique name (or a given one), lo up,
 * and deleted by destroy(), or, if the process ends first, on exit and on SIGINT/SIGTERM/SIGHUP.
 * Deleting it first kills every process inside it (`ip netns pids`), the ones started through
 * spawn() and whatever they started, so nothing outlives it.
 */
import { execFileSync, spawn, type ChildProcess, type StdioOptions } from "node:child_process";
import { existsSync } from "node:fs";
import { DEFAULT_TIMEOUT_MS, sh, shSync, type ShOptions, type ShResult } from "./shell.js";
import { atProcessEnd } from "./reaper.js";
import { netnsName } from "./names.js";

/** Default time limit of a process started with Netns.spawn(). */
export const DEFAULT_SPAWN_TIMEOUT_MS = 600_000;
/** destroy() waits this long at most for killed processes to exit before deleting the namespace. */
const KILL_WAIT_MS = 2000;

export interface SpawnOptions {
  stdio?: "pipe" | "ignore" | "inherit" | StdioOptions;
  /** Kill the process (SIGKILL) after this long; it is killed on destroy() anyway. Default 10 min (DEFAULT_SPAWN_TIMEOUT_MS). */
  timeoutMs?: number;
  env?: Record<string, string>;
}

export class Netns {
  private readonly children = new Set<ChildProcess>();
  private destroyed = false;
  private readonly forget: () => void;

  private constructor(readonly name: string) {
    this.forget = atProcessEnd(() => this.destroySync());
  }

  /** Create a fresh namespace named paf-<tag><pid>-<n> (tag: up to 12 letters or digits), lo up. */
  static create(tag = "t"): Promise<Netns> {
    return Netns.createNamed(netnsName(tag));
  }

  /** Create a namespace with exactly this name (fails if it exists), lo up. */
  static async createNamed(name: string): Promise<Netns> {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new TypeError(`invalid namespace name "${name}"`);
    await sh("ip", ["netns", "add", name]);
    const ns = new Netns(name);
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

  /** Run a command inside the namespace (`ip netns exec NAME cmd args`) and wait for it (30 s limit by default). */
  exec(cmd: string, args: readonly string[] = [], opts: number | ShOptions = {}): Promise<ShResult> {
    return sh("ip", ["netns", "exec", this.name, cmd, ...args], opts);
  }

  /** Same as exec(); the name says it does not block the event loop. */
  execAsync(cmd: string, args: readonly string[] = [], opts: number | ShOptions = {}): Promise<ShResult> {
    return this.exec(cmd, args, opts);
  }

  /**
   * Run a command inside the namespace synchronously. It blocks the event loop: only for setup
   * that needs no answer from a stack of this process (sysctl, nft, ip), never for ping/curl towards it.
   */
  execSync(cmd: string, args: readonly string[] = [], timeoutMs = DEFAULT_TIMEOUT_MS): string {
    return shSync("ip", ["netns", "exec", this.name, cmd, ...args], timeoutMs);
  }

  /** Start a background process inside the namespace; it is killed on destroy() and after timeoutMs. */
  spawn(cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): ChildProcess {
    if (this.destroyed) throw new Error(`namespace ${this.name} is destroyed`);
    const c = spawn("ip", ["netns", "exec", this.name, cmd, ...args], {
      stdio: opts.stdio ?? "pipe",
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
    });
    this.children.add(c);
    const timer = setTimeout(() => c.kill("SIGKILL"), opts.timeoutMs ?? DEFAULT_SPAWN_TIMEOUT_MS);
    timer.unref();
    c.on("exit", () => {
      clearTimeout(timer);
      this.children.delete(c);
    });
    c.on("error", () => {
      clearTimeout(timer);
      this.children.delete(c);
    });
    return c;
  }

  /** Bring `ifname` up in this namespace and give it the kernel side's addresses (IPv6 without DAD; "" for none). */
  async kernelSide(ifname: string, v4: string | undefined = "198.18.0.1/24", v6: string | undefined = "2001:db8::1/64"): Promise<void> {
    await this.ip("link", "set", ifname, "up");
    if (v4) await this.ip("addr", "add", v4, "dev", ifname);
    if (v6) await this.ip("-6", "addr", "add", v6, "dev", ifname, "nodad");
  }

  /** A permanent neighbour entry, so the kernel sends to `addr` without ARP/NDP. */
  async neigh(ifname: string, addr: string, mac: string): Promise<void> {
    await this.ip("neigh", "replace", addr, "lladdr", mac, "dev", ifname, "nud", "permanent");
  }

  /** Process ids inside the namespace (`ip netns pids`), ours or not. */
  pids(): Promise<number[]> {
    return pidsIn(this.name);
  }

  /** Kill every process inside, then delete the namespace. Idempotent, never throws. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    const exits = [...this.children].map((c) => new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once("exit", () => r()))));
    for (const c of this.children) c.kill("SIGKILL");
    killAll(await pidsIn(this.name));
    await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, KILL_WAIT_MS))]);
    this.children.clear();
    await removeNetns(this.name).catch((e: Error) => console.warn(`could not delete namespace ${this.name}: ${e.message}`));
    this.forget();
  }

  /** destroy() for exit handlers, where nothing asynchronous runs any more. */
  destroySync(): void {
    this.destroyed = true;
    for (const c of this.children) c.kill("SIGKILL");
    this.children.clear();
    try {
      killAll(parsePids(execFileSync("ip", ["netns", "pids", this.name], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 10_000 })));
    } catch {
      /* gone already */
    }
    try {
      execFileSync("ip", ["netns", "del", this.name], { stdio: "ignore", timeout: 10_000 });
    } catch {
      /* already gone */
    }
    this.forget();
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
 * Delete namespace `name`, made by anyone (a lab whose process died): kill every process inside,
 * then remove it. Resolves false if it did not exist.
 */
export async function removeNetns(name: string): Promise<boolean> {
  if (!existsSync(`/var/run/netns/${name}`)) return false;
  killAll(await pidsIn(name));
  await sh("ip", ["netns", "del", name], 10_000);
  return true;
}

async function pidsIn(name: string): Promise<number[]> {
  const { stdout } = await sh("ip", ["netns", "pids", name], 10_000).catch(() => ({ stdout: "" }));
  return parsePids(stdout);
}

function parsePids(text: string): number[] {
  return text
    .split(/\s+/)
    .filter((s) => /^\d+$/.test(s))
    .map(Number)
    .filter((p) => p !== process.pid);
}

function killAll(pids: number[]): void {
  for (const p of pids) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      /* exited meanwhile */
    }
  }
}
