/**
 * One neighbour cache for both families (after gVisor's and Linux's neigh tables): IPv4 over ARP
 * (RFC 826) and IPv6 over Neighbor Discovery (RFC 4861 §7.3) share the same states, the same
 * bounded queue of packets waiting for resolution, the same eviction and the same failure
 * report. The protocol part (how a solicitation looks and goes out) is the `NeighbourLink`
 * each family gives; arp.ts and ndp.ts parse their messages and tell the cache what they learned.
 *
 * States (RFC 4861 §7.3.2; Linux uses the same machine for ARP):
 *   INCOMPLETE  resolving: solicitations every `retransTimerMs`, packets queued (at most
 *               `pendingPerEntry`); after `maxSolicit` unanswered ones the queued packets are
 *               dropped and reported to their senders as unreachable (EHOSTUNREACH, ~3 s).
 *   REACHABLE   confirmed within ReachableTime (random in [0.5, 1.5] x `baseReachableTimeMs`).
 *   STALE       known but unconfirmed: used as is; the first use starts DELAY.
 *   DELAY       waiting `delayFirstProbeMs` for an upper-layer confirmation, then PROBE.
 *   PROBE       unicast solicitations; `maxSolicit` unanswered ones remove the entry.
 * The table holds at most `cacheSize` entries; when full, a STALE entry (or any resolved one that
 * is not a router) is evicted; entries still resolving are never evicted for a newcomer (the
 * newcomer is refused), so a scan of unused addresses cannot flush working entries.
 */
import type { Timer, TimerQueue } from "./core/timers.js";
import type { Random } from "./core/random.js";
import type { Counters } from "./core/stats.js";
import type { TxMeta } from "./netif/netif.js";
import { bytesEqual, copyBytes } from "./wire/addr.js";

export interface NeighbourOptions {
  /** Entries (resolved and resolving). Default 1024. */
  cacheSize?: number;
  /**
   * Packets queued per unresolved neighbour. Default 64 (Linux: unres_qlen, 101): a program that
   * opens a few dozen connections to a host not yet resolved must not lose SYNs to this queue
   * (each lost one waits a second for its retransmission).
   */
  pendingPerEntry?: number;
  /** Bytes of packets queued per unresolved neighbour (Linux: unres_qlen_bytes). Default 65536. */
  pendingBytesPerEntry?: number;
  /** Solicitations before resolution (or a probe) fails: MAX_MULTICAST_SOLICIT / MAX_UNICAST_SOLICIT. Default 3. */
  maxSolicit?: number;
  /** Interval between solicitations (RetransTimer, ms). Default 1000. */
  retransTimerMs?: number;
  /** BaseReachableTime (ms). Default 30000. */
  baseReachableTimeMs?: number;
  /** DELAY_FIRST_PROBE_TIME (ms). Default 5000. */
  delayFirstProbeMs?: number;
}

const HOUR = 3_600_000;

/** Empty `e`'s queue of frames waiting for resolution; returns what it held. */
function takePending<A>(e: Entry<A>): { frames: Uint8Array[]; meta: Array<TxMeta | undefined> } {
  const held = { frames: e.pending, meta: e.pendingMeta };
  e.pending = [];
  e.pendingBytes = 0;
  e.pendingMeta = [];
  return held;
}

/** The neighbour options' defaults and ranges (resolveOptions spec; ARP and NDP resolve them as theirs). */
export const NEIGHBOUR_OPTIONS = {
  cacheSize: [1024, 1, 1 << 20],
  pendingPerEntry: [64, 1, 4096],
  pendingBytesPerEntry: [65_536, 64, 1 << 30],
  maxSolicit: [3, 1, 100],
  retransTimerMs: [1000, 10, HOUR],
  baseReachableTimeMs: [30_000, 1000, HOUR],
  delayFirstProbeMs: [5000, 0, HOUR],
} as const;

export type NeighbourState = "INCOMPLETE" | "REACHABLE" | "STALE" | "DELAY" | "PROBE";

/**
 * What the cache needs of its protocol (ARP or NDP) and of the link. `A` is the address as the
 * family's routes hold it (a u32 for IPv4, 16 bytes for IPv6), `keyOf` its table key, so that
 * resolving a next hop allocates nothing per packet.
 */
export interface NeighbourLink<A> {
  keyOf(ip: A): number | string;
  /** Solicit `ip`: to everyone (broadcast / solicited-node multicast) without `mac`, to `mac` alone (a NUD probe) with it. */
  solicit(ip: A, mac: Uint8Array | undefined): void;
  /** Send a frame (Ethernet header space reserved) to `mac`. */
  send(frame: Uint8Array, mac: Uint8Array, meta: TxMeta | undefined): boolean;
  /** Packets dropped because their next hop never answered: tell their senders (EHOSTUNREACH). */
  unreachable(frames: Uint8Array[]): void;
}

