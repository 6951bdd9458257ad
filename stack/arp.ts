/**
 * ARP (RFC 826): answers requests for our address, announces it (RFC 5227 §2.3), and resolves
 * IPv4 next hops through the shared neighbour cache (neighbour.ts: the same states, bounds and
 * failure report as IPv6's NDP). RFC 826's merge rule: a packet updates an existing entry for
 * its sender; only a packet for us creates one. A reply for us confirms reachability; a request
 * or a gratuitous ARP only makes the entry STALE (Linux's practice), so unsolicited ARP alone
 * never marks a neighbour reachable. Requests are broadcast; NUD probes are unicast to the MAC
 * we hold.
 */
import type { EthernetLayer } from "./ethernet.js";
import type { TimerQueue } from "./core/timers.js";
import type { TxMeta } from "./netif/netif.js";
import type { Random } from "./core/random.js";
import { Counters } from "./core/stats.js";
import { ARP_REPLY, ARP_REQUEST, ARP, emitArp, parseArp } from "./wire/arp.js";
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETH } from "./wire/ethernet.js";
import { BROADCAST_MAC, ZERO_MAC, copyBytes, ipv4ToU32, isZero, u32ToIPv4 } from "./wire/addr.js";
import { NEIGHBOUR_OPTIONS, NeighbourCache, type NeighbourEntry, type NeighbourOptions } from "./neighbour.js";
import { resolveOptions } from "./core/validate.js";

/** The IPv4 neighbour cache's bounds and timers (see NeighbourOptions for the defaults). */
export type ArpOptions = NeighbourOptions;

export class ArpLayer {
  readonly counters = new Counters("arp");
  private readonly cache: NeighbourCache<number>;
  private addr = 0; // our IPv4 as u32, 0 = none
  private addrBytes: Uint8Array = new Uint8Array(4);

  constructor(
    private readonly eth: EthernetLayer,
    timers: TimerQueue,
    random: Random,
    /** Packets that never left because their next hop did not answer (reported to their senders). */
    unreachable: (frames: Uint8Array[]) => void,
    opts: ArpOptions = {},
  ) {
    this.cache = new NeighbourCache<number>(
      {
        keyOf: (ip) => ip,
        solicit: (ip, mac) => this.sendArp(ARP_REQUEST, mac ?? BROADCAST_MAC, ZERO_MAC, u32ToIPv4(ip)),
        send: (frame, mac, meta) => this.eth.send(frame, mac, ETHERTYPE_IPV4, meta),
        unreachable,
      },
      (ip) => ip,
      timers,
      random,
      this.counters,
      resolveOptions<ArpOptions>("limits.arp", opts, NEIGHBOUR_OPTIONS),
    );
  }

  /** Set our address and announce it with a gratuitous ARP (RFC 5227 §2.3 announcement). */
  setAddress(ip: Uint8Array, announce = true): void {
    this.addrBytes = copyBytes(ip);
    this.addr = ipv4ToU32(ip);
    if (announce) this.sendArp(ARP_REQUEST, BROADCAST_MAC, ZERO_MAC, ip);
  }

  /** A snapshot of the cache for inspection (`paf` stats, tests). */
  entries(): NeighbourEntry<number>[] {
    return this.cache.entries();
  }

  entry(ip: number): NeighbourEntry<number> | undefined {
    return this.cache.get(ip);
  }

  /**
   * Send an IPv4 frame (Ethernet header space reserved) to next hop `ip`: at once if its MAC is
   * known, otherwise queued while it is resolved.
   */
  output(ip: number, frame: Uint8Array, meta?: TxMeta): boolean {
    return this.cache.output(ip, frame, meta);
  }

  close(): void {
    this.cache.close();
  }

  /** An ARP packet (the Ethernet layer hands over the payload). */
  input(p: Uint8Array): void {
    const c = this.counters;
    const r = parseArp(p);
    if (typeof r === "string") return c.drop(r);
    c.inc("rx_" + (r.op === ARP_REQUEST ? "requests" : r.op === ARP_REPLY ? "replies" : "other"));
    if (r.sha[0]! & 1) return c.drop("multicast_sender");
    const spa = ipv4ToU32(r.spa);
    const tpa = ipv4ToU32(r.tpa);
    if (this.addr !== 0 && spa === this.addr && !isZero(r.spa)) {
      // Someone else claims our address (RFC 5227 conflict); we keep it but count it.
      c.inc("address_conflict");
      return;
    }
    const forUs = this.addr !== 0 && tpa === this.addr;
    if (spa !== 0) this.cache.update(spa, r.sha, { solicited: forUs && r.op === ARP_REPLY, override: true, create: forUs });
    if (forUs && r.op === ARP_REQUEST) {
      this.sendArp(ARP_REPLY, r.sha, r.sha, r.spa);
      c.inc("replies_sent");
    }
  }

  private sendArp(op: number, ethDst: Uint8Array, tha: Uint8Array, tpa: Uint8Array): void {
    const frame = new Uint8Array(ETH.HEADER_LEN + ARP.LEN + 18); // pad to the 60-byte minimum
    emitArp(frame.subarray(ETH.HEADER_LEN), { op, sha: this.eth.mac, spa: this.addrBytes, tha, tpa });
    this.eth.send(frame, ethDst, ETHERTYPE_ARP);
  }
}
