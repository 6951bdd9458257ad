/** TCP header and options (RFC 9293 §3.1, RFC 7323, RFC 2018). Offsets from the TCP header start. */
import { finish, pseudoHeaderSum, sum16 } from "./checksum.js";

export const TCP = { SRC_PORT: 0, DST_PORT: 2, SEQ: 4, ACK: 8, DATA_OFF: 12, FLAGS: 13, WINDOW: 14, CHECKSUM: 16, URGENT: 18, MIN_HEADER_LEN: 20 } as const;
export const IPPROTO_TCP = 6;

export const FIN = 0x01;
export const SYN = 0x02;
export const RST = 0x04;
export const PSH = 0x08;
export const ACK = 0x10;
export const URG = 0x20;
export const ECE = 0x40;
export const CWR = 0x80;

export const OPT_EOL = 0;
export const OPT_NOP = 1;
export const OPT_MSS = 2;
export const OPT_WSCALE = 3;
export const OPT_SACK_PERMITTED = 4;
export const OPT_SACK = 5;
export const OPT_TIMESTAMP = 8;

/** A parsed segment. Reused per stack (parse in place): copy what you keep. */
export interface TcpSegment {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  headerLen: number;
  /** Payload view. */
  payload: Uint8Array;
  // options (-1 / false / 0 when absent)
  mss: number;
  wscale: number;
  sackPermitted: boolean;
  hasTimestamp: boolean;
  tsVal: number;
  tsEcr: number;
  /** SACK blocks as [left, right) pairs, flattened; count in sackCount. */
  sack: number[];
  sackCount: number;
}

export function newSegment(): TcpSegment {
  return { srcPort: 0, dstPort: 0, seq: 0, ack: 0, flags: 0, window: 0, headerLen: 0, payload: new Uint8Array(0), mss: -1, wscale: -1, sackPermitted: false, hasTimestamp: false, tsVal: 0, tsEcr: 0, sack: [0, 0, 0, 0, 0, 0, 0, 0], sackCount: 0 };
}

const u32 = (p: Uint8Array, o: number) => ((p[o]! << 24) | (p[o + 1]! << 16) | (p[o + 2]! << 8) | p[o + 3]!) >>> 0;

export type TcpParseError = "truncated" | "bad_data_offset" | "bad_option";

/** Parse `p` (the whole TCP segment) into `s`. Returns an error string or undefined on success. */
export function parseTcp(p: Uint8Array, s: TcpSegment): TcpParseError | undefined {
  if (p.length < TCP.MIN_HEADER_LEN) return "truncated";
  const hl = (p[12]! >> 4) * 4;
  if (hl < 20 || hl > p.length) return "bad_data_offset";
  s.srcPort = (p[0]! << 8) | p[1]!;
  s.dstPort = (p[2]! << 8) | p[3]!;
  s.seq = u32(p, 4);
  s.ack = u32(p, 8);
  s.flags = p[13]!;
  s.window = (p[14]! << 8) | p[15]!;
  s.headerLen = hl;
  s.payload = p.subarray(hl);
  s.mss = -1;
  s.wscale = -1;
  s.sackPermitted = false;
  s.hasTimestamp = false;
  s.tsVal = 0;
  s.tsEcr = 0;
  s.sackCount = 0;
  let o = 20;
  while (o < hl) {
    const kind = p[o]!;
    if (kind === OPT_EOL) break;
    if (kind === OPT_NOP) {
      o++;
      continue;
    }
    if (o + 2 > hl) return "bad_option";
    const len = p[o + 1]!;
    if (len < 2 || o + len > hl) return "bad_option";
    switch (kind) {
      case OPT_MSS:
        if (len !== 4) return "bad_option";
        s.mss = (p[o + 2]! << 8) | p[o + 3]!;
        break;
      case OPT_WSCALE:
        if (len !== 3) return "bad_option";
        s.wscale = Math.min(p[o + 2]!, 14); // RFC 7323 §2.3: values above 14 are treated as 14
        break;
      case OPT_SACK_PERMITTED:
        if (len !== 2) return "bad_option";
        s.sackPermitted = true;
        break;
      case OPT_SACK: {
        const n = (len - 2) / 8;
        if (!Number.isInteger(n) || n < 1 || n > 4) return "bad_option";
        for (let i = 0; i < n; i++) {
          s.sack[2 * i] = u32(p, o + 2 + 8 * i);
          s.sack[2 * i + 1] = u32(p, o + 6 + 8 * i);
        }
        s.sackCount = n;
        break;
      }
      case OPT_TIMESTAMP:
        if (len !== 10) return "bad_option";
        s.hasTimestamp = true;
        s.tsVal = u32(p, o + 2);
        s.tsEcr = u32(p, o + 6);
        break;
      default:
        break; // unknown options are skipped (RFC 9293 §3.2)
    }
    o += len;
  }
  return undefined;
}

