/**
 * The Ethernet layer: filters frames by destination MAC, demultiplexes by EtherType, and writes
 * Ethernet headers on output. Frames are parsed in place; nothing is copied.
 */
import type { Netif, RxMeta, TxMeta } from "./netif/netif.js";
import { Counters } from "./core/stats.js";
import { ETH, emitEthernet } from "./wire/ethernet.js";
import { ipKey } from "./wire/addr.js";

export type EthernetHandler = (frame: Uint8Array, payload: Uint8Array, meta: RxMeta | undefined) => void;

export class EthernetLayer {
  readonly counters = new Counters("ethernet");
  private readonly handlers = new Map<number, EthernetHandler>();
  /** Joined multicast MACs -> refcount; made at first use: an idle stack (of thousands) holds none. */
  private multicastMap: Map<string, number> | undefined;
  private get multicast(): Map<string, number> {
    return (this.multicastMap ??= new Map());
  }
  private readonly batchListeners: Array<() => void> = [];

  constructor(
    readonly netif: Netif,
    readonly mac: Uint8Array,
  ) {}

  register(ethertype: number, handler: EthernetHandler): void {
    this.handlers.set(ethertype, handler);
  }

  onBatchEnd(fn: () => void): void {
    this.batchListeners.push(fn);
  }

  /** Accept frames sent to this multicast MAC (reference counted). */
  joinMulticast(mac: Uint8Array): void {
    const k = ipKey(mac);
    this.multicast.set(k, (this.multicast.get(k) ?? 0) + 1);
  }

  leaveMulticast(mac: Uint8Array): void {
    const k = ipKey(mac);
    const n = (this.multicast.get(k) ?? 0) - 1;
    if (n <= 0) this.multicast.delete(k);
    else this.multicast.set(k, n);
  }

  /** Entry point for every frame from the netif. Never throws. */
  input(frame: Uint8Array, meta?: RxMeta): void {
    const c = this.counters;
    c.inc("rx_frames");
    if (frame.length < ETH.HEADER_LEN) return c.drop("truncated");
    const m = this.mac;
    const d0 = frame[0]!;
    if ((d0 & 1) === 0) {
      // Unicast: must be ours.
      if (d0 !== m[0] || frame[1] !== m[1] || frame[2] !== m[2] || frame[3] !== m[3] || frame[4] !== m[4] || frame[5] !== m[5]) {
        return c.drop("not_our_mac");
      }
    } else if (!(d0 === 0xff && frame[1] === 0xff && frame[2] === 0xff && frame[3] === 0xff && frame[4] === 0xff && frame[5] === 0xff)) {
      if (!this.multicastMap?.has(ipKey(frame, 0, 6))) return c.drop("multicast_not_joined");
    }
    // A frame claiming our own MAC as source is a loop or a spoof.
    if (frame[6] === m[0] && frame[7] === m[1] && frame[8] === m[2] && frame[9] === m[3] && frame[10] === m[4] && frame[11] === m[5]) {
      return c.drop("own_source_mac");
    }
    const type = (frame[12]! << 8) | frame[13]!;
    const h = this.handlers.get(type);
    if (!h) return c.drop("unknown_ethertype");
    h(frame, frame.subarray(ETH.HEADER_LEN), meta);
  }

  batchEnd(): void {
    for (const fn of this.batchListeners) fn();
  }

  /** Write the Ethernet header into the first 14 bytes of `frame` and hand it to the netif. */
  send(frame: Uint8Array, dst: Uint8Array, ethertype: number, meta?: TxMeta): boolean {
    emitEthernet(frame, dst, this.mac, ethertype);
    this.counters.inc("tx_frames");
    const ok = this.netif.send(frame, meta);
    if (!ok) this.counters.inc("tx_dropped_netif");
    return ok;
  }
}
