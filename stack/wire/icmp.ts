/**
 * ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) share a header shape: type, code, checksum, then a
 * 4-byte "rest of header" (identifier+sequence for echo, MTU for too-big / frag-needed).
 * ICMPv6's checksum covers a pseudo-header; ICMPv4's does not.
 */
import { finish, pseudoHeaderSum, sum16 } from "./checksum.js";

export const ICMP = { TYPE: 0, CODE: 1, CHECKSUM: 2, REST: 4, HEADER_LEN: 8 } as const;
export const IPPROTO_ICMP = 1;
export const IPPROTO_ICMPV6 = 58;

export const ICMPV4_ECHO_REPLY = 0;
export const ICMPV4_DEST_UNREACH = 3;
export const ICMPV4_ECHO_REQUEST = 8;
export const ICMPV4_TIME_EXCEEDED = 11;
export const ICMPV4_PARAM_PROBLEM = 12;
export const ICMPV4_UNREACH_NET = 0;
export const ICMPV4_UNREACH_HOST = 1;
export const ICMPV4_UNREACH_PROTOCOL = 2;
export const ICMPV4_UNREACH_PORT = 3;
export const ICMPV4_UNREACH_FRAG_NEEDED = 4;

export const ICMPV6_DEST_UNREACH = 1;
export const ICMPV6_PACKET_TOO_BIG = 2;
export const ICMPV6_TIME_EXCEEDED = 3;
export const ICMPV6_PARAM_PROBLEM = 4;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;
export const ICMPV6_ROUTER_SOLICIT = 133;
export const ICMPV6_ROUTER_ADVERT = 134;
export const ICMPV6_NEIGHBOR_SOLICIT = 135;
export const ICMPV6_NEIGHBOR_ADVERT = 136;
export const ICMPV6_REDIRECT = 137;
export const ICMPV6_UNREACH_NO_ROUTE = 0;
export const ICMPV6_UNREACH_ADDRESS = 3;
export const ICMPV6_UNREACH_PORT = 4;
export const ICMPV6_PARAM_NEXT_HEADER = 1;

export interface IcmpRepr {
  type: number;
  code: number;
  /** The 4 bytes after the checksum, as a big-endian u32. */
  rest: number;
  /** Body after the 8-byte header (echo data, or the invoking packet for errors). */
  body: Uint8Array;
}

export function parseIcmp(p: Uint8Array): IcmpRepr | "truncated" {
  if (p.length < ICMP.HEADER_LEN) return "truncated";
  return {
    type: p[0]!,
    code: p[1]!,
    rest: ((p[4]! << 24) | (p[5]! << 16) | (p[6]! << 8) | p[7]!) >>> 0,
    body: p.subarray(8),
  };
}

export function icmpv4ChecksumOk(p: Uint8Array): boolean {
  return finish(sum16(p, 0, p.length)) === 0;
}

export function icmpv6ChecksumOk(p: Uint8Array, src: Uint8Array, dst: Uint8Array): boolean {
  return finish(sum16(p, 0, p.length, pseudoHeaderSum(src, dst, IPPROTO_ICMPV6, p.length))) === 0;
}

/** Write an ICMP header at `off` for a message of `len` bytes (body already in place) and fill the checksum. For ICMPv6 pass src/dst. */
export function emitIcmp(buf: Uint8Array, off: number, len: number, type: number, code: number, rest: number, src?: Uint8Array, dst?: Uint8Array): void {
  buf[off] = type;
  buf[off + 1] = code;
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  buf[off + 4] = (rest >>> 24) & 0xff;
  buf[off + 5] = (rest >>> 16) & 0xff;
  buf[off + 6] = (rest >>> 8) & 0xff;
  buf[off + 7] = rest & 0xff;
  const init = src && dst ? pseudoHeaderSum(src, dst, IPPROTO_ICMPV6, len) : 0;
  const c = finish(sum16(buf, off, off + len, init));
  buf[off + 2] = c >>> 8;
  buf[off + 3] = c & 0xff;
}