export function tcpChecksumOk(p: Uint8Array, src: Uint8Array, dst: Uint8Array): boolean {
  return finish(sum16(p, 0, p.length, pseudoHeaderSum(src, dst, IPPROTO_TCP, p.length))) === 0;
}

export interface TcpEmit {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  mss?: number;
  wscale?: number;
  sackPermitted?: boolean;
  ts?: { val: number; ecr: number };
  /** SACK blocks [l0, r0, l1, r1, ...] (at most 4 blocks; 3 with timestamps). */
  sack?: number[];
}

/** Length of the options block `o` needs (padded to 4). */
export function optionsLength(o: TcpEmit): number {
  let n = 0;
  if (o.mss !== undefined) n += 4;
  if (o.wscale !== undefined) n += 4; // NOP + 3
  if (o.sackPermitted) n += o.ts ? 2 : 4; // with timestamps: SACK-permitted + TS share NOPs
  if (o.ts) n += o.sackPermitted ? 10 : 12;
  if (o.sack && o.sack.length > 0) n += 4 + 4 * o.sack.length; // NOP NOP kind len + 8 bytes per block
  return (n + 3) & ~3;
}

const put32 = (p: Uint8Array, o: number, v: number) => {
  p[o] = (v >>> 24) & 0xff;
  p[o + 1] = (v >>> 16) & 0xff;
  p[o + 2] = (v >>> 8) & 0xff;
  p[o + 3] = v & 0xff;
};

/**
 * Write a TCP header with options at `off`; the payload must already be in place right after
 * the header (`off + 20 + optionsLength(o)`), `payloadLen` bytes. Fills the checksum.
 * Returns the header length.
 */
/**
 * Write a TCP header (and checksum) in front of `payloadLen` bytes already at off + header length.
 * With `partial`, the checksum field gets only the pseudo-header sum, uncomplemented, for a netif
 * that completes it (virtio-net NEEDS_CSUM, as Linux's own TSO path does).
 */
export function emitTcp(buf: Uint8Array, off: number, o: TcpEmit, payloadLen: number, src: Uint8Array, dst: Uint8Array, partial = false): number {
  const ol = optionsLength(o);
  const hl = 20 + ol;
  buf[off] = o.srcPort >>> 8;
  buf[off + 1] = o.srcPort & 0xff;
  buf[off + 2] = o.dstPort >>> 8;
  buf[off + 3] = o.dstPort & 0xff;
  put32(buf, off + 4, o.seq);
  put32(buf, off + 8, o.ack);
  buf[off + 12] = (hl / 4) << 4;
  buf[off + 13] = o.flags;
  buf[off + 14] = (o.window >>> 8) & 0xff;
  buf[off + 15] = o.window & 0xff;
  buf[off + 16] = 0;
  buf[off + 17] = 0;
  buf[off + 18] = 0;
  buf[off + 19] = 0;
  let p = off + 20;
  if (o.mss !== undefined) {
    buf[p++] = OPT_MSS;
    buf[p++] = 4;
    buf[p++] = o.mss >>> 8;
    buf[p++] = o.mss & 0xff;
  }
  if (o.sackPermitted && o.ts) {
    buf[p++] = OPT_SACK_PERMITTED;
    buf[p++] = 2;
    buf[p++] = OPT_TIMESTAMP;
    buf[p++] = 10;
    put32(buf, p, o.ts.val);
    put32(buf, p + 4, o.ts.ecr);
    p += 8;
  } else {
    if (o.ts) {
      buf[p++] = OPT_NOP;
      buf[p++] = OPT_NOP;
      buf[p++] = OPT_TIMESTAMP;
      buf[p++] = 10;
      put32(buf, p, o.ts.val);
      put32(buf, p + 4, o.ts.ecr);
      p += 8;
    }
    if (o.sackPermitted) {
      buf[p++] = OPT_NOP;
      buf[p++] = OPT_NOP;
      buf[p++] = OPT_SACK_PERMITTED;
      buf[p++] = 2;
    }
  }
  if (o.wscale !== undefined) {
    buf[p++] = OPT_NOP;
    buf[p++] = OPT_WSCALE;
    buf[p++] = 3;
    buf[p++] = o.wscale;
  }
  if (o.sack && o.sack.length > 0) {
    buf[p++] = OPT_NOP;
    buf[p++] = OPT_NOP;
    buf[p++] = OPT_SACK;
    buf[p++] = 2 + 4 * o.sack.length;
    for (const v of o.sack) {
      put32(buf, p, v);
      p += 4;
    }
  }
  while (p < off + hl) buf[p++] = OPT_NOP;
  const len = hl + payloadLen;
  const c = partial ? pseudoHeaderSum(src, dst, IPPROTO_TCP, len) : finish(sum16(buf, off, off + len, pseudoHeaderSum(src, dst, IPPROTO_TCP, len)));
  buf[off + 16] = c >>> 8;
  buf[off + 17] = c & 0xff;
  return hl;
}
