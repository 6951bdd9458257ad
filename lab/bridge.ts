/**
 * paf as the path between two kernels: two netifs (TAPs whose kernel ends live in two network
 * namespaces) joined at layer 2, every frame forwarded to the other side through a fault stage
 * (FaultyNetif), so the kernels talk over an impaired wire.
 *
 * Layer 2 rather than an IP router: both kernels sit on one subnet, ARP and NDP cross like any
 * frame, and nothing has to be configured or answered by paf (no routes, TTLs, ICMP errors,
 * neighbour proxying); the faults apply to every frame, as on a bad cable. A paf Stack is a host,
 * not a router, and routing would add nothing a test of the kernels' protocols needs.
 */
import type { Netif } from "../stack/netif/netif.js";
import { FaultyNetif, type FaultEvent, type FaultKind, type FaultSpec, type FaultStats } from "../stack/netif/faulty.js";
import { PcapNetif } from "../stack/netif/pcap.js";
import type { Clock } from "../stack/core/clock.js";
import { copyBytes } from "../stack/wire/addr.js";

export type BridgeDirection = "aToB" | "bToA";

export interface BridgeFaultEvent {
  dir: BridgeDirection;
  /** Index (from 0) of the frame among those that entered the bridge in this direction. */
  frame: number;
  kind: FaultKind;
}

export interface BridgeOptions {
  /** Seed of both directions' fault draws. Default 1. */
  seed?: number;
  clock?: Clock;
  /** Faults on frames from side a to side b, and from b to a. Default none. */
  aToB?: FaultSpec;
  bToA?: FaultSpec;
  /** Record the frames crossing each netif: what that side's kernel has on its wire. */
  pcapA?: string;
  pcapB?: string;
  onFault?: (e: BridgeFaultEvent) => void;
}

/** Seeds of the two fault stages, derived from the bridge's. */
const A_STREAM = 0x13198a2e;
const B_STREAM = 0x03707344;

export class Bridge {
  private readonly fa: FaultyNetif;
  private readonly fb: FaultyNetif;
  private readonly pcaps: PcapNetif[] = [];
  private closing: Promise<void> | undefined;

  constructor(a: Netif, b: Netif, opts: BridgeOptions = {}) {
    const seed = opts.seed ?? 1;
    const pa = opts.pcapA ? this.recorded(a, opts.pcapA) : a;
    const pb = opts.pcapB ? this.recorded(b, opts.pcapB) : b;
    const report = (dir: BridgeDirection) => (opts.onFault ? (e: FaultEvent) => opts.onFault!({ dir, frame: e.frame, kind: e.kind }) : undefined);
    // Side a's fault stage shapes what is sent to a (b -> a); b's what is sent to b (a -> b).
    this.fa = new FaultyNetif(pa, { seed: (seed ^ A_STREAM) >>> 0, clock: opts.clock, tx: opts.bToA ?? {}, onFault: report("bToA") });
    this.fb = new FaultyNetif(pb, { seed: (seed ^ B_STREAM) >>> 0, clock: opts.clock, tx: opts.aToB ?? {}, onFault: report("aToB") });
    // A received view lives only during the call, and the other side keeps what it sends: copy.
    this.fa.start({ frame: (f) => void this.fb.send(copyBytes(f)) });
    this.fb.start({ frame: (f) => void this.fa.send(copyBytes(f)) });
  }

  private recorded(n: Netif, path: string): PcapNetif {
    const p = new PcapNetif(n, path);
    this.pcaps.push(p);
    return p;
  }

  /** Faults applied in each direction so far (`frames`: frames that entered the bridge that way). */
  stats(): Record<BridgeDirection, FaultStats> {
    return { aToB: this.fb.faultStats("tx"), bToA: this.fa.faultStats("tx") };
  }

  /** Frames not recorded because a pcap writer's buffer was full. */
  pcapDropped(): number {
    return this.pcaps.reduce((n, p) => n + p.writer.dropped, 0);
  }

  /** Change the faults at run time. */
  setFaults(f: { aToB?: FaultSpec; bToA?: FaultSpec }): void {
    if (f.aToB) this.fb.setFaults({ tx: f.aToB });
    if (f.bToA) this.fa.setFaults({ tx: f.bToA });
  }

  /** Stop forwarding and close both netifs (and pcap files). Idempotent. */
  close(): Promise<void> {
    this.closing ??= Promise.all([this.fa.close(), this.fb.close()]).then(() => undefined);
    return this.closing;
  }
}
