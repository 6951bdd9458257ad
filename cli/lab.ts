/**
 * `paf lab run|up|down`: a network namespace whose path to a peer (a paf stack, or a second
 * kernel routed through paf) is impaired in user space, with netem's and tbf's knobs, where the
 * kernel has no netem. `run` runs one command there and cleans up; `up` leaves a named lab
 * running in the background; `down` removes it.
 */
import { constants as osConstants } from "node:os";
import { parse, intOption, UsageError } from "./args.js";
import { parseDuration, parsePercent, parseRate, parseSize } from "../lab/units.js";
import type { FaultSpec } from "../stack/netif/faulty.js";
import { startLab, type LabConfig } from "./labnet.js";
import { labDown, labHold, labUp } from "./labstate.js";

/** Default time limit of the command of `paf lab run`. */
const DEFAULT_RUN_TIMEOUT = "300s";
/** Default lifetime of a lab started by `paf lab up`. */
const DEFAULT_TTL = "1h";
/** Exit status of `paf lab run` when the command ran out of time (as timeout(1)). */
const EXIT_TIMEOUT = 124;

export const LAB_USAGE = `usage: paf lab run [options] [--] CMD [ARG...]
       paf lab up NAME [options]
       paf lab down NAME

A network namespace whose kernel (198.18.0.1, 2001:db8::1) reaches a peer (198.18.0.2,
2001:db8::2) over a path paf impairs in user space (no netem needed), seeded so a run replays.
  run       set the lab up, run CMD in the namespace, print what was set up and what the path
            did, remove everything; exits with CMD's status (${EXIT_TIMEOUT} if it ran out of time)
  up NAME   set the lab up in the background (namespaces paf-NAME and, with --peer kernel,
            paf-NAME-peer); its pid and state go to $PAF_LAB_DIR (default /run/paf/lab)
  down NAME stop it and remove everything it made

The peer:
  --peer stack|kernel  stack (default): a paf stack on the namespace's TAP, serving the demo app
                       on HTTP port 80 (GET /bytes/N ...) and echo 7, discard 9, chargen 19;
                       kernel: a second kernel in its own namespace, joined to the first at
                       layer 2 through paf's bridge (the impairments apply to every frame)
  --server CMD         with --peer kernel: run CMD (sh -c) in the peer's namespace first and wait
                       (up to 10 s) until it listens, e.g. --server "python3 -m http.server 80"

The path (each knob applies to each direction; --delay is one way, a round trip adds it twice):
  --loss P%            random loss (netem loss random; nft numgen random)
  --loss-ge P%,R%[,1-H%[,1-K%]]
                       bursty loss, Gilbert-Elliott as netem's "loss gemodel": P good->bad,
                       R bad->good, 1-H loss in the bad state (100%), 1-K in the good one (0%)
  --duplicate P%       deliver P% of frames twice
  --reorder P%[,TIME]  hold P% of frames back behind the next one (or TIME, default 10ms)
  --corrupt P%         flip one random bit past the Ethernet header of P% of frames
  --delay TIME[,JITTER] one-way delay, plus a uniform random 0..JITTER (which reorders, as netem's)
  --rate RATE          bottleneck as tbf's rate: 100mbit, 1gbit, 500kbit (mbps = megabytes/s)
  --burst SIZE         tbf's burst: bytes that pass at line speed after an idle spell (default 0:
                       every frame waits its own serialisation time)
  --queue N            frames waiting for the rate limiter, more are dropped (default 100)
  --limit N            frames held at once per direction (delay line; default 1000, as netem)
  --seed N             seed of the random draws (default: random, printed); the same seed and
                       the same traffic drop the same frames
  --mtu N              MTU of the links (default 1500)

Capture and limits:
  --pcap FILE          record the frames on the command's wire (as its kernel sees them)
  --pcap-peer FILE     record the peer's side (what the stack sees / the peer kernel's wire)
  --timeout TIME       run: kill CMD (SIGKILL) after TIME (default ${DEFAULT_RUN_TIMEOUT})
  --ttl TIME           up: remove the lab by itself after TIME (default ${DEFAULT_TTL}); also the
                       time limit of --server
Times: 40ms, 1.5s, 2m, 1h. Example:
  paf lab run --loss 3% --delay 40ms --rate 100mbit -- curl -so /dev/null http://198.18.0.2/bytes/1000000`;

