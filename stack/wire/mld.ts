/**
 * Multicast Listener Discovery messages (ICMPv6): version 2 (RFC 3810 §5) and the version 1
 * messages a version 2 host still meets (RFC 2710 §3). Offsets from the start of the ICMPv6
 * message; the ICMPv6 header and checksum are written with emitIcmp.
 */
import { parseIPv6 } from "./addr.js";

export const MLD_QUERY = 130;
export const MLD_V1_REPORT = 131;
export const MLD_V1_DONE = 132;
export const MLD_V2_REPORT = 143;

/** Multicast address record types (§5.2.12). */
export const MODE_IS_EXCLUDE = 2;
export const CHANGE_TO_INCLUDE = 3;
export const CHANGE_TO_EXCLUDE = 4;

/** ff02::16, where version 2 reports go (§5.2.14). */
export const ALL_MLDV2_ROUTERS = parseIPv6("ff02::16");

export const MLD_V1_LEN = 24;
export const MLD_V2_QUERY_MIN_LEN = 28;
export const MLD_V2_RECORD_LEN = 20;

export interface MldQuery {
  version: 1 | 2;
  /** Maximum Response Delay in ms (§5.1.3's floating-point form decoded). */
  maxRespMs: number;
  /** Group view; :: in a general query. */
  group: Uint8Array;
}

/** A query: 24 bytes is version 1, 28 or more version 2 (§8.1); anything else is invalid. */
export function parseMldQuery(m: Uint8Array): MldQuery | "truncated" {
  if (m.length < MLD_V1_LEN || (m.length > MLD_V1_LEN && m.length < MLD_V2_QUERY_MIN_LEN)) return "truncated";
  const code = (m[4]! << 8) | m[5]!;
  const version = m.length === MLD_V1_LEN ? 1 : 2;
  const maxRespMs = version === 2 && code >= 0x8000 ? ((code & 0x0fff) | 0x1000) << (((code >> 12) & 0x07) + 3) : code;
  return { version, maxRespMs, group: m.subarray(8, 24) };
}

/** Write the records of a version 2 report after its 8-byte header at `off` (no sources); returns the message length. */
export function emitMldV2Records(buf: Uint8Array, off: number, records: ReadonlyArray<{ type: number; group: Uint8Array }>): number {
  let o = off + 8;
  for (const r of records) {
    buf[o] = r.type;
    buf[o + 1] = 0; // aux data length
    buf[o + 2] = 0; // number of sources
    buf[o + 3] = 0;
    buf.set(r.group, o + 4);
    o += MLD_V2_RECORD_LEN;
  }
  return o - off;
}
