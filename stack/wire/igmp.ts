/**
 * IGMP messages (RFC 2236 §2 for version 2; RFC 3376 §4.1 for the longer version 3 query, which
 * a version 2 host reads as a version 2 query, §7.2.1). Offsets from the start of the message.
 */
import { checksum } from "./checksum.js";

export const IPPROTO_IGMP = 2;
export const IGMP = { TYPE: 0, MAX_RESP: 1, CHECKSUM: 2, GROUP: 4, LEN: 8 } as const;

export const IGMP_QUERY = 0x11;
export const IGMP_V1_REPORT = 0x12;
export const IGMP_V2_REPORT = 0x16;
export const IGMP_LEAVE = 0x17;

export interface IgmpRepr {
  type: number;
  /** Max Response Time in tenths of a second (0 in a version 1 query). */
  maxResp: number;
  /** Group address view; 0.0.0.0 in a general query. */
  group: Uint8Array;
}

export function parseIgmp(p: Uint8Array): IgmpRepr | "truncated" | "bad_checksum" {
  if (p.length < IGMP.LEN) return "truncated";
  if (checksum(p, 0, p.length) !== 0) return "bad_checksum";
  return { type: p[0]!, maxResp: p[1]!, group: p.subarray(4, 8) };
}

/** Write an 8-byte message at `off` with its checksum. */
export function emitIgmp(buf: Uint8Array, off: number, type: number, maxResp: number, group: Uint8Array): void {
  buf[off] = type;
  buf[off + 1] = maxResp;
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  buf.set(group, off + 4);
  const c = checksum(buf, off, off + IGMP.LEN);
  buf[off + 2] = c >>> 8;
  buf[off + 3] = c & 0xff;
}
