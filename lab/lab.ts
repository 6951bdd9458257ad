/**
 * A test bed in network namespaces: the Linux kernel as the peer of a paf stack, or two kernels
 * talking through paf, over TAP devices whose path can be impaired (loss, bursts, duplication,
 * reordering, corruption, delay, rate) from a seed, so a failing run replays exactly.
 *
 * Everything a lab makes lives inside namespaces it created (nothing is configured in the root
 * namespace) and is removed by close(): stacks and bridges stopped, TAPs closed, every process in
 * the namespaces killed, the namespaces deleted; and on exit, SIGINT, SIGTERM if the process ends
 * first. Names are unique per process and per lab (paf-<tag><pid>-<n>), so labs run in parallel.
 * Addresses come from 198.18.0.0/15 (RFC 2544 benchmarking) and 2001:db8::/32 (documentation).
 */
import { randomInt } from "node:crypto";
import { TapNetif } from "../stack/netif/tap.js";
import { PcapNetif } from "../stack/netif/pcap.js";
import { FaultyNetif, type FaultEvent, type FaultSpec } from "../stack/netif/faulty.js";
import type { Netif } from "../stack/netif/netif.js";
import { Stack, type StackOptions } from "../stack/stack.js";
import { Netns } from "./netns.js";
import { ifname } from "./names.js";
import { Bridge, type BridgeFaultEvent } from "./bridge.js";

export interface LabOptions {
  /** Goes into the namespace names (paf-<tag><pid>-<n>): up to 12 letters or digits. Default "lab". */
  tag?: string;
  /** Seed of the lab's fault stages (each derives its own from it, in creation order). Default: random; `lab.seed` says which. */
  seed?: number;
}

/** An end of a link inside a namespace, as set up. */
export interface LabEnd {
  ns: Netns;
  /** The interface in `ns` (the kernel's end of a TAP). */
  ifname: string;
  /** Its MAC address. */
  mac: string;
  /** Addresses without prefix length, undefined if that family is off. */
  ipv4: string | undefined;
  ipv6: string | undefined;
}

/** Addresses of one side: CIDRs, or false for none of that family. */
export interface LabAddresses {
  ipv4?: string | false;
  ipv6?: string | false;
}

export interface LabStackOptions {
  /** The kernel's side: its namespace (default: a new one of the lab) and addresses (default 198.18.0.1/24, 2001:db8::1/64). */
  kernel?: LabAddresses & { ns?: Netns };
  /** The stack's addresses. Default 198.18.0.2/24 and 2001:db8::2/64. */
  ipv4?: string | false;
  ipv6?: string | false;
  /** Faults on the path both ways; `toStack` / `toKernel` replace them for one direction. */
  faults?: FaultSpec;
  toStack?: FaultSpec;
  toKernel?: FaultSpec;
  /** pcap files: `kernel` records the wire as the kernel sees it, `stack` what the stack sees (after the faults). */
  pcap?: { kernel?: string; stack?: string };
  /** L3 MTU of the TAP and the stack. Default 1500. */
  mtu?: number;
  /** More options for Stack.create (clock, random, limits, dns, mac ...). */
  stack?: Omit<StackOptions, "netif" | "ipv4" | "ipv6" | "mtu">;
  onFault?: (e: FaultEvent) => void;
}

export interface LabStack {
  /** The kernel's end of the TAP. */
  kernel: LabEnd;
  stack: Stack;
  /** The fault stage between them: `rx` is kernel -> stack, `tx` stack -> kernel. */
  faults: FaultyNetif;
  /** The stack's addresses, without prefix length. */
  ipv4: string | undefined;
  ipv6: string | undefined;
}

export interface LabBridgeOptions {
  /** Side a: namespace (default: a new one) and addresses (default 198.18.0.1/24, 2001:db8::1/64). */
  a?: LabAddresses & { ns?: Netns };
  /** Side b: namespace (default: a new one) and addresses (default 198.18.0.2/24, 2001:db8::2/64). */
  b?: LabAddresses & { ns?: Netns };
  /** Faults both ways; `toB` / `toA` replace them for one direction. */
  faults?: FaultSpec;
  toB?: FaultSpec;
  toA?: FaultSpec;
  /** pcap files of what each side's kernel has on its wire. */
  pcap?: { a?: string; b?: string };
  /**
   * Only the traffic the test makes crosses the bridge: IPv6 off on both ends and permanent ARP
   * entries, so no NDP, MLD, router solicitation or ARP frame at an unpredictable time shifts
   * the frame count, and a seeded run drops the same packets again.
   */
  quiet?: boolean;
  /** L3 MTU of both TAPs. Default 1500. */
  mtu?: number;
  onFault?: (e: BridgeFaultEvent) => void;
}

