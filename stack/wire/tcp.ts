/** TCP header and options (RFC 9293 §3.1, RFC 7323, RFC 2018). Offsets from the TCP header start. */
import { finish, pseudoHeaderSum, sum16 } from "./checksum.js";
import { DOUBLE_ZERO } from "../core/double.js";

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
  return {
    srcPort: 0,
    dstPort: 0,
    seq: DOUBLE_ZERO,
    ack: DOUBLE_ZERO,
    flags: 0,
    window: 0,
    headerLen: 0,
    payload: new Uint8Array(0),
    mss: -1,
    wscale: -1,
    sackPermitted: false,
    hasTimestamp: false,
    tsVal: DOUBLE_ZERO,
    tsEcr: DOUBLE_ZERO,
    // Sequence numbers: doubles from the start (core/double.ts).
    sack: [DOUBLE_ZERO, DOUBLE_ZERO, DOUBLE_ZERO, DOUBLE_ZERO, DOUBLE_ZERO, DOUBLE_ZERO, DOUBLE_ZERO, DOUBLE_ZERO],
    sackCount: 0,
  };
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
  for (const codec of TCP_OPTIONS) codec.reset(s);
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
    // Unknown options are skipped (RFC 9293 §3.2); a known one with a bad length is an error.
    const codec = BY_KIND[kind];
    if (codec && !codec.parse(p, o, len, s)) return "bad_option";
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

const put32 = (p: Uint8Array, o: number, v: number) => {
  p[o] = (v >>> 24) & 0xff;
  p[o + 1] = (v >>> 16) & 0xff;
  p[o + 2] = (v >>> 8) & 0xff;
  p[o + 3] = v & 0xff;
};

/**
 * One TCP option: how it is parsed into a TcpSegment and written from a TcpEmit. A new option is
 * one entry here (with its fields in TcpSegment, TcpEmit and newSegment()); nothing else in the
 * stack walks option bytes.
 */
export interface TcpOptionCodec {
  readonly kind: number;
  /** Bytes the option takes in a header built from `o` (kind and length included); 0: absent. */
  size(o: TcpEmit): number;
  emit(buf: Uint8Array, p: number, o: TcpEmit): void;
  /** Read the option of `len` bytes at `p` into `s`; false if it is malformed. */
  parse(b: Uint8Array, p: number, len: number, s: TcpSegment): boolean;
  /** Clear its fields in `s` before a segment is parsed. */
  reset(s: TcpSegment): void;
}

/**
 * In the order they are written. Each option is preceded by the NOPs that end it on a 32-bit
 * boundary, so the common layouts are Linux's (NOP NOP TS on data segments: the kernel's header
 * prediction fast path, RFC 7323 Appendix A; NOP NOP SACK after it).
 */
