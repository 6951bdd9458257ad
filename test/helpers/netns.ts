/**
 * Network namespaces for tests that need the Linux kernel as a peer (TAP, ping, curl, socat ...):
 * a thin layer over paf's lab (lab/netns.ts, lab/shell.ts, the supported API), plus what only
 * vitest needs (useNetns, requirePrivileged).
 *
 * Rules these helpers keep, so tests can't leak traffic or state onto the machine:
 *  - every namespace is created here, named paf-<tag><pid>-<n>, and deleted by destroy(), by
 *    useNetns()'s afterAll, on process exit and on SIGINT/SIGTERM (and by .ci/run before a run);
 *  - nothing is configured in the root namespace: the kernel side of a TAP lives in the namespace
 *    (TapNetif.open(name, { netns: ns.path })), addresses come from 198.18.0.0/15 and 2001:db8::/32;
 *  - every command has a timeout, every background process is killed on cleanup (with every
 *    other process left inside the namespace).
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
 * or, for one test: `await withNetns("x", async (ns) => { ... })`; for TAPs, stacks, bridges and
 * faults made and removed together, the Lab (lab/lab.ts).
 */
import { existsSync, openSync, closeSync, constants } from "node:fs";
import { afterAll, beforeAll } from "vitest";
import type { ChildProcess } from "node:child_process";
import { Netns } from "../../lab/netns.js";
import { waitForOutput } from "../../lab/shell.js";

export { Netns, withNetns, type SpawnOptions } from "../../lab/netns.js";
export { DEFAULT_TIMEOUT_MS, sh, shSync, waitFor, waitForOutput, type ShOptions, type ShResult } from "../../lab/shell.js";
export { ifname } from "../../lab/names.js";

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

/**
 * dnsmasq as the DNS server for `.test` names inside `ns`: no DHCP, no upstream, no hosts or
 * config files, bound to `listen` (addresses in the namespace) on port 53, answering `records`
 * (dnsmasq options such as "--host-record=web.test,198.18.0.1,60" or "--cname=www.test,host.test"),
 * logging to its stdout (every query with `logQueries`). Resolves once it says it has started; it
 * dies with the namespace, or after `timeoutMs`, or when the caller kills it.
 */
export async function dnsServer(ns: Netns, listen: readonly string[], records: readonly string[], opts: { logQueries?: boolean; timeoutMs?: number } = {}): Promise<ChildProcess> {
  const args = [
    "--no-daemon",
    "--conf-file=/dev/null",
    "--pid-file=",
    "--no-resolv",
    "--no-hosts",
    "--port=53",
    ...listen.map((a) => `--listen-address=${a}`),
    "--bind-interfaces",
    "--log-facility=-",
  ];
  if (opts.logQueries) args.push("--log-queries");
  const c = ns.spawn("/usr/sbin/dnsmasq", [...args, "--local=/test/", ...records], { timeoutMs: opts.timeoutMs ?? 300_000 });
  await waitForOutput(c, /started, version/);
  return c;
}
