/** UDP header (RFC 768). */
import { finish, pseudoHeaderSum, sum16 } from "./checksum.js";

export const UDP = { SRC_PORT: 0, DST_PORT: 2, LENGTH: 4, CHECKSUM: 6, HEADER_LEN: 8 } as const;
export const IPPROTO_UDP = 17;

export interface UdpRepr {
  srcPort: number;
  dstPort: number;
  /** View of the payload inside the packet. */
  payload: Uint8Array;
  /** Checksum field as received (0 = none, IPv4 only). */
  checksum: number;
}

export type UdpParseError = "truncated" | "bad_length";

export function parseUdp(p: Uint8Array): UdpRepr | UdpParseError {
  if (p.length < UDP.HEADER_LEN) return "truncated";
  const len = (p[UDP.LENGTH]! << 8) | p[UDP.LENGTH + 1]!;
  // The UDP length may be shorter than the IP payload (padding) but never longer or < 8.
  if (len < UDP.HEADER_LEN || len > p.length) return "bad_length";
  return {
    srcPort: (p[UDP.SRC_PORT]! << 8) | p[UDP.SRC_PORT + 1]!,
    dstPort: (p[UDP.DST_PORT]! << 8) | p[UDP.DST_PORT + 1]!,
    payload: p.subarray(UDP.HEADER_LEN, len),
    checksum: (p[UDP.CHECKSUM]! << 8) | p[UDP.CHECKSUM + 1]!,
  };
}

/** Verify the checksum of a UDP datagram `p` (exactly `length` bytes) with its pseudo-header. */
export function udpChecksumOk(p: Uint8Array, src: Uint8Array, dst: Uint8Array): boolean {
  const len = (p[UDP.LENGTH]! << 8) | p[UDP.LENGTH + 1]!;
  return finish(sum16(p, 0, len, pseudoHeaderSum(src, dst, IPPROTO_UDP, len))) === 0;
}

/**
 * Write a UDP header in front of a payload already in place at `off + 8` and fill the checksum.
 * A computed checksum of 0 is sent as 0xffff (RFC 768). `partial`: only the pseudo-header sum,
 * for a netif with checksum offload to complete (TxMeta.csumPartial).
 */
export function emitUdp(buf: Uint8Array, off: number, srcPort: number, dstPort: number, payloadLen: number, src: Uint8Array, dst: Uint8Array, partial = false): void {
  const len = UDP.HEADER_LEN + payloadLen;
  buf[off] = srcPort >>> 8;
  buf[off + 1] = srcPort & 0xff;
  buf[off + 2] = dstPort >>> 8;
  buf[off + 3] = dstPort & 0xff;
  buf[off + 4] = len >>> 8;
  buf[off + 5] = len & 0xff;
  if (partial) {
    const c = pseudoHeaderSum(src, dst, IPPROTO_UDP, len);
    buf[off + 6] = c >>> 8;
    buf[off + 7] = c & 0xff;
    return;
  }
  buf[off + 6] = 0;
  buf[off + 7] = 0;
  let c = finish(sum16(buf, off, off + len, pseudoHeaderSum(src, dst, IPPROTO_UDP, len)));
  if (c === 0) c = 0xffff;
  buf[off + 6] = c >>> 8;
  buf[off + 7] = c & 0xff;
}