export const TCP_OPTIONS: readonly TcpOptionCodec[] = [
  {
    kind: OPT_MSS, // RFC 9293 §3.2: SYN only
    size: (o) => (o.mss !== undefined ? 4 : 0),
    emit: (b, p, o) => {
      b[p] = OPT_MSS;
      b[p + 1] = 4;
      b[p + 2] = o.mss! >>> 8;
      b[p + 3] = o.mss! & 0xff;
    },
    parse: (b, p, len, s) => {
      if (len !== 4) return false;
      s.mss = (b[p + 2]! << 8) | b[p + 3]!;
      return true;
    },
    reset: (s) => void (s.mss = -1),
  },
  {
    kind: OPT_SACK_PERMITTED, // RFC 2018 §2
    size: (o) => (o.sackPermitted ? 2 : 0),
    emit: (b, p) => {
      b[p] = OPT_SACK_PERMITTED;
      b[p + 1] = 2;
    },
    parse: (_b, _p, len, s) => {
      if (len !== 2) return false;
      s.sackPermitted = true;
      return true;
    },
    reset: (s) => void (s.sackPermitted = false),
  },
  {
    kind: OPT_TIMESTAMP, // RFC 7323 §3
    size: (o) => (o.ts ? 10 : 0),
    emit: (b, p, o) => {
      b[p] = OPT_TIMESTAMP;
      b[p + 1] = 10;
      put32(b, p + 2, o.ts!.val);
      put32(b, p + 6, o.ts!.ecr);
    },
    parse: (b, p, len, s) => {
      if (len !== 10) return false;
      s.hasTimestamp = true;
      s.tsVal = u32(b, p + 2);
      s.tsEcr = u32(b, p + 6);
      return true;
    },
    reset: (s) => {
      s.hasTimestamp = false;
      s.tsVal = 0;
      s.tsEcr = 0;
    },
  },
  {
    kind: OPT_WSCALE, // RFC 7323 §2
    size: (o) => (o.wscale !== undefined ? 3 : 0),
    emit: (b, p, o) => {
      b[p] = OPT_WSCALE;
      b[p + 1] = 3;
      b[p + 2] = o.wscale!;
    },
    parse: (b, p, len, s) => {
      if (len !== 3) return false;
      s.wscale = Math.min(b[p + 2]!, 14); // RFC 7323 §2.3: values above 14 are treated as 14
      return true;
    },
    reset: (s) => void (s.wscale = -1),
  },
  {
    kind: OPT_SACK, // RFC 2018 §3: 1 to 4 blocks of [left, right)
    size: (o) => (o.sack && o.sack.length > 0 ? 2 + 4 * o.sack.length : 0),
    emit: (b, p, o) => {
      const blocks = o.sack!;
      b[p] = OPT_SACK;
      b[p + 1] = 2 + 4 * blocks.length;
      for (let i = 0; i < blocks.length; i++) put32(b, p + 2 + 4 * i, blocks[i]!);
    },
    parse: (b, p, len, s) => {
      const n = (len - 2) / 8;
      if (!Number.isInteger(n) || n < 1 || n > 4) return false;
      for (let i = 0; i < n; i++) {
        s.sack[2 * i] = u32(b, p + 2 + 8 * i);
        s.sack[2 * i + 1] = u32(b, p + 6 + 8 * i);
      }
      s.sackCount = n;
      return true;
    },
    reset: (s) => void (s.sackCount = 0),
  },
];

const BY_KIND: Array<TcpOptionCodec | undefined> = [];
for (const c of TCP_OPTIONS) BY_KIND[c.kind] = c;

/** Length of the options block `o` needs, NOPs included, padded to 4. */
export function optionsLength(o: TcpEmit): number {
  let n = 0;
  for (const codec of TCP_OPTIONS) {
    const k = codec.size(o);
    if (k > 0) n = (n + k + 3) & ~3;
  }
  return n;
}

/**
 * Write a TCP header with its options at `off`, in front of `payloadLen` bytes already in place
 * right after it (`off + 20 + optionsLength(o)`), and fill the checksum; returns the header
 * length. With `partial`, the checksum field gets only the pseudo-header sum, uncomplemented, for
 * a netif that completes it (virtio-net NEEDS_CSUM, as Linux's own TSO path does).
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
  for (const codec of TCP_OPTIONS) {
    const n = codec.size(o);
    if (n === 0) continue;
    for (let pad = (4 - ((p - off + n) & 3)) & 3; pad > 0; pad--) buf[p++] = OPT_NOP;
    codec.emit(buf, p, o);
    p += n;
  }
  while (p < off + hl) buf[p++] = OPT_NOP;
  const len = hl + payloadLen;
  const c = partial ? pseudoHeaderSum(src, dst, IPPROTO_TCP, len) : finish(sum16(buf, off, off + len, pseudoHeaderSum(src, dst, IPPROTO_TCP, len)));
  buf[off + 16] = c >>> 8;
  buf[off + 17] = c & 0xff;
  return hl;
}