export interface LabBridge {
  a: LabEnd;
  b: LabEnd;
  bridge: Bridge;
}

export interface LabVeth {
  a: LabEnd;
  b: LabEnd;
}

const KERNEL_V4 = "198.18.0.1/24";
const KERNEL_V6 = "2001:db8::1/64";
const PEER_V4 = "198.18.0.2/24";
const PEER_V6 = "2001:db8::2/64";

export class Lab {
  readonly seed: number;
  private readonly tag: string;
  /** What close() undoes, in reverse order of creation. */
  private readonly undo: Array<() => Promise<void>> = [];
  private stages = 0;
  private closing: Promise<void> | undefined;

  private constructor(opts: LabOptions) {
    this.tag = opts.tag ?? "lab";
    if (!/^[a-z0-9]{0,12}$/i.test(this.tag)) throw new TypeError(`Lab tag must be 0..12 letters or digits: "${this.tag}"`);
    const seed = opts.seed ?? randomInt(2 ** 31);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`Lab seed must be an integer 0..2^32-1, got ${seed}`);
    this.seed = seed;
  }

  static async create(opts: LabOptions = {}): Promise<Lab> {
    return new Lab(opts);
  }

  /**
   * Run `fn` in a new lab and close it afterwards, whether `fn` succeeds or throws. A failure
   * carries the seed in its message, to replay the run with Lab.create({ seed }).
   */
  static async with<T>(opts: LabOptions, fn: (lab: Lab) => Promise<T>): Promise<T> {
    const lab = await Lab.create(opts);
    try {
      return await fn(lab);
    } catch (e) {
      if (e instanceof Error && !/\[lab seed \d+\]/.test(e.message)) e.message += ` [lab seed ${lab.seed}]`;
      throw e;
    } finally {
      await lab.close();
    }
  }

  /** A new namespace of this lab, lo up: paf-<tag><pid>-<n>, or exactly `name` (which must not exist). */
  async namespace(name?: string): Promise<Netns> {
    this.check();
    const ns = name === undefined ? await Netns.create(this.tag) : await Netns.createNamed(name);
    this.undo.push(() => ns.destroy());
    return ns;
  }

  /**
   * A TAP whose kernel end lives in `ns`, up and addressed: the netif stays with the caller
   * (closed by the lab's close() if the caller has not).
   */
  async tap(ns: Netns, addrs: LabAddresses = {}, opts: { mtu?: number; quiet?: boolean } = {}): Promise<{ netif: TapNetif; end: LabEnd }> {
    this.check();
    const name = ifname("tap");
    // No offloads: the faults act on frames as they are on the wire, never on 64 KB super-frames.
    const netif = TapNetif.open(name, { netns: ns.path, ...(opts.mtu ? { mtu: opts.mtu } : {}) });
    this.undo.push(() => netif.close());
    if (opts.quiet) await ns.exec("sysctl", ["-q", "-w", `net.ipv6.conf.${name}.disable_ipv6=1`]);
    const v4 = addrs.ipv4 === false ? undefined : (addrs.ipv4 ?? KERNEL_V4);
    const v6 = addrs.ipv6 === false || opts.quiet ? undefined : (addrs.ipv6 ?? KERNEL_V6);
    await ns.kernelSide(name, v4 ?? "", v6 ?? "");
    return { netif, end: { ns, ifname: name, mac: await macOf(ns, name), ipv4: bare(v4), ipv6: bare(v6) } };
  }

  /** The kernel in a namespace and a paf stack on a TAP, with faults between them. */
  async stack(opts: LabStackOptions = {}): Promise<LabStack> {
    const ns = opts.kernel?.ns ?? (await this.namespace());
    const { netif: tap, end } = await this.tap(ns, opts.kernel ?? {}, opts.mtu ? { mtu: opts.mtu } : {});
    let netif: Netif = opts.pcap?.kernel ? new PcapNetif(tap, opts.pcap.kernel) : tap;
    const faults = new FaultyNetif(netif, { seed: this.stageSeed(), rx: opts.toStack ?? opts.faults ?? {}, tx: opts.toKernel ?? opts.faults ?? {}, onFault: opts.onFault });
    netif = opts.pcap?.stack ? new PcapNetif(faults, opts.pcap.stack) : faults;
    const v4 = opts.ipv4 === false ? undefined : (opts.ipv4 ?? PEER_V4);
    const v6 = opts.ipv6 === false ? undefined : (opts.ipv6 ?? PEER_V6);
    const stack = Stack.create({
      ...opts.stack,
      netif,
      ...(v4 ? { ipv4: { address: v4 } } : {}),
      // Our addresses are unique inside a private namespace: duplicate detection would only wait.
      ...(v6 ? { ipv6: { address: v6, dad: false } } : {}),
      ...(opts.mtu ? { mtu: opts.mtu } : {}),
    });
    this.undo.push(() => stack.close());
    await stack.ready();
    return { kernel: end, stack, faults, ipv4: bare(v4), ipv6: bare(v6) };
  }

  /** Two kernels, in namespaces a and b, joined by paf at layer 2 with faults in between. */
  async bridge(opts: LabBridgeOptions = {}): Promise<LabBridge> {
    const nsA = opts.a?.ns ?? (await this.namespace());
    const nsB = opts.b?.ns ?? (await this.namespace());
    const tapOpts = { quiet: !!opts.quiet, ...(opts.mtu ? { mtu: opts.mtu } : {}) };
    const ta = await this.tap(nsA, { ipv4: opts.a?.ipv4 ?? KERNEL_V4, ipv6: opts.a?.ipv6 ?? KERNEL_V6 }, tapOpts);
    const tb = await this.tap(nsB, { ipv4: opts.b?.ipv4 ?? PEER_V4, ipv6: opts.b?.ipv6 ?? PEER_V6 }, tapOpts);
    if (opts.quiet) {
      if (ta.end.ipv4 && tb.end.ipv4) {
        await nsA.neigh(ta.end.ifname, tb.end.ipv4, tb.end.mac);
        await nsB.neigh(tb.end.ifname, ta.end.ipv4, ta.end.mac);
      }
    }
    const bridge = new Bridge(ta.netif, tb.netif, {
      seed: this.stageSeed(),
      aToB: opts.toB ?? opts.faults ?? {},
      bToA: opts.toA ?? opts.faults ?? {},
      pcapA: opts.pcap?.a,
      pcapB: opts.pcap?.b,
      onFault: opts.onFault,
    });
    this.undo.push(() => bridge.close());
    return { a: ta.end, b: tb.end, bridge };
  }

  /** Two namespaces joined directly by a veth pair (kernel to kernel, no paf in between). */
  async veth(opts: { a?: LabAddresses & { ns?: Netns }; b?: LabAddresses & { ns?: Netns } } = {}): Promise<LabVeth> {
    const nsA = opts.a?.ns ?? (await this.namespace());
    const nsB = opts.b?.ns ?? (await this.namespace());
    const na = ifname("veth");
    const nb = ifname("veth");
    // Created inside a and b directly: the pair never exists in the root namespace.
    await nsA.ip("link", "add", na, "type", "veth", "peer", "name", nb, "netns", nsB.name);
    const a4 = opts.a?.ipv4 === false ? undefined : (opts.a?.ipv4 ?? KERNEL_V4);
    const a6 = opts.a?.ipv6 === false ? undefined : (opts.a?.ipv6 ?? KERNEL_V6);
    const b4 = opts.b?.ipv4 === false ? undefined : (opts.b?.ipv4 ?? PEER_V4);
    const b6 = opts.b?.ipv6 === false ? undefined : (opts.b?.ipv6 ?? PEER_V6);
    await nsA.kernelSide(na, a4 ?? "", a6 ?? "");
    await nsB.kernelSide(nb, b4 ?? "", b6 ?? "");
    return {
      a: { ns: nsA, ifname: na, mac: await macOf(nsA, na), ipv4: bare(a4), ipv6: bare(a6) },
      b: { ns: nsB, ifname: nb, mac: await macOf(nsB, nb), ipv4: bare(b4), ipv6: bare(b6) },
    };
  }

  /**
   * Undo everything, newest first: stacks and bridges stopped, TAPs closed, every process in the
   * lab's namespaces killed, the namespaces deleted. Idempotent; never throws (failures are
   * warned about), so it can sit in a finally without hiding the test's own error.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      while (this.undo.length) {
        try {
          await this.undo.pop()!();
        } catch (e) {
          console.warn(`paf lab: cleanup step failed: ${(e as Error).message}`);
        }
      }
    })();
    return this.closing;
  }

  private check(): void {
    if (this.closing) throw new Error("the lab is closed");
  }

  /** The seed of the next fault stage: derived from the lab's seed and how many stages came before. */
  private stageSeed(): number {
    return (Math.imul(this.seed ^ 0x9e3779b9, 0x85ebca6b) + this.stages++ * 0x27d4eb2f) >>> 0;
  }
}

async function macOf(ns: Netns, name: string): Promise<string> {
  const { stdout } = await ns.ip("-j", "link", "show", "dev", name);
  const mac = (JSON.parse(stdout) as Array<{ address?: string }>)[0]?.address;
  if (!mac) throw new Error(`no MAC address on ${name} in ${ns.name}`);
  return mac;
}

const bare = (cidr: string | undefined): string | undefined => cidr?.split("/")[0];
