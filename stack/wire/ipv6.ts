/** IPv6 fixed header (RFC 8200 §3) and extension-header walking (§4). */

export const IPV6 = {
  VER_TC_FLOW: 0,
  PAYLOAD_LEN: 4,
  NEXT_HEADER: 6,
  HOP_LIMIT: 7,
  SRC: 8,
  DST: 24,
  HEADER_LEN: 40,
} as const;

export const NH_HOP_BY_HOP = 0;
export const NH_ROUTING = 43;
export const NH_FRAGMENT = 44;
export const NH_ESP = 50;
export const NH_AH = 51;
export const NH_NONE = 59;
export const NH_DEST_OPTS = 60;

export interface Ipv6Repr {
  trafficClass: number;
  flowLabel: number;
  payloadLen: number;
  nextHeader: number;
  hopLimit: number;
  src: Uint8Array; // view
  dst: Uint8Array; // view
  /** Everything after the fixed header, trimmed to payloadLen. */
  payload: Uint8Array;
}

export type Ipv6ParseError = "truncated" | "bad_version" | "bad_payload_length";

export function parseIpv6(p: Uint8Array): Ipv6Repr | Ipv6ParseError {
  if (p.length < IPV6.HEADER_LEN) return "truncated";
  if (p[0]! >> 4 !== 6) return "bad_version";
  const payloadLen = (p[4]! << 8) | p[5]!;
  // Jumbograms (payload length 0 + hop-by-hop option) are not supported on Ethernet links.
  if (IPV6.HEADER_LEN + payloadLen > p.length) return "bad_payload_length";
  return {
    trafficClass: ((p[0]! & 0x0f) << 4) | (p[1]! >> 4),
    flowLabel: ((p[1]! & 0x0f) << 16) | (p[2]! << 8) | p[3]!,
    payloadLen,
    nextHeader: p[6]!,
    hopLimit: p[7]!,
    src: p.subarray(8, 24),
    dst: p.subarray(24, 40),
    payload: p.subarray(IPV6.HEADER_LEN, IPV6.HEADER_LEN + payloadLen),
  };
}

export interface Ipv6EmitOptions {
  trafficClass?: number;
  flowLabel?: number;
  nextHeader: number;
  hopLimit: number;
  src: Uint8Array;
  dst: Uint8Array;
  payloadLen: number;
}

export function emitIpv6(buf: Uint8Array, off: number, o: Ipv6EmitOptions): void {
  const tc = o.trafficClass ?? 0;
  const fl = o.flowLabel ?? 0;
  buf[off] = 0x60 | (tc >> 4);
  buf[off + 1] = ((tc & 0x0f) << 4) | ((fl >> 16) & 0x0f);
  buf[off + 2] = (fl >> 8) & 0xff;
  buf[off + 3] = fl & 0xff;
  buf[off + 4] = o.payloadLen >>> 8;
  buf[off + 5] = o.payloadLen & 0xff;
  buf[off + 6] = o.nextHeader;
  buf[off + 7] = o.hopLimit;
  buf.set(o.src, off + 8);
  buf.set(o.dst, off + 24);
}

/** The Jumbo Payload hop-by-hop option (RFC 2675 §2): type, length 4, a 32-bit payload length. */
export const OPT_JUMBO = 0xc2;

/**
 * Check a Jumbo Payload option at `optoff` (packet offsets; its 6 bytes are known to be there)
 * the way RFC 2675 §3 and Linux's ipv6_hop_jumbo() do, in that order: a bad option length or
 * alignment (4n+2) is dropped silently; a Jumbo Payload Length under 65,536 is a parameter
 * problem at that field; with a non-zero IPv6 Payload Length, one at the option type.
 * "jumbogram": the option is well formed (the caller decides whether the bytes are there).
 */
export function checkJumbo(p: Uint8Array, optoff: number, payloadLen: number): "bad_jumbo_option" | "jumbogram" | { reason: string; pointer: number } {
  if (p[optoff + 1] !== 4 || (optoff & 3) !== 2) return "bad_jumbo_option";
  const jumboLen = ((p[optoff + 2]! << 24) | (p[optoff + 3]! << 16) | (p[optoff + 4]! << 8) | p[optoff + 5]!) >>> 0;
  if (jumboLen <= 65535) return { reason: "jumbo_length", pointer: optoff + 2 };
  if (payloadLen !== 0) return { reason: "jumbo_with_payload_length", pointer: optoff };
  return "jumbogram";
}

/** Fragment extension header (RFC 8200 §4.5): 8 bytes. */
export const FRAG = { NEXT_HEADER: 0, OFFSET_FLAGS: 2, IDENT: 4, LEN: 8 } as const;

export interface Ipv6FragmentRepr {
  nextHeader: number;
  /** Offset in bytes. */
  offset: number;
  moreFragments: boolean;
  ident: number;
}

export function parseFragmentHeader(p: Uint8Array, off: number): Ipv6FragmentRepr | undefined {
  if (off + FRAG.LEN > p.length) return undefined;
  const of = (p[off + 2]! << 8) | p[off + 3]!;
  return {
    nextHeader: p[off]!,
    offset: of & 0xfff8,
    moreFragments: (of & 1) === 1,
    ident: ((p[off + 4]! << 24) | (p[off + 5]! << 16) | (p[off + 6]! << 8) | p[off + 7]!) >>> 0,
  };
}

export function emitFragmentHeader(buf: Uint8Array, off: number, nextHeader: number, offset: number, more: boolean, ident: number): void {
  buf[off] = nextHeader;
  buf[off + 1] = 0;
  const of = (offset & 0xfff8) | (more ? 1 : 0);
  buf[off + 2] = of >>> 8;
  buf[off + 3] = of & 0xff;
  buf[off + 4] = (ident >>> 24) & 0xff;
  buf[off + 5] = (ident >>> 16) & 0xff;
  buf[off + 6] = (ident >>> 8) & 0xff;
  buf[off + 7] = ident & 0xff;
}

/**
 * An 8-byte hop-by-hop header carrying the Router Alert option (RFC 2711) with `value` (0: MLD,
 * RFC 3810 §5), padded with PadN.
 */
export function emitRouterAlertHopByHop(buf: Uint8Array, off: number, nextHeader: number, value = 0): void {
  buf[off] = nextHeader;
  buf[off + 1] = 0; // (0 + 1) x 8 bytes
  buf[off + 2] = 5; // Router Alert
  buf[off + 3] = 2;
  buf[off + 4] = value >>> 8;
  buf[off + 5] = value & 0xff;
  buf[off + 6] = 1; // PadN, no data
  buf[off + 7] = 0;
}