const OPTIONS = {
  peer: { type: "string" },
  server: { type: "string" },
  loss: { type: "string" },
  "loss-ge": { type: "string" },
  duplicate: { type: "string" },
  reorder: { type: "string" },
  corrupt: { type: "string" },
  delay: { type: "string" },
  rate: { type: "string" },
  burst: { type: "string" },
  queue: { type: "string" },
  limit: { type: "string" },
  seed: { type: "string" },
  mtu: { type: "string" },
  pcap: { type: "string" },
  "pcap-peer": { type: "string" },
  timeout: { type: "string" },
  ttl: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

export interface LabArgs {
  lab: LabConfig;
  /** run: the command and its arguments. */
  command: string[];
  /** up/down: the lab's name. */
  name: string | undefined;
  timeoutMs: number;
  ttlMs: number;
}

export async function labCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case "run":
      return run(parseLabArgs("run", rest));
    case "up":
      return labUp(parseLabArgs("up", rest), rest);
    case "down":
      return labDown(parseLabArgs("down", rest));
    case "_hold": // the background process of `paf lab up`
      return labHold(parseLabArgs("up", rest));
    case undefined:
    case "help":
    case "--help":
    case "-h":
      throw new UsageError(LAB_USAGE);
    default:
      throw new UsageError(`paf lab: unknown subcommand "${sub}" (expected run, up or down)\n${LAB_USAGE}`);
  }
}

export function parseLabArgs(sub: "run" | "up" | "down", argv: string[]): LabArgs {
  const [ours, command] = sub === "run" ? splitCommand(argv) : [argv, []];
  const { values, positionals } = parse(ours, OPTIONS, true);
  if (values.help) throw new UsageError(LAB_USAGE);
  let name: string | undefined;
  if (sub === "run") {
    if (positionals.length) throw new UsageError(`paf lab run: unexpected "${positionals[0]}" before --`);
    if (command.length === 0) throw new UsageError("paf lab run needs a command: paf lab run [options] -- CMD [ARG...]");
  } else {
    if (positionals.length !== 1) throw new UsageError(`paf lab ${sub} needs exactly one NAME`);
    name = positionals[0]!;
    if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(name)) throw new UsageError(`NAME: "${name}" must be 1-32 lower-case letters, digits or "-", starting with a letter or digit`);
    if (sub === "down") {
      const extra = Object.keys(values).filter((k) => k !== "help");
      if (extra.length) throw new UsageError(`paf lab down takes only NAME (got --${extra[0]})`);
    }
  }
  const peer = values.peer ?? "stack";
  if (peer !== "stack" && peer !== "kernel") throw new UsageError(`--peer: expected stack or kernel, got "${peer}"`);
  if (values.server !== undefined && peer !== "kernel") throw new UsageError("--server needs --peer kernel (with --peer stack the peer is paf's own stack)");
  if (sub === "run" && values.ttl !== undefined) throw new UsageError("--ttl is for paf lab up (paf lab run has --timeout)");
  if (sub === "up" && values.timeout !== undefined) throw new UsageError("--timeout is for paf lab run (paf lab up has --ttl)");
  const ttlMs = duration("ttl", values.ttl ?? DEFAULT_TTL);
  return {
    lab: {
      peer,
      server: values.server,
      faults: parseFaults(values),
      seed: values.seed === undefined ? undefined : intOption("seed", values.seed, 0, 0xffffffff, 0),
      pcap: values.pcap,
      pcapPeer: values["pcap-peer"],
      mtu: values.mtu === undefined ? undefined : intOption("mtu", values.mtu, 1280, 9000, 1500),
      serverTimeoutMs: sub === "run" ? duration("timeout", values.timeout ?? DEFAULT_RUN_TIMEOUT) : ttlMs,
    },
    command,
    name,
    timeoutMs: duration("timeout", values.timeout ?? DEFAULT_RUN_TIMEOUT),
    ttlMs,
  };
}

/** Our options, and the command: everything after "--", or from the first word that is no option or option value. */
function splitCommand(argv: string[]): [string[], string[]] {
  const dd = argv.indexOf("--");
  if (dd >= 0) return [argv.slice(0, dd), argv.slice(dd + 1)];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("-")) return [argv.slice(0, i), argv.slice(i)];
    const key = a.replace(/^--?/, "").split("=")[0]!;
    const o = (OPTIONS as Record<string, { type: string }>)[key];
    if (o?.type === "string" && !a.includes("=")) i++;
  }
  return [argv, []];
}

type Values = Partial<Record<keyof typeof OPTIONS, string | boolean>>;

