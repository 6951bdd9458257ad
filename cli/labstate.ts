/**
 * `paf lab up NAME` / `paf lab down NAME`: a lab that outlives the command. `up` starts a
 * background paf (`paf lab _hold NAME ...`) that owns the lab (the impairing bridge or the stack
 * runs in it) and writes its pid and state to $PAF_LAB_DIR (default /run/paf/lab):
 * NAME.pid, NAME.json (what was set up), NAME.log (its output). It removes the lab on SIGTERM or
 * when its --ttl runs out; `down` sends that SIGTERM, and removes what is left if it died.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../lab/shell.js";
import { removeNetns } from "../lab/netns.js";
import { startLab } from "./labnet.js";
import type { LabArgs } from "./lab.js";

/** How long `up` waits for the background process to have the lab ready. */
const UP_WAIT_MS = 30_000;
/** How long `down` waits for the background process to remove the lab after SIGTERM, before SIGKILL. */
const DOWN_WAIT_MS = 10_000;

interface LabState {
  name: string;
  pid: number;
  namespaces: string[];
  description: string[];
  seed: number;
  expires: string;
}

const stateDir = (): string => process.env.PAF_LAB_DIR || "/run/paf/lab";
const files = (name: string) => {
  const d = stateDir();
  return { pid: join(d, `${name}.pid`), json: join(d, `${name}.json`), log: join(d, `${name}.log`) };
};
const names = (name: string) => ({ client: `paf-${name}`, peer: `paf-${name}-peer` });

function readState(name: string): LabState | undefined {
  try {
    return JSON.parse(readFileSync(files(name).json, "utf8")) as LabState;
  } catch {
    return undefined;
  }
}

/** Is `pid` alive and our `paf lab _hold NAME` (not a process that reused the pid)? */
function isHolder(pid: number, name: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return argv.includes("_hold") && argv.includes(name);
  } catch {
    return false;
  }
}

export async function labUp(args: LabArgs, rawArgv: string[]): Promise<number> {
  const name = args.name!;
  const f = files(name);
  const old = readState(name);
  if (old && isHolder(old.pid, name)) {
    console.error(`paf: lab ${name} is already up (pid ${old.pid}); paf lab down ${name} first`);
    return 1;
  }
  if (old) await removeLeftovers(name, old.namespaces);
  mkdirSync(stateDir(), { recursive: true });
  const log = openSync(f.log, "w");
  const child = spawn(process.execPath, [process.argv[1]!, "lab", "_hold", ...rawArgv], { detached: true, stdio: ["ignore", log, log] });
  closeSync(log);
  child.unref();
  let exited: string | undefined;
  child.once("exit", (code, sig) => (exited = `exit ${code ?? sig}`));
  try {
    await waitFor(
      () => {
        if (exited) throw new Error(exited);
        return readState(name)?.pid === child.pid;
      },
      `lab ${name}`,
      UP_WAIT_MS,
      50,
    );
  } catch (e) {
    if (!exited) child.kill("SIGTERM");
    console.error(`paf: lab ${name} did not come up (${(e as Error).message}):\n${readFileSync(f.log, "utf8")}`);
    return 1;
  }
  const st = readState(name)!;
  for (const l of st.description) console.log(l);
  console.log(`lab ${name} is up: pid ${st.pid} (${f.pid}), removes itself at ${st.expires}`);
  console.log(`run commands with: ip netns exec ${st.namespaces[0]} CMD; remove it with: paf lab down ${name}`);
  return 0;
}

/** The background process of `paf lab up`: owns the lab until SIGTERM/SIGINT/SIGHUP or the TTL. */
export async function labHold(args: LabArgs): Promise<number> {
  const name = args.name!;
  const f = files(name);
  const running = await startLab(args.lab, names(name));
  const state: LabState = {
    name,
    pid: process.pid,
    namespaces: running.namespaces,
    description: running.description,
    seed: running.lab.seed,
    expires: new Date(Date.now() + args.ttlMs).toISOString(),
  };
  writeFileSync(f.pid, `${process.pid}\n`);
  // The state file appears last and whole (rename): `up` takes it as "ready".
  writeFileSync(`${f.json}.tmp`, JSON.stringify(state, null, 2));
  renameSync(`${f.json}.tmp`, f.json);
  for (const l of running.description) console.log(l);
  const why = await new Promise<string>((resolve) => {
    const ttl = setTimeout(() => resolve(`its --ttl of ${args.ttlMs} ms ran out`), args.ttlMs);
    for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"] as const)
      process.once(sig, () => {
        clearTimeout(ttl);
        resolve(sig);
      });
  });
  console.log(`stopping (${why})`);
  for (const l of running.report()) console.log(l);
  await running.close();
  rmSync(f.json, { force: true });
  rmSync(f.pid, { force: true });
  console.log(`removed ${running.namespaces.join(", ")}`);
  return 0;
}

export async function labDown(args: LabArgs): Promise<number> {
  const name = args.name!;
  const st = readState(name);
  const guess = Object.values(names(name)).filter((n) => existsSync(`/var/run/netns/${n}`));
  if (!st && guess.length === 0) {
    console.error(`paf: no lab named ${name} (no ${files(name).json}, no namespace paf-${name})`);
    return 1;
  }
  if (st && isHolder(st.pid, name)) {
    process.kill(st.pid, "SIGTERM");
    try {
      await waitFor(() => !isHolder(st.pid, name), `lab ${name} (pid ${st.pid}) to stop`, DOWN_WAIT_MS, 50);
    } catch {
      console.error(`paf: lab ${name} (pid ${st.pid}) did not stop within ${DOWN_WAIT_MS} ms: killed`);
      process.kill(st.pid, "SIGKILL");
    }
  }
  const left = await removeLeftovers(name, st?.namespaces ?? guess);
  console.log(`removed lab ${name}${left.length ? ` (cleaned up after it: ${left.join(", ")})` : ""}`);
  return 0;
}

/** Delete what a dead holder left: its namespaces (and every process in them) and its files. Returns the namespaces deleted. */
async function removeLeftovers(name: string, namespaces: string[]): Promise<string[]> {
  const removed: string[] = [];
  for (const ns of namespaces) if (await removeNetns(ns)) removed.push(ns);
  const f = files(name);
  rmSync(f.json, { force: true });
  rmSync(f.pid, { force: true });
  return removed;
}
