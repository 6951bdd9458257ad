// Shared helpers for `make bench`: namespaces, veth/TAP setup, running the load tools.
// All traffic stays in namespaces created here (paf-b*), removed at the end, also on failure.
import { execFile, execFileSync, spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import { promisify } from "node:util";
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const execFileP = promisify(execFile);
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/**
 * The V8 flags the `paf` command starts with (its first line, cli/main.ts; README "Tuning V8"),
 * given to every Node process a bench starts, paf's and the kernel baseline's alike, and to the
 * bench itself (its TCP rows run the stack in-process). PAF_BENCH_V8_FLAGS="" (or other flags)
 * for A/B runs.
 */
export const V8_FLAGS = (process.env.PAF_BENCH_V8_FLAGS ?? "--initial-old-space-size=64").split(" ").filter(Boolean);
const live = new Set();

export async function sh(cmd, args, timeoutMs = 60_000) {
  const r = await execFileP(cmd, args, { timeout: timeoutMs, maxBuffer: 64 << 20, encoding: "utf8" });
  return r.stdout;
}

export async function netns(tag) {
  const name = `paf-b${tag}${process.pid % 10000}`;
  await sh("ip", ["netns", "del", name]).catch(() => {});
  await sh("ip", ["netns", "add", name]);
  await sh("ip", ["-n", name, "link", "set", "lo", "up"]);
  live.add(name);
  return name;
}

/** Processes a bench started: killed by cleanup() whatever happened (a failed run leaves none behind). */
const children = new Set();
export function track(child) {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

export function cleanup() {
  for (const c of children) c.kill("SIGKILL");
  children.clear();
  for (const n of live) {
    try {
      // Whatever still runs inside (servers, floods) goes with its namespace.
      const pids = execFileSync("ip", ["netns", "pids", n], { encoding: "utf8" }).split("\n").filter(Boolean);
      for (const pid of pids) {
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {}
      }
      execFileSync("ip", ["netns", "del", n], { stdio: "ignore" });
    } catch {}
  }
  live.clear();
}
process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

/** Two namespaces joined by a veth pair: the kernel-to-kernel reference path. */
export async function vethPair(tag, a4 = "198.18.1.1/24", b4 = "198.18.1.2/24") {
  const A = await netns(tag + "a");
  const B = await netns(tag + "b");
  await sh("ip", ["link", "add", "pafva", "netns", A, "type", "veth", "peer", "name", "pafvb", "netns", B]);
  await sh("ip", ["-n", A, "addr", "add", a4, "dev", "pafva"]);
  await sh("ip", ["-n", B, "addr", "add", b4, "dev", "pafvb"]);
  await sh("ip", ["-n", A, "link", "set", "pafva", "up"]);
  await sh("ip", ["-n", B, "link", "set", "pafvb", "up"]);
  return { A, B };
}

/** Run a command in a namespace; resolves with its stdout's last JSON line (parsed) or text. */
export function nsRun(ns, cmd, args, timeoutMs = 120_000) {
  return new Promise((resolve, reject) => {
    const c = spawn("ip", ["netns", "exec", ns, cmd, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    const t = setTimeout(() => c.kill("SIGKILL"), timeoutMs);
    c.stdout.on("data", (d) => (out += d));
    c.stderr.on("data", (d) => (err += d));
    c.on("close", (code, signal) => {
      clearTimeout(t);
      if (code !== 0) return reject(new Error(`${cmd} ${args.join(" ")} exited ${code ?? signal}: ${err}`));
      const last = out.trim().split("\n").pop() ?? "";
      try {
        resolve(JSON.parse(last));
      } catch {
        resolve(out);
      }
    });
  });
}

/** Compile the C load tool once (a benchmark-only helper, not part of paf). */
export function udpbench() {
  const bin = join(ROOT, "build", "udpbench");
  const src = join(ROOT, "scripts", "bench", "udpbench.c");
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(dirname(bin), { recursive: true });
    execFileSync("gcc", ["-O2", "-o", bin, src]);
  }
  return bin;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The requests per second in wrk's report (0 if it has none). */
export const wrkRps = (out) => Number(/Requests\/sec:\s+([\d.]+)/.exec(String(out))?.[1] ?? 0);

/** The number of requests wrk's report counts (0 if it has none). */
export const wrkRequests = (out) => Number(/(\d+) requests in/.exec(String(out))?.[1] ?? 0);

/**
 * A receiver started in namespace `ns` (`argv`: `udpbench tcpsink PORT SECS`, node-tcp.mjs's
 * sink) that prints "ready" once listening and a JSON line when its transfer is done: `isReady`
 * settles at the first (or fails if it exits before), `done` with the parsed last line.
 */
export function receiverIn(ns, argv) {
  const c = spawn("ip", ["netns", "exec", ns, ...argv], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  const what = argv.slice(0, 2).join(" ");
  const done = new Promise((resolve, reject) => c.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out.trim().split("\n").pop())) : reject(new Error(`${what} exited ${code}`)))));
  const isReady = new Promise((resolve, reject) => {
    c.stdout.on("data", (d) => {
      out += d;
      if (out.includes("ready")) resolve();
    });
    done.then(() => reject(new Error(`${what} exited before it was ready`)), reject);
  });
  return { isReady, done };
}

/**
 * A process's main thread as the kernel's scheduler saw it (/proc/PID/task/PID/schedstat):
 * ns on a CPU, ns runnable but waiting for one; undefined once the process is gone.
 */
export function schedstat(pid) {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, "utf8").trim().split(/\s+/).map(Number);
    return { run, wait };
  } catch {
    return undefined;
  }
}