export interface NeighbourEntry<A> {
  readonly ip: A;
  readonly mac: Uint8Array | undefined;
  readonly state: NeighbourState;
  readonly isRouter: boolean;
  readonly pending: number;
}

/** How a message told us about a neighbour (RFC 4861 §7.2.5 flags; ARP maps onto them). */
export interface NeighbourUpdate {
  /** An answer to our solicitation: reachability confirmed. */
  solicited: boolean;
  /** The link-layer address may replace a different one we hold. */
  override: boolean;
  /** Create the entry (STALE) if there is none (RFC 4861 §7.2.3, RFC 826's "packet for us"). */
  create: boolean;
  /** The neighbour is a router (NDP only: the R flag, or the source of an RA). */
  isRouter?: boolean;
}

interface Entry<A> {
  ip: A;
  key: number | string;
  mac: Uint8Array | undefined;
  state: NeighbourState;
  isRouter: boolean;
  pending: Uint8Array[];
  /** Bytes in `pending`. */
  pendingBytes: number;
  /** TxMeta of each pending frame (mostly undefined), in step with `pending`. */
  pendingMeta: Array<TxMeta | undefined>;
  probes: number;
  reachableUntil: number;
  timer: Timer;
}

export class NeighbourCache<A> {
  /** Made at the first entry: an idle stack (of thousands) holds none. */
  private tableMap: Map<number | string, Entry<A>> | undefined;
  private get table(): Map<number | string, Entry<A>> {
    return (this.tableMap ??= new Map());
  }
  private readonly o: Required<NeighbourOptions>;
  private reachableMs: number;
  private retransMs: number;

  constructor(
    private readonly link: NeighbourLink<A>,
    /** A copy of an address to keep (addresses handed in may be views into frames). */
    private readonly keep: (ip: A) => A,
    private readonly timers: TimerQueue,
    private readonly random: Random,
    private readonly counters: Counters,
    /** Resolved and checked by the owner (see NEIGHBOUR_OPTIONS). */
    opts: Required<NeighbourOptions>,
  ) {
    this.o = opts;
    this.retransMs = this.o.retransTimerMs;
    this.reachableMs = this.randomReachable(this.o.baseReachableTimeMs);
  }

  /** RFC 4861 §6.3.2: ReachableTime is uniformly random in [0.5, 1.5] x BaseReachableTime. */
  private randomReachable(base: number): number {
    return base * (0.5 + this.random.u32() / 4294967296);
  }

  /** A router advertisement's ReachableTime (ms, 0 = unspecified). */
  setBaseReachableTime(ms: number): void {
    if (ms > 0 && ms <= 3_600_000) this.reachableMs = this.randomReachable(ms);
  }

  /** A router advertisement's RetransTimer (ms, 0 = unspecified). */
  setRetransTimer(ms: number): void {
    if (ms > 0) this.retransMs = ms;
  }

  get size(): number {
    return this.tableMap?.size ?? 0;
  }

  get(ip: A): NeighbourEntry<A> | undefined {
    const e = this.tableMap?.get(this.link.keyOf(ip));
    return e && { ip: e.ip, mac: e.mac, state: e.state, isRouter: e.isRouter, pending: e.pending.length };
  }

  entries(): NeighbourEntry<A>[] {
    return [...(this.tableMap?.values() ?? [])].map((e) => ({ ip: e.ip, mac: e.mac, state: e.state, isRouter: e.isRouter, pending: e.pending.length }));
  }

  /** Send a frame to next hop `ip`: at once when its link-layer address is known, else queued while it is solicited. */
  output(ip: A, frame: Uint8Array, meta?: TxMeta): boolean {
    let e = this.tableMap?.get(this.link.keyOf(ip));
    if (e?.mac) {
      if (e.state === "REACHABLE" && e.reachableUntil <= this.timers.now()) e.state = "STALE";
      if (e.state === "STALE") {
        // §7.3.3: the first use of a STALE entry starts DELAY.
        e.state = "DELAY";
        this.timers.arm(e.timer, this.o.delayFirstProbeMs);
      }
      return this.link.send(frame, e.mac, meta);
    }
    if (!e) {
      e = this.create(ip, "INCOMPLETE");
      if (!e) {
        this.counters.drop("cache_full");
        return false;
      }
      e.probes = 1;
      this.counters.inc("solicitations_sent");
      this.link.solicit(e.ip, undefined);
      this.timers.arm(e.timer, this.retransMs);
    }
    if (e.pending.length >= this.o.pendingPerEntry || e.pendingBytes + frame.length > this.o.pendingBytesPerEntry) {
      this.counters.drop("pending_full");
      return false;
    }
    e.pending.push(frame);
    e.pendingBytes += frame.length;
    e.pendingMeta.push(meta);
    return true;
  }

