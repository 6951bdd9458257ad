/** IPv4 header (RFC 791). Offsets from the start of the IP header. */
import { checksum } from "./checksum.js";

export const IPV4 = {
  VER_IHL: 0,
  DSCP_ECN: 1,
  TOTAL_LEN: 2,
  IDENT: 4,
  FLAGS_FRAG: 6,
  TTL: 8,
  PROTOCOL: 9,
  CHECKSUM: 10,
  SRC: 12,
  DST: 16,
  MIN_HEADER_LEN: 20,
} as const;

export const IPV4_FLAG_DF = 0x4000;
export const IPV4_FLAG_MF = 0x2000;
export const IPV4_FRAG_OFFSET_MASK = 0x1fff;

export interface Ipv4Repr {
  headerLen: number;
  totalLen: number;
  tos: number;
  ident: number;
  dontFragment: boolean;
  moreFragments: boolean;
  /** Fragment offset in bytes. */
  fragOffset: number;
  ttl: number;
  protocol: number;
  src: Uint8Array; // view
  dst: Uint8Array; // view
  /** Payload view, trimmed to totalLen (link padding removed). */
  payload: Uint8Array;
}

export type Ipv4ParseError = "truncated" | "bad_version" | "bad_header_length" | "bad_total_length" | "bad_checksum";

/**
 * Validate and parse (RFC 1122 §3.2.1.1-3.2.1.2): version, IHL >= 5, total length within the
 * frame, header checksum. Options are skipped (the header length covers them).
 */
export function parseIpv4(p: Uint8Array, verifyChecksum = true): Ipv4Repr | Ipv4ParseError {
  const headerLen = checkIpv4(p, verifyChecksum);
  if (typeof headerLen === "string") return headerLen;
  const totalLen = (p[2]! << 8) | p[3]!;
  const ff = (p[6]! << 8) | p[7]!;
  return {
    headerLen,
    totalLen,
    tos: p[1]!,
    ident: (p[4]! << 8) | p[5]!,
    dontFragment: (ff & IPV4_FLAG_DF) !== 0,
    moreFragments: (ff & IPV4_FLAG_MF) !== 0,
    fragOffset: (ff & IPV4_FRAG_OFFSET_MASK) * 8,
    ttl: p[8]!,
    protocol: p[9]!,
    src: p.subarray(12, 16),
    dst: p.subarray(16, 20),
    payload: p.subarray(headerLen, totalLen),
  };
}

/**
 * parseIpv4's checks alone, for the receive path, which reads the fields it needs in place and
 * allocates nothing: the header length, or what is wrong.
 */
export function checkIpv4(p: Uint8Array, verifyChecksum = true): number | Ipv4ParseError {
  if (p.length < IPV4.MIN_HEADER_LEN) return "truncated";
  const vihl = p[0]!;
  if (vihl >> 4 !== 4) return "bad_version";
  const headerLen = (vihl & 0x0f) * 4;
  if (headerLen < IPV4.MIN_HEADER_LEN || headerLen > p.length) return "bad_header_length";
  const totalLen = (p[2]! << 8) | p[3]!;
  if (totalLen < headerLen || totalLen > p.length) return "bad_total_length";
  if (verifyChecksum && checksum(p, 0, headerLen) !== 0) return "bad_checksum";
  return headerLen;
}

export interface Ipv4EmitOptions {
  tos?: number;
  ident: number;
  dontFragment?: boolean;
  moreFragments?: boolean;
  fragOffset?: number; // bytes, multiple of 8
  ttl: number;
  protocol: number;
  src: Uint8Array;
  dst: Uint8Array;
  payloadLen: number;
  /** Add the Router Alert option (RFC 2113; IGMP, RFC 2236 §2): a 24-byte header. */
  routerAlert?: boolean;
}

/** Bytes of a header with the Router Alert option. */
export const IPV4_ROUTER_ALERT_HEADER_LEN = 24;

/** Write a 20-byte header (24 with Router Alert) at `off` and fill its checksum. */
export function emitIpv4(buf: Uint8Array, off: number, o: Ipv4EmitOptions): void {
  const hl = o.routerAlert ? IPV4_ROUTER_ALERT_HEADER_LEN : IPV4.MIN_HEADER_LEN;
  const total = hl + o.payloadLen;
  buf[off] = 0x40 | (hl >> 2);
  buf[off + 1] = o.tos ?? 0;
  buf[off + 2] = total >>> 8;
  buf[off + 3] = total & 0xff;
  buf[off + 4] = o.ident >>> 8;
  buf[off + 5] = o.ident & 0xff;
  const ff = (o.dontFragment ? IPV4_FLAG_DF : 0) | (o.moreFragments ? IPV4_FLAG_MF : 0) | (((o.fragOffset ?? 0) / 8) & IPV4_FRAG_OFFSET_MASK);
  buf[off + 6] = ff >>> 8;
  buf[off + 7] = ff & 0xff;
  buf[off + 8] = o.ttl;
  buf[off + 9] = o.protocol;
  buf[off + 10] = 0;
  buf[off + 11] = 0;
  buf.set(o.src, off + 12);
  buf.set(o.dst, off + 16);
  if (o.routerAlert) {
    // Router Alert: copied flag + option 20, length 4, value 0 ("examine this packet").
    buf[off + 20] = 0x94;
    buf[off + 21] = 4;
    buf[off + 22] = 0;
    buf[off + 23] = 0;
  }
  const c = checksum(buf, off, off + hl);
  buf[off + 10] = c >>> 8;
  buf[off + 11] = c & 0xff;
}
