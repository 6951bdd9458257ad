/**
 * Segmentation offload in software: a netif wrapper that advertises TSO and cuts every TCP
 * super-segment it is given (send with a gsoSize, see TxMeta) into wire-size segments before the
 * inner netif sees them, as a NIC or the kernel's GSO would. Used to run the in-process tests
 * (virtual switch, seeded faults) with the same large segments the stack sends to a TAP with
 * offloads, and to check that path without a kernel.
 *
 * Each segment gets a copy of the Ethernet, IP and TCP headers with: its IP length (IPv4: a fresh
 * header checksum; the Identification kept, 0 with DF as ours are), its sequence number, FIN and
 * PSH only on the last segment, CWR only on the first (as Linux's tcp_gso_segment), and a full
 * TCP checksum (the super-segment carries only the pseudo-header sum). Other frames go to the inner
 * netif as they are, with their TxMeta (a checksum left to it, where it offers that).
 */
import type { Netif, NetifFeatures, NetifReceiver, NetifStats, TxMeta } from "./netif.js";
import { ETH_HEADER_LEN } from "./netif.js";
import { finish, pseudoHeaderSum, sum16 } from "../wire/checksum.js";
import { CWR, FIN, IPPROTO_TCP, PSH } from "../wire/tcp.js";

/** What SegmentingNetif counts on top of the inner netif's counters. */
export interface GsoStats {
  /** Super-segments cut. */
  superSegments: number;
  /** Segments they were cut into. */
  segments: number;
}

export class SegmentingNetif implements Netif {
  readonly gsoStats: GsoStats = { superSegments: 0, segments: 0 };

  constructor(
    private readonly inner: Netif,
    /** Largest super-segment accepted (the IP packet). Default 65535. */
    private readonly maxSize = 65535,
  ) {}

  get name(): string {
    return `${this.inner.name}+gso`;
  }
  get mtu(): number {
    return this.inner.mtu;
  }
  get features(): NetifFeatures {
    return { ...this.inner.features, tso: this.maxSize };
  }
  start(rx: NetifReceiver): void {
    this.inner.start(rx);
  }
  inputPending(): boolean {
    return this.inner.inputPending?.() ?? false;
  }
  stats(): NetifStats {
    return this.inner.stats();
  }
  close(): Promise<void> {
    return this.inner.close();
  }

  send(frame: Uint8Array, meta?: TxMeta): boolean {
    const mss = meta?.gsoSize ?? 0;
    if (!mss) return this.inner.send(frame, meta);
    const v4 = frame[12] === 0x08 && frame[13] === 0x00;
    const ipOff = ETH_HEADER_LEN;
    const ipHl = v4 ? (frame[ipOff]! & 0x0f) * 4 : 40;
    const tcpOff = ipOff + ipHl;
    if ((v4 ? frame[ipOff + 9] : frame[ipOff + 6]) !== IPPROTO_TCP) return this.inner.send(frame);
    const tcpHl = (frame[tcpOff + 12]! >> 4) * 4;
    const hdr = tcpOff + tcpHl;
    const payload = frame.length - hdr;
    if (payload <= mss) return this.inner.send(frame);
    this.gsoStats.superSegments++;
    const flags = frame[tcpOff + 13]!;
    const seq0 = ((frame[tcpOff + 4]! << 24) | (frame[tcpOff + 5]! << 16) | (frame[tcpOff + 6]! << 8) | frame[tcpOff + 7]!) >>> 0;
    const src = frame.subarray(ipOff + (v4 ? 12 : 8), ipOff + (v4 ? 16 : 24));
    const dst = frame.subarray(ipOff + (v4 ? 16 : 24), ipOff + (v4 ? 20 : 40));
    let ok = true;
    for (let off = 0; off < payload; off += mss) {
      const n = Math.min(mss, payload - off);
      const last = off + n >= payload;
      const seg = new Uint8Array(hdr + n);
      seg.set(frame.subarray(0, hdr));
      seg.set(frame.subarray(hdr + off, hdr + off + n), hdr);
      if (v4) {
        const total = ipHl + tcpHl + n;
        seg[ipOff + 2] = total >>> 8;
        seg[ipOff + 3] = total & 0xff;
        seg[ipOff + 10] = 0;
        seg[ipOff + 11] = 0;
        const c = finish(sum16(seg, ipOff, ipOff + ipHl));
        seg[ipOff + 10] = c >>> 8;
        seg[ipOff + 11] = c & 0xff;
      } else {
        const plen = tcpHl + n;
        seg[ipOff + 4] = plen >>> 8;
        seg[ipOff + 5] = plen & 0xff;
      }
      const seq = (seq0 + off) >>> 0;
      seg[tcpOff + 4] = seq >>> 24;
      seg[tcpOff + 5] = (seq >>> 16) & 0xff;
      seg[tcpOff + 6] = (seq >>> 8) & 0xff;
      seg[tcpOff + 7] = seq & 0xff;
      let f = flags;
      if (!last) f &= ~(FIN | PSH);
      if (off > 0) f &= ~CWR;
      seg[tcpOff + 13] = f;
      seg[tcpOff + 16] = 0;
      seg[tcpOff + 17] = 0;
      const len = tcpHl + n;
      const c = finish(sum16(seg, tcpOff, tcpOff + len, pseudoHeaderSum(src, dst, IPPROTO_TCP, len)));
      seg[tcpOff + 16] = c >>> 8;
      seg[tcpOff + 17] = c & 0xff;
      this.gsoStats.segments++;
      ok = this.inner.send(seg) && ok;
    }
    return ok;
  }
}
