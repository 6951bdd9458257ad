/**
 * UDP segmentation offload on transmit (Linux's UDP GSO, taken from a TAP since Linux 6.2 when
 * TUNSETOFFLOAD accepts TUN_F_USO4|TUN_F_USO6). Consecutive datagrams of one flow are written as
 * one super-frame whose virtio-net header (VIRTIO_NET_HDR_GSO_UDP_L4, gso_size) has the kernel
 * cut it back into the very same datagrams: one write(2) instead of one per datagram. An echo
 * server answering a batch of 30 requests from one client, or a sender streaming datagrams to one
 * peer, writes once per batch.
 *
 * "The same datagrams" is the rule for what may join a run: frames that differ only where the
 * kernel's segmentation rewrites them (IP total length, IPv4 header checksum, UDP length and
 * checksum, and an IPv4 ID that counts up by one from the first), with equal payload sizes (the
 * last may be shorter), no IP options, IPv6 extension headers, fragments or Ethernet padding.
 * Anything else is written as it is.
 */
import { checksum, pseudoHeaderSum } from "../wire/checksum.js";
import { ETH_HEADER_LEN } from "./netif.js";

/**
 * The mark (see coalesceUdp) of a plain frame whose TCP or UDP checksum the kernel completes
 * (TxMeta.csumPartial): above any gso_size. Such a datagram may join a run like an unmarked one.
 */
export const MARK_CSUM = 0x10000;

/** A mark of a frame that is not a super-frame (0, or MARK_CSUM). */
export const isPlain = (mark: number | undefined): boolean => !mark || mark === MARK_CSUM;

/** Datagrams in one super-frame at most (the kernel's limit on UDP GSO segments is 64 or more). */
export const USO_MAX_SEGMENTS = 64;
/** The largest IP packet a super-frame may be (headers included, for IPv6 too). */
const IP_MAX = 0xffff;
const IPV4_HDR = 20;
const IPV6_HDR = 40;
const UDP_HDR = 8;
const IPPROTO_UDP = 17;

/** The UDP header's offset in `f` if it is a datagram that may join a run, else -1. */
export function udpRunOffset(f: Uint8Array): number {
  if (f.length < ETH_HEADER_LEN + IPV4_HDR + UDP_HDR) return -1;
  const e = ETH_HEADER_LEN;
  let l4: number;
  let ipPayload: number;
  if (f[12] === 0x08 && f[13] === 0x00) {
    // IPv4 without options, not a fragment (MF clear, offset 0), its total length the frame's.
    if (f[e] !== 0x45 || f[e + 9] !== IPPROTO_UDP || (f[e + 6]! & 0x3f) !== 0 || f[e + 7] !== 0) return -1;
    if (((f[e + 2]! << 8) | f[e + 3]!) !== f.length - e) return -1;
    l4 = e + IPV4_HDR;
    ipPayload = f.length - l4;
  } else if (f[12] === 0x86 && f[13] === 0xdd) {
    // IPv6 with UDP as the first next header (no extension headers).
    if (f.length < e + IPV6_HDR + UDP_HDR || f[e]! >> 4 !== 6 || f[e + 6] !== IPPROTO_UDP) return -1;
    if (((f[e + 4]! << 8) | f[e + 5]!) !== f.length - e - IPV6_HDR) return -1;
    l4 = e + IPV6_HDR;
    ipPayload = f.length - l4;
  } else return -1;
  if (((f[l4 + 4]! << 8) | f[l4 + 5]!) !== ipPayload) return -1;
  return l4;
}