  /**
   * What a message said about `ip` (RFC 4861 §7.2.3 and §7.2.5; ARP replies are solicited
   * updates with override, ARP requests and gratuitous ARP unsolicited ones).
   */
  update(ip: A, mac: Uint8Array | undefined, u: NeighbourUpdate): void {
    let e = this.tableMap?.get(this.link.keyOf(ip));
    if (!e) {
      if (!u.create || !mac) return; // §7.2.5: no entry, silently discard
      e = this.create(ip, "STALE");
      if (!e) return;
      e.mac = copyBytes(mac);
      if (u.isRouter) e.isRouter = true;
      if (u.solicited) this.setReachable(e);
      return;
    }
    if (e.state === "INCOMPLETE") {
      if (!mac) return;
      e.mac = copyBytes(mac);
      if (u.isRouter !== undefined) e.isRouter = u.isRouter;
      if (u.solicited) this.setReachable(e);
      else {
        e.state = "STALE";
        this.timers.cancel(e.timer);
      }
      this.flush(e);
      return;
    }
    const differs = mac !== undefined && e.mac !== undefined && !bytesEqual(mac, e.mac);
    if (!u.override && differs) {
      // §7.2.5: keep the address we have; a confirmed entry becomes unconfirmed.
      if (e.state === "REACHABLE") e.state = "STALE";
      return;
    }
    if (mac && (u.override || !differs)) e.mac = copyBytes(mac);
    if (u.solicited) this.setReachable(e);
    else if (differs) {
      e.state = "STALE";
      this.timers.cancel(e.timer);
    }
    if (u.isRouter !== undefined) e.isRouter = u.isRouter;
  }

  /** Forget `ip` (its queued packets are dropped). */
  delete(ip: A): void {
    const e = this.tableMap?.get(this.link.keyOf(ip));
    if (e) this.remove(e);
  }

  close(): void {
    for (const e of [...(this.tableMap?.values() ?? [])]) this.remove(e);
  }

  private create(ip: A, state: NeighbourState): Entry<A> | undefined {
    if (this.table.size >= this.o.cacheSize && !this.evict()) return undefined;
    const e: Entry<A> = {
      ip: this.keep(ip),
      key: this.link.keyOf(ip),
      mac: undefined,
      state,
      isRouter: false,
      pending: [],
      pendingBytes: 0,
      pendingMeta: [],
      probes: 0,
      reachableUntil: 0,
      timer: undefined as unknown as Timer,
    };
    e.timer = this.timers.timer(() => this.onTimer(e));
    this.table.set(e.key, e);
    return e;
  }

  private evict(): boolean {
    let victim: Entry<A> | undefined;
    for (const e of this.table.values()) {
      if (e.state === "STALE" && !e.isRouter) {
        victim = e;
        break;
      }
      if (!victim && e.state !== "INCOMPLETE" && !e.isRouter) victim = e;
    }
    if (!victim) return false;
    this.remove(victim);
    this.counters.inc("evicted");
    return true;
  }

  private remove(e: Entry<A>): void {
    this.timers.cancel(e.timer);
    if (this.table.get(e.key) === e) this.table.delete(e.key);
    for (let i = 0; i < e.pending.length; i++) this.counters.drop("unresolved");
    takePending(e);
  }

  private onTimer(e: Entry<A>): void {
    if (this.table.get(e.key) !== e) return;
    switch (e.state) {
      case "INCOMPLETE":
        if (e.probes >= this.o.maxSolicit) {
          this.counters.inc("resolution_failed");
          const frames = takePending(e).frames;
          this.remove(e);
          for (let i = 0; i < frames.length; i++) this.counters.drop("unresolved");
          if (frames.length > 0) this.link.unreachable(frames);
          return;
        }
        e.probes++;
        this.counters.inc("solicitations_sent");
        this.link.solicit(e.ip, undefined);
        this.timers.arm(e.timer, this.retransMs);
        return;
      case "DELAY":
      case "PROBE":
        if (e.state === "DELAY") {
          // No upper-layer confirmation came: probe now, unicast.
          e.state = "PROBE";
          e.probes = 0;
        }
        if (e.probes >= this.o.maxSolicit) {
          this.counters.inc("unreachable");
          return this.remove(e);
        }
        e.probes++;
        this.counters.inc("probes_sent");
        this.link.solicit(e.ip, e.mac);
        this.timers.arm(e.timer, this.retransMs);
        return;
      default:
        return;
    }
  }

  private setReachable(e: Entry<A>): void {
    e.state = "REACHABLE";
    e.reachableUntil = this.timers.now() + this.reachableMs;
    this.timers.cancel(e.timer);
  }

  private flush(e: Entry<A>): void {
    const { frames, meta } = takePending(e);
    for (let i = 0; i < frames.length; i++) this.link.send(frames[i]!, e.mac!, meta[i]);
  }
}
