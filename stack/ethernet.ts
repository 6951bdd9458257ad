/**
 * The Ethernet layer: filters frames by destination MAC, demultiplexes by EtherType, and writes
 * Ethernet headers on output. Frames are parsed in place; nothing is copied.
 */
import type { Netif, RxMeta, TxMeta } from "./netif/netif.js";
import { Counters } from "./core/stats.js";
import { ETH, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, emitEthernet } from "./wire/ethernet.js";
import { ipKey } from "./wire/addr.js";

export type EthernetHandler = (frame: Uint8Array, payload: Uint8Array, meta: RxMeta | undefined) => void;

export class EthernetLayer {
  readonly counters = new Counters("ethernet", { rx_frames: 0, tx_frames: 0 });
  // The demux: a field for each EtherType a stack registers, a Map (made at first use) for others.
  private ipv4Handler: EthernetHandler | undefined;
  private arpHandler: EthernetHandler | undefined;
  private ipv6Handler: EthernetHandler | undefined;
  private otherHandlers: Map<number, EthernetHandler> | undefined;
  /**
   * Joined multicast MACs with their reference counts: the first (every IPv4 stack joins
   * all-hosts' MAC, an IPv6 one all-nodes') in two fields, the others in a Map made at first use,
   * so that an idle stack (of thousands) holds no Map. A MAC is in one place or the other.
   */
  private multicastKey: string | undefined;
  private multicastRefs = 0;
  private multicastMap: Map<string, number> | undefined;
  /** Replaced on every change, never changed in place (exactly sized). */
  private batchListeners: ReadonlyArray<() => void> = [];

  constructor(
    readonly netif: Netif,
    readonly mac: Uint8Array,
  ) {}

  register(ethertype: number, handler: EthernetHandler): void {
    if (ethertype === ETHERTYPE_IPV4) this.ipv4Handler = handler;
    else if (ethertype === ETHERTYPE_ARP) this.arpHandler = handler;
    else if (ethertype === ETHERTYPE_IPV6) this.ipv6Handler = handler;
    else (this.otherHandlers ??= new Map()).set(ethertype, handler);
  }

  onBatchEnd(fn: () => void): void {
    this.batchListeners = this.batchListeners.concat(fn);
  }

  /** Accept frames sent to this multicast MAC (reference counted). */
  joinMulticast(mac: Uint8Array): void {
    const k = ipKey(mac);
    if (k === this.multicastKey) this.multicastRefs++;
    else if (this.multicastKey === undefined && !this.multicastMap?.has(k)) {
      this.multicastKey = k;
      this.multicastRefs = 1;
    } else {
      const m = (this.multicastMap ??= new Map());
      m.set(k, (m.get(k) ?? 0) + 1);
    }
  }

  leaveMulticast(mac: Uint8Array): void {
    const k = ipKey(mac);
    if (k === this.multicastKey) {
      if (--this.multicastRefs <= 0) {
        this.multicastKey = undefined;
        this.multicastRefs = 0;
      }
      return;
    }
    const m = this.multicastMap;
    if (!m) return;
    const n = (m.get(k) ?? 0) - 1;
    if (n <= 0) m.delete(k);
    else m.set(k, n);
  }

  /** Entry point for every frame from the netif. Never throws. */
  input(frame: Uint8Array, meta?: RxMeta): void {
    const c = this.counters;
    c.hot.rx_frames++;
    if (frame.length < ETH.HEADER_LEN) return c.drop("truncated");
    const m = this.mac;
    const d0 = frame[0]!;
    if ((d0 & 1) === 0) {
      // Unicast: must be ours.
      if (d0 !== m[0] || frame[1] !== m[1] || frame[2] !== m[2] || frame[3] !== m[3] || frame[4] !== m[4] || frame[5] !== m[5]) {
        return c.drop("not_our_mac");
      }
    } else if (!(d0 === 0xff && frame[1] === 0xff && frame[2] === 0xff && frame[3] === 0xff && frame[4] === 0xff && frame[5] === 0xff)) {
      const k = ipKey(frame, 0, 6);
      if (k !== this.multicastKey && !this.multicastMap?.has(k)) return c.drop("multicast_not_joined");
    }
    // A frame claiming our own MAC as source is a loop or a spoof.
    if (frame[6] === m[0] && frame[7] === m[1] && frame[8] === m[2] && frame[9] === m[3] && frame[10] === m[4] && frame[11] === m[5]) {
      return c.drop("own_source_mac");
    }
    const type = (frame[12]! << 8) | frame[13]!;
    const h = type === ETHERTYPE_IPV4 ? this.ipv4Handler : type === ETHERTYPE_IPV6 ? this.ipv6Handler : type === ETHERTYPE_ARP ? this.arpHandler : this.otherHandlers?.get(type);
    if (!h) return c.drop("unknown_ethertype");
    h(frame, frame.subarray(ETH.HEADER_LEN), meta);
  }

  batchEnd(): void {
    for (const fn of this.batchListeners) fn();
  }

  /** Write the Ethernet header into the first 14 bytes of `frame` and hand it to the netif. */
  send(frame: Uint8Array, dst: Uint8Array, ethertype: number, meta?: TxMeta): boolean {
    emitEthernet(frame, dst, this.mac, ethertype);
    this.counters.hot.tx_frames++;
    const ok = this.netif.send(frame, meta);
    if (!ok) this.counters.inc("tx_dropped_netif");
    return ok;
  }
}