function sameBytes(a: Uint8Array, b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Whether `b` is the `k`-th datagram after `a` in a run (both passed udpRunOffset with `l4`):
 * the same Ethernet header, IP header but for the fields segmentation rewrites, and ports.
 */
function continuesRun(a: Uint8Array, b: Uint8Array, l4: number, k: number): boolean {
  const e = ETH_HEADER_LEN;
  if (!sameBytes(a, b, 0, e)) return false;
  if (l4 === e + IPV4_HDR) {
    // Version/IHL, TOS; flags (DF); TTL, protocol; addresses; ports. ID: the first's plus k.
    if (a[e + 1] !== b[e + 1] || a[e + 6] !== b[e + 6] || a[e + 8] !== b[e + 8]) return false;
    if (!sameBytes(a, b, e + 12, e + 20) || !sameBytes(a, b, l4, l4 + 4)) return false;
    const idA = (a[e + 4]! << 8) | a[e + 5]!;
    const idB = (b[e + 4]! << 8) | b[e + 5]!;
    return ((idB - idA) & 0xffff) === k;
  }
  // Version, traffic class, flow label; next header, hop limit; addresses; ports.
  return sameBytes(a, b, e, e + 4) && sameBytes(a, b, e + 6, e + IPV6_HDR) && sameBytes(a, b, l4, l4 + 4);
}

/**
 * Whether `b`, the `k`-th frame after `a`, may join the run `a` starts (`a` passed udpRunOffset
 * with `l4`; its datagram is `size` bytes, the run holds `total` so far): no larger, not empty,
 * the packet within 64 KB, and the same flow.
 */
function joins(a: Uint8Array, b: Uint8Array, l4: number, size: number, total: number, k: number): boolean {
  const bs = b.length - l4 - UDP_HDR;
  return bs > 0 && bs <= size && l4 - ETH_HEADER_LEN + UDP_HDR + total + bs <= IP_MAX && udpRunOffset(b) === l4 && continuesRun(a, b, l4, k);
}

/** Whether plain frames `a` then `b` start a run: the look that decides if coalesceUdp is worth a call. */
export function startsRun(a: Uint8Array, b: Uint8Array): boolean {
  const l4 = udpRunOffset(a);
  const size = a.length - l4 - UDP_HDR;
  return l4 >= 0 && size > 0 && joins(a, b, l4, size, size, 1);
}

/** What coalesceUdp hands back: the frames to write, their marks, and datagrams in each. */
export interface UdpCoalesced {
  frames: Uint8Array[];
  /** As the input's marks (a TCP super-frame's gso_size, MARK_CSUM, or 0), and -gso_size for a UDP super-frame. */
  marks: number[];
  /** Datagrams each frame carries (1 but for UDP super-frames). */
  counts: number[];
  /** UDP super-frames made, and the datagrams merged into them. */
  superFrames: number;
  merged: number;
}

/**
 * Runs of at least two datagrams in `frames` (in order; frames marked as TCP or UDP super-frames
 * are left alone, see isPlain) become one UDP super-frame each, built in a buffer from `alloc`;
 * the frames merged into it are handed to `release` (their buffers may be used again). A
 * super-frame's IPv4 header checksum is complete (the kernel checks it on input), its UDP
 * checksum field holds the pseudo-header sum over the whole length, for the kernel to complete
 * per datagram (VIRTIO_NET_HDR_F_NEEDS_CSUM).
 */
export function coalesceUdp(
  frames: readonly Uint8Array[],
  marks: readonly number[],
  alloc: (len: number) => Uint8Array,
  release: (f: Uint8Array) => void,
  /** Datagrams each input frame carries, if not 1 each (super-frames from an earlier call). */
  counts?: readonly number[],
): UdpCoalesced {
  const out: UdpCoalesced = { frames: [], marks: [], counts: [], superFrames: 0, merged: 0 };
  const n = frames.length;
  let i = 0;
  while (i < n) {
    const a = frames[i]!;
    const l4 = isPlain(marks[i]) ? udpRunOffset(a) : -1;
    const size = a.length - l4 - UDP_HDR;
    let j = i + 1;
    if (l4 >= 0 && size > 0) {
      let total = size;
      while (j < n && j - i < USO_MAX_SEGMENTS && isPlain(marks[j])) {
        const b = frames[j]!;
        if (!joins(a, b, l4, size, total, j - i)) break;
        const bs = b.length - l4 - UDP_HDR;
        total += bs;
        j++;
        if (bs < size) break; // a shorter datagram ends a run
      }
      if (j - i >= 2) {
        out.frames.push(buildSuper(frames, i, j, l4, total, alloc, release));
        out.marks.push(-size);
        out.counts.push(j - i);
        out.superFrames++;
        out.merged += j - i;
        i = j;
        continue;
      }
    }
    out.frames.push(a);
    out.marks.push(marks[i]!);
    out.counts.push(counts?.[i] ?? 1);
    i++;
  }
  return out;
}

function buildSuper(frames: readonly Uint8Array[], from: number, to: number, l4: number, total: number, alloc: (len: number) => Uint8Array, release: (f: Uint8Array) => void): Uint8Array {
  const first = frames[from]!;
  const head = l4 + UDP_HDR;
  const sf = alloc(head + total);
  sf.set(first.subarray(0, head), 0);
  let o = head;
  for (let k = from; k < to; k++) {
    const f = frames[k]!;
    sf.set(f.subarray(head), o);
    o += f.length - head;
    release(f);
  }
  const e = ETH_HEADER_LEN;
  const udpLen = UDP_HDR + total;
  sf[l4 + 4] = udpLen >> 8;
  sf[l4 + 5] = udpLen & 0xff;
  let pseudo: number;
  if (l4 === e + IPV4_HDR) {
    const ipLen = IPV4_HDR + udpLen;
    sf[e + 2] = ipLen >> 8;
    sf[e + 3] = ipLen & 0xff;
    sf[e + 10] = 0;
    sf[e + 11] = 0;
    const c = checksum(sf, e, e + IPV4_HDR);
    sf[e + 10] = c >> 8;
    sf[e + 11] = c & 0xff;
    pseudo = pseudoHeaderSum(sf.subarray(e + 12, e + 16), sf.subarray(e + 16, e + 20), IPPROTO_UDP, udpLen);
  } else {
    sf[e + 4] = udpLen >> 8;
    sf[e + 5] = udpLen & 0xff;
    pseudo = pseudoHeaderSum(sf.subarray(e + 8, e + 24), sf.subarray(e + 24, e + 40), IPPROTO_UDP, udpLen);
  }
  // The partial sum (folded, uncomplemented), as Linux's UDP GSO leaves it for CHECKSUM_PARTIAL.
  sf[l4 + 6] = pseudo >> 8;
  sf[l4 + 7] = pseudo & 0xff;
  return sf;
}
