/**
 * ARP (RFC 826) with a bounded cache and a bounded queue of packets waiting for resolution.
 *
 * Cache entries are REACHABLE for `cacheTtlMs` after they were learned, then removed (the next
 * packet resolves again). An unresolved destination keeps at most `pendingPerEntry` frames; a
 * request is retried `retries` times every `retryMs`, after which the queued frames are dropped
 * (counted as `drop_unresolved`). The table holds at most `cacheSize` entries; when full, the
 * entry closest to expiry is evicted (pending entries are never evicted for a new one, the new
 * one is refused instead, so a scan cannot flush working entries).
 */
import type { EthernetLayer } from "./ethernet.js";
import type { TimerQueue, Timer } from "./core/timers.js";
import { Counters } from "./core/stats.js";
import { ARP_REPLY, ARP_REQUEST, ARP, emitArp, parseArp } from "./wire/arp.js";
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETH } from "./wire/ethernet.js";
import { BROADCAST_MAC, ZERO_MAC, copyBytes, ipv4ToU32, isZero } from "./wire/addr.js";

export interface ArpOptions {
  /** Max entries (resolved + pending). Default 1024. */
  cacheSize?: number;
  /** How long a learned mapping is used before it must be resolved again (ms). Default 60000. */
  cacheTtlMs?: number;
  /** Max frames queued per unresolved address. Default 16. */
  pendingPerEntry?: number;
  /** Request retransmissions before giving up. Default 3. */
  retries?: number;
  /** Interval between requests (ms). Default 1000. */
  retryMs?: number;
}

interface Entry {
  ip: number;
  mac: Uint8Array | undefined;
  expires: number;
  pending: Uint8Array[];
  tries: number;
  timer: Timer | undefined;
}

export class ArpLayer {
  readonly counters = new Counters("arp");
  private readonly cache = new Map<number, Entry>();
  private readonly opts: Required<ArpOptions>;
  private addr = 0; // our IPv4 as u32, 0 = none
  private addrBytes: Uint8Array = new Uint8Array(4);

  constructor(
    private readonly eth: EthernetLayer,
    private readonly timers: TimerQueue,
    opts: ArpOptions = {},
  ) {
    this.opts = {
      cacheSize: opts.cacheSize ?? 1024,
      cacheTtlMs: opts.cacheTtlMs ?? 60_000,
      pendingPerEntry: opts.pendingPerEntry ?? 16,
      retries: opts.retries ?? 3,
      retryMs: opts.retryMs ?? 1000,
    };
    eth.register(ETHERTYPE_ARP, (_frame, payload) => this.input(payload));
  }

  /** Set our address and announce it with a gratuitous ARP (RFC 5227 §2.3 announcement). */
  setAddress(ip: Uint8Array, announce = true): void {
    this.addrBytes = copyBytes(ip);
    this.addr = ipv4ToU32(ip);
    if (announce) this.sendArp(ARP_REQUEST, BROADCAST_MAC, ZERO_MAC, ip);
  }

  /** A snapshot of the cache for inspection (`paf` stats, tests). */
  entries(): Array<{ ip: number; mac: Uint8Array | undefined; pending: number }> {
    return [...this.cache.values()].map((e) => ({ ip: e.ip, mac: e.mac, pending: e.pending.length }));
  }

  lookup(ip: number): Uint8Array | undefined {
    const e = this.cache.get(ip);
    if (!e || !e.mac) return undefined;
    if (e.expires <= this.timers.now()) {
      this.cache.delete(ip);
      return undefined;
    }
    return e.mac;
  }

  /**
   * Send an IPv4 frame (Ethernet header space reserved) to next hop `ip`: at once if its MAC is
   * known, otherwise queued while a request goes out.
   */
  output(ip: number, frame: Uint8Array): boolean {
    const mac = this.lookup(ip);
    if (mac) return this.eth.send(frame, mac, ETHERTYPE_IPV4);
    let e = this.cache.get(ip);
    if (!e) {
      if (this.cache.size >= this.opts.cacheSize && !this.evictOne()) {
        this.counters.drop("cache_full");
        return false;
      }
      e = { ip, mac: undefined, expires: 0, pending: [], tries: 0, timer: undefined };
      this.cache.set(ip, e);
      this.request(e);
    }
    if (e.pending.length >= this.opts.pendingPerEntry) {
      this.counters.drop("pending_full");
      return false;
    }
    e.pending.push(frame);
    return true;
  }

  close(): void {
    for (const e of this.cache.values()) if (e.timer) this.timers.cancel(e.timer);
    this.cache.clear();
  }

  private evictOne(): boolean {
    let victim: Entry | undefined;
    for (const e of this.cache.values()) {
      if (!e.mac) continue;
      if (!victim || e.expires < victim.expires) victim = e;
    }
    if (!victim) return false;
    this.cache.delete(victim.ip);
    this.counters.inc("evicted");
    return true;
  }

  private request(e: Entry): void {
    e.tries++;
    const ip = new Uint8Array([(e.ip >>> 24) & 0xff, (e.ip >>> 16) & 0xff, (e.ip >>> 8) & 0xff, e.ip & 0xff]);
    this.sendArp(ARP_REQUEST, BROADCAST_MAC, ZERO_MAC, ip);
    this.counters.inc("requests_sent");
    if (!e.timer) e.timer = this.timers.timer(() => this.retry(e));
    this.timers.arm(e.timer, this.opts.retryMs);
  }

  private retry(e: Entry): void {
    if (this.cache.get(e.ip) !== e || e.mac) return;
    if (e.tries > this.opts.retries) {
      this.counters.inc("resolution_failed");
      for (let i = 0; i < e.pending.length; i++) this.counters.drop("unresolved");
      this.cache.delete(e.ip);
      return;
    }
    this.request(e);
  }

  private input(p: Uint8Array): void {
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
    // RFC 826 merge: update an existing entry; create one only if the packet is for us.
    const forUs = this.addr !== 0 && tpa === this.addr;
    const e = this.cache.get(spa);
    if (spa !== 0) {
      if (e) this.learn(e, r.sha);
      else if (forUs && (this.cache.size < this.opts.cacheSize || this.evictOne())) {
        const ne: Entry = { ip: spa, mac: undefined, expires: 0, pending: [], tries: 0, timer: undefined };
        this.cache.set(spa, ne);
        this.learn(ne, r.sha);
      }
    }
    if (forUs && r.op === ARP_REQUEST) {
      this.sendArp(ARP_REPLY, r.sha, r.sha, r.spa);
      c.inc("replies_sent");
    }
  }

  private learn(e: Entry, mac: Uint8Array): void {
    e.mac = copyBytes(mac);
    e.expires = this.timers.now() + this.opts.cacheTtlMs;
    if (e.timer) this.timers.cancel(e.timer);
    const q = e.pending;
    e.pending = [];
    for (const f of q) this.eth.send(f, e.mac, ETHERTYPE_IPV4);
  }

  private sendArp(op: number, ethDst: Uint8Array, tha: Uint8Array, tpa: Uint8Array): void {
    const frame = new Uint8Array(ETH.HEADER_LEN + ARP.LEN + 18); // pad to the 60-byte minimum
    emitArp(frame.subarray(ETH.HEADER_LEN), { op, sha: this.eth.mac, spa: this.addrBytes, tha, tpa });
    this.eth.send(frame, ethDst, ETHERTYPE_ARP);
  }
}
