/**
 * Neighbor Discovery messages and options (RFC 4861 §4). Offsets are from the start of the
 * ICMPv6 message. Options are (type, length in units of 8 bytes, value); length 0 is invalid.
 */

export const NDP_OPT_SOURCE_LLADDR = 1;
export const NDP_OPT_TARGET_LLADDR = 2;
export const NDP_OPT_PREFIX_INFO = 3;
export const NDP_OPT_REDIRECTED = 4;
export const NDP_OPT_MTU = 5;

/** Where options start in each message (§4.1-4.4). */
export const NDP_OPTIONS_OFFSET = { rs: 8, ra: 16, ns: 24, na: 24 } as const;

export interface PrefixInfo {
  prefixLength: number;
  onLink: boolean; // L
  autonomous: boolean; // A
  validLifetime: number; // seconds, 0xffffffff = infinity
  preferredLifetime: number;
  prefix: Uint8Array; // view, 16 bytes
}

export interface NdpOptions {
  sourceLladdr?: Uint8Array;
  targetLladdr?: Uint8Array;
  prefixes: PrefixInfo[];
  mtu?: number;
}

/** Parse the options of an NDP message starting at `off`. Returns "bad_option" for any length error (§4.6: the whole message is dropped). */
export function parseNdpOptions(p: Uint8Array, off: number): NdpOptions | "bad_option" {
  const out: NdpOptions = { prefixes: [] };
  while (off < p.length) {
    if (off + 2 > p.length) return "bad_option";
    const type = p[off]!;
    const len = p[off + 1]! * 8;
    if (len === 0 || off + len > p.length) return "bad_option";
    switch (type) {
      case NDP_OPT_SOURCE_LLADDR:
      case NDP_OPT_TARGET_LLADDR:
        if (len < 8) return "bad_option";
        if (type === NDP_OPT_SOURCE_LLADDR) out.sourceLladdr = p.subarray(off + 2, off + 8);
        else out.targetLladdr = p.subarray(off + 2, off + 8);
        break;
      case NDP_OPT_PREFIX_INFO: {
        if (len !== 32) return "bad_option";
        const flags = p[off + 3]!;
        out.prefixes.push({
          prefixLength: p[off + 2]!,
          onLink: (flags & 0x80) !== 0,
          autonomous: (flags & 0x40) !== 0,
          validLifetime: u32(p, off + 4),
          preferredLifetime: u32(p, off + 8),
          prefix: p.subarray(off + 16, off + 32),
        });
        break;
      }
      case NDP_OPT_MTU:
        if (len !== 8) return "bad_option";
        out.mtu = u32(p, off + 4);
        break;
      default:
        break; // unknown options are skipped (§4.6)
    }
    off += len;
  }
  return out;
}

export function u32(p: Uint8Array, o: number): number {
  return ((p[o]! << 24) | (p[o + 1]! << 16) | (p[o + 2]! << 8) | p[o + 3]!) >>> 0;
}

export function putU32(p: Uint8Array, o: number, v: number): void {
  p[o] = (v >>> 24) & 0xff;
  p[o + 1] = (v >>> 16) & 0xff;
  p[o + 2] = (v >>> 8) & 0xff;
  p[o + 3] = v & 0xff;
}

/** Write a link-layer address option (8 bytes) at `off`. */
export function emitLladdrOption(p: Uint8Array, off: number, type: number, mac: Uint8Array): void {
  p[off] = type;
  p[off + 1] = 1;
  p.set(mac, off + 2);
}

export interface RouterAdvert {
  curHopLimit: number;
  managed: boolean;
  other: boolean;
  routerLifetime: number; // seconds
  reachableTime: number; // ms
  retransTimer: number; // ms
}

export function parseRouterAdvert(p: Uint8Array): RouterAdvert | "truncated" {
  if (p.length < 16) return "truncated";
  return {
    curHopLimit: p[4]!,
    managed: (p[5]! & 0x80) !== 0,
    other: (p[5]! & 0x40) !== 0,
    routerLifetime: (p[6]! << 8) | p[7]!,
    reachableTime: u32(p, 8),
    retransTimer: u32(p, 12),
  };
}

/** Emit a prefix information option (32 bytes) — used by tests that play a router. */
export function emitPrefixOption(p: Uint8Array, off: number, info: Omit<PrefixInfo, "prefix"> & { prefix: Uint8Array }): void {
  p[off] = NDP_OPT_PREFIX_INFO;
  p[off + 1] = 4;
  p[off + 2] = info.prefixLength;
  p[off + 3] = (info.onLink ? 0x80 : 0) | (info.autonomous ? 0x40 : 0);
  putU32(p, off + 4, info.validLifetime);
  putU32(p, off + 8, info.preferredLifetime);
  putU32(p, off + 12, 0);
  p.set(info.prefix.subarray(0, 16), off + 16);
}