/**
 * A `paf serve` child process: `ready` resolves at its "listening" line (rejects after 20 s),
 * `stop()` sends SIGTERM (SIGKILL 3 s later) and resolves once it has exited.
 */
export function serveHandle(child) {
  let out = "";
  const ready = new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`paf serve not ready: ${out}`)), 20_000);
    const on = (d) => {
      out += d;
      if (/^listening/m.test(out)) {
        clearTimeout(t);
        resolve();
      }
    };
    child.stdout.on("data", on);
    child.stderr.on("data", on);
  });
  return {
    child,
    ready,
    /** Everything it printed so far (stdout and stderr). */
    output: () => out,
    stop: () =>
      new Promise((r) => {
        if (child.exitCode !== null) return r();
        child.on("exit", r);
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 3000).unref();
      }),
  };
}

/** Write `total` bytes of `block` (repeated) to a writable stream, waiting for 'drain' when asked, then end() it. */
export function writeBytes(stream, total, block) {
  let left = total;
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, block.length);
      left -= n;
      if (!stream.write(n === block.length ? block : block.subarray(0, n))) return void stream.once("drain", pump);
    }
    stream.end();
  };
  pump();
}

/** Connect `stack` to host:port, write `total` bytes (64 KiB blocks) and end; resolves once the flow has closed. */
export async function sendBytes(stack, host, port, total) {
  const f = await stack.tcp.connect({ host, port });
  await new Promise((resolve, reject) => {
    f.on("error", reject);
    f.on("close", resolve);
    f.resume();
    writeBytes(f, total, Buffer.alloc(1 << 16, 0x61));
  });
}

/** CPUs this process may run on, and whether single processes can be pinned to one (taskset). */
export function pinnableCpus() {
  try {
    execFileSync("taskset", ["-c", "0", "true"], { stdio: "ignore" });
  } catch {
    return [];
  }
  return Array.from({ length: availableParallelism() }, (_, i) => i);
}

/** The command line that runs `cmd args` on CPU `cpu` alone (unpinned when `cpu` is undefined). */
export function pinned(cpu, cmd, args) {
  return cpu === undefined ? [cmd, args] : ["taskset", ["-c", String(cpu), cmd, ...args]];
}

// A fixed piece of work (array reads, writes and small allocations), timed on one CPU.
const SPIN = `const t = performance.now(); let x = 0; const a = new Float64Array(1 << 16);
for (let i = 0; i < 6e7; i++) { x += a[(i * 2654435761) & 65535]; a[i & 65535] = x * 1e-9; }
const b = []; for (let i = 0; i < 6e5; i++) b.push({ i });
console.log(performance.now() - t);`;

/**
 * How long the same work takes on each CPU (ms). On a VM the virtual CPUs need not be equally
 * fast: on this project's 2-core machine one ran the work 1.4x slower than the other for a while
 * (and a whole tenants run 2-3x slower), and a process mostly stays on the CPU it started on.
 */
export function cpuCheck() {
  return pinnableCpus().map((cpu) => Number(execFileSync("taskset", ["-c", String(cpu), process.execPath, "-e", SPIN], { encoding: "utf8" }).trim()));
}
