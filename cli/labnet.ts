/**
 * The lab `paf lab run` and `paf lab up` set up: a namespace whose kernel (198.18.0.1,
 * 2001:db8::1) reaches a peer at 198.18.0.2 / 2001:db8::2 over an impaired path. The peer is a
 * paf stack serving the demo app and the classic services, or a second kernel in its own
 * namespace, joined through paf's impairing bridge, where a server command may run.
 */
import type { ChildProcess } from "node:child_process";
import { Lab } from "../lab/lab.js";
import type { Netns } from "../lab/netns.js";
import { waitFor } from "../lab/shell.js";
import { describeFaults } from "../lab/units.js";
import type { FaultSpec, FaultStats } from "../stack/netif/faulty.js";
import { serve as serveHttp } from "../http/serve.js";
import { stackListener } from "../http/listener.js";
import { httpService } from "../http/services.js";
import { demoApp } from "../http/app.js";
import { startServices } from "./services.js";

/** How long the peer's server command may take to start listening. */
const SERVER_START_MS = 10_000;

export interface LabConfig {
  peer: "stack" | "kernel";
  /** --server CMD: run with sh -c in the peer's namespace (--peer kernel). */
  server: string | undefined;
  faults: FaultSpec;
  seed: number | undefined;
  /** Frames on the command's wire (its kernel's view), and on the peer's side. */
  pcap: string | undefined;
  pcapPeer: string | undefined;
  mtu: number | undefined;
  /** Time limit of the server command. */
  serverTimeoutMs: number;
}

export interface RunningLab {
  lab: Lab;
  /** Where commands run: the namespace of the kernel that reaches the peer. */
  client: Netns;
  /** Namespaces made, the client's first. */
  namespaces: string[];
  /** Lines that say what was set up. */
  description: string[];
  /** One line per direction: frames and faults so far. */
  report(): string[];
  close(): Promise<void>;
}

/** Set the lab up; with `names`, the namespaces get exactly those names (`paf lab up NAME`). */
export async function startLab(cfg: LabConfig, names?: { client: string; peer: string }): Promise<RunningLab> {
  const lab = await Lab.create(cfg.seed === undefined ? {} : { seed: cfg.seed });
  try {
    return cfg.peer === "stack" ? await withStack(lab, cfg, names) : await withKernel(lab, cfg, names);
  } catch (e) {
    await lab.close();
    throw e;
  }
}

async function withStack(lab: Lab, cfg: LabConfig, names: { client: string } | undefined): Promise<RunningLab> {
  const ns = await lab.namespace(names?.client);
  const { kernel, stack, faults, ipv4, ipv6 } = await lab.stack({
    kernel: { ns },
    faults: cfg.faults,
    pcap: { ...(cfg.pcap ? { kernel: cfg.pcap } : {}), ...(cfg.pcapPeer ? { stack: cfg.pcapPeer } : {}) },
    ...(cfg.mtu ? { mtu: cfg.mtu } : {}),
  });
  const web = serveHttp(httpService(demoApp({ stats: () => stack.stats() })), stackListener(stack, { port: 80 }));
  const services = await startServices(stack, ["echo", "discard", "chargen"]);
  return {
    lab,
    client: ns,
    namespaces: [ns.name],
    description: [
      `namespace ${ns.name} (commands run here): kernel ${addrs(kernel.ipv4, kernel.ipv6)} on ${kernel.ifname}`,
      `peer: paf stack ${addrs(ipv4, ipv6)} serving the demo app on http 80, echo 7 (tcp, udp), discard 9, chargen 19`,
      pathLine(cfg, lab.seed),
      ...pcapLine(cfg, "the stack's view"),
    ],
    report: () => [statsLine("to the stack", faults.faultStats("rx")), statsLine("to the kernel", faults.faultStats("tx"))],
    close: async () => {
      await web.stop(1000);
      for (const s of services) await s.close();
      await lab.close();
    },
  };
}

async function withKernel(lab: Lab, cfg: LabConfig, names: { client: string; peer: string } | undefined): Promise<RunningLab> {
  const nsA = await lab.namespace(names?.client);
  const nsB = await lab.namespace(names?.peer);
  const { a, b, bridge } = await lab.bridge({
    a: { ns: nsA },
    b: { ns: nsB },
    faults: cfg.faults,
    pcap: { ...(cfg.pcap ? { a: cfg.pcap } : {}), ...(cfg.pcapPeer ? { b: cfg.pcapPeer } : {}) },
    ...(cfg.mtu ? { mtu: cfg.mtu } : {}),
  });
  const description = [
    `namespace ${nsA.name} (commands run here): kernel ${addrs(a.ipv4, a.ipv6)} on ${a.ifname}`,
    `peer: namespace ${nsB.name}: kernel ${addrs(b.ipv4, b.ipv6)} on ${b.ifname}, joined through paf's bridge`,
    pathLine(cfg, lab.seed),
    ...pcapLine(cfg, "the peer's wire"),
  ];
  if (cfg.server) {
    await startServer(nsB, cfg.server, cfg.serverTimeoutMs);
    description.push(`server in ${nsB.name}: ${cfg.server}`);
  }
  return {
    lab,
    client: nsA,
    namespaces: [nsA.name, nsB.name],
    description,
    report: () => {
      const s = bridge.stats();
      return [statsLine("to the peer", s.aToB), statsLine("from the peer", s.bToA)];
    },
    close: () => lab.close(),
  };
}

/** Start `cmd` (sh -c) in `ns` and wait until something listens there (TCP or UDP); its output goes to our stderr. */
async function startServer(ns: Netns, cmd: string, timeoutMs: number): Promise<ChildProcess> {
  const child = ns.spawn("sh", ["-c", cmd], { stdio: ["ignore", 2, 2], timeoutMs });
  let exited: string | undefined;
  child.once("exit", (code, sig) => (exited = `exited (${code ?? sig})`));
  child.once("error", (e) => (exited = e.message));
  await waitFor(
    async () => {
      if (exited) throw new Error(`--server "${cmd}" ${exited} before it listened`);
      const { stdout } = await ns.exec("ss", ["-Hlntu"], 5000);
      return stdout.trim() !== "";
    },
    `--server "${cmd}" to listen`,
    SERVER_START_MS,
    50,
  );
  return child;
}

const addrs = (v4: string | undefined, v6: string | undefined): string => [v4, v6].filter(Boolean).join(" ");

function pathLine(cfg: LabConfig, seed: number): string {
  return `path, each way: ${describeFaults(cfg.faults)} (seed ${seed})`;
}

function pcapLine(cfg: LabConfig, peerView: string): string[] {
  const out: string[] = [];
  if (cfg.pcap) out.push(`pcap ${cfg.pcap}: the command's wire`);
  if (cfg.pcapPeer) out.push(`pcap ${cfg.pcapPeer}: ${peerView}`);
  return out;
}

function statsLine(what: string, s: FaultStats): string {
  return `${what}: ${s.frames} frames, ${s.dropped} lost, ${s.duplicated} duplicated, ${s.reordered} reordered, ${s.corrupted} corrupted, ${s.delayed} delayed, ${s.rateDropped} over the rate queue, ${s.limitDropped} over the limit`;
}