/** The path's impairments from --loss ... --limit; errors name the option. */
export function parseFaults(values: Values): FaultSpec {
  const s: FaultSpec = {};
  const str = (k: keyof typeof OPTIONS): string | undefined => values[k] as string | undefined;
  const num = <T>(k: keyof typeof OPTIONS, f: (v: string) => T, v = str(k)): T | undefined => {
    if (v === undefined) return undefined;
    try {
      return f(v);
    } catch (e) {
      throw new UsageError(`--${k}: ${(e as Error).message}`);
    }
  };
  const loss = num("loss", parsePercent);
  if (loss) s.drop = loss;
  const ge = str("loss-ge");
  if (ge !== undefined) {
    const parts = ge.split(",");
    if (parts.length < 2 || parts.length > 4) throw new UsageError(`--loss-ge: expected P%,R%[,1-H%[,1-K%]], got "${ge}"`);
    const [p, r, bad, good] = parts.map((x) => num("loss-ge", parsePercent, x)!);
    if (r === 0) throw new UsageError("--loss-ge: R (bad -> good) must be more than 0%, or the loss never ends");
    s.gilbertElliott = { p: p!, r: r!, ...(bad !== undefined ? { lossBad: bad } : {}), ...(good !== undefined ? { lossGood: good } : {}) };
  }
  const dup = num("duplicate", parsePercent);
  if (dup) s.duplicate = dup;
  const reorder = str("reorder");
  if (reorder !== undefined) {
    const [p, t] = reorder.split(",");
    s.reorder = num("reorder", parsePercent, p)!;
    if (t !== undefined) s.reorderDelayMs = num("reorder", parseDuration, t)!;
  }
  const corrupt = num("corrupt", parsePercent);
  if (corrupt) s.corrupt = corrupt;
  const delay = str("delay");
  if (delay !== undefined) {
    const [d, j] = delay.split(",");
    s.delayMs = num("delay", parseDuration, d)!;
    if (j !== undefined) s.jitterMs = num("delay", parseDuration, j)!;
  }
  const rate = num("rate", parseRate);
  if (rate) s.rateBps = rate;
  const burst = num("burst", parseSize);
  if (burst !== undefined) {
    if (!rate) throw new UsageError("--burst needs --rate");
    s.burstBytes = burst;
  }
  const queue = str("queue");
  if (queue !== undefined) {
    if (!rate) throw new UsageError("--queue needs --rate (it bounds the rate limiter's queue)");
    s.queueLimit = intOption("queue", queue, 1, 1_000_000, 100);
  }
  const limit = str("limit");
  if (limit !== undefined) s.limit = intOption("limit", limit, 1, 1_000_000, 1000);
  return s;
}

function duration(name: string, v: string): number {
  // tc's times, plus minutes and hours for lifetimes.
  const m = /^(\d+(?:\.\d+)?)(m|min|h)$/.exec(v);
  let ms: number;
  if (m) ms = Number(m[1]) * (m[2] === "h" ? 3_600_000 : 60_000);
  else {
    try {
      ms = parseDuration(v);
    } catch (e) {
      throw new UsageError(`--${name}: ${(e as Error).message}`);
    }
  }
  if (ms <= 0) throw new UsageError(`--${name} must be more than 0`);
  return ms;
}

/** `paf lab run`: set up, run the command (time-limited), report, remove everything. */
async function run(args: LabArgs): Promise<number> {
  const say = (line: string): boolean => process.stderr.write(`paf lab: ${line}\n`);
  const running = await startLab(args.lab);
  let code = 1;
  try {
    for (const l of running.description) say(l);
    say(`running: ${args.command.join(" ")}`);
    // The namespace's own limit is only a safety net behind ours, which says why it was killed.
    const child = running.client.spawn(args.command[0]!, args.command.slice(1), { stdio: "inherit", timeoutMs: args.timeoutMs + 5000 });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, args.timeoutMs);
    // A signal to paf ends the command (the namespaces' own handler has killed it already) and
    // the lab is removed as after a normal end; paf then exits as a shell would, 128 + signal.
    let interrupted: NodeJS.Signals | undefined;
    const stop = (sig: NodeJS.Signals): void => {
      interrupted = sig;
      child.kill("SIGTERM");
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    code = await new Promise<number>((resolve) => {
      child.once("error", (e) => {
        say(`cannot run ${args.command[0]}: ${e.message}`);
        resolve(127);
      });
      child.once("exit", (c, sig) => resolve(c ?? 128 + (sig ? signalNumber(sig) : 0)));
    });
    clearTimeout(timer);
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    say(`${args.command[0]} exited with status ${code}`);
    if (interrupted) {
      say(`interrupted by ${interrupted}`);
      code = 128 + signalNumber(interrupted);
    } else if (timedOut) {
      say(`${args.command[0]} ran out of time (--timeout ${args.timeoutMs} ms) and was killed`);
      code = EXIT_TIMEOUT;
    }
    for (const l of running.report()) say(l);
  } finally {
    await running.close();
    say(`removed ${running.namespaces.join(", ")}`);
  }
  return code;
}

const signalNumber = (sig: NodeJS.Signals): number => osConstants.signals[sig] ?? 0;
