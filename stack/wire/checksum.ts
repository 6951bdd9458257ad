/**
 * The Internet checksum (RFC 1071): one's complement of the one's complement sum of 16-bit words.
 * `sum16` returns the folded, *uncomplemented* partial sum so pieces (pseudo-header, header,
 * payload) can be added together with `addSums` and complemented once with `finish`.
 *
 * Long runs are summed 32 bits at a time through a Uint32Array view of their buffer, made once
 * per buffer (wordView; RFC 1071 §2: the sum may be taken in wider words and folded, and in
 * either byte order, swapping the result): on this machine 4.7-5.8 GB/s at 1,448 bytes and
 * 10.9-11.7 GB/s at 64 KB against 2.4-2.6 GB/s byte by byte, which was 13 % of a receiver's time
 * on a TAP without offloads (every segment's checksum is checked in software there). Below
 * WORDS_MIN bytes, at an odd address, in a buffer under VIEW_BUFFER_MIN bytes, or on a big-endian
 * host, the byte loop, in a function of its own so that sum16 stays small enough to be inlined
 * where a 20-byte header is summed (12.8-13.0 ns there, 12.0 before the word path; 17 with the
 * word path inside sum16).
 */
export function sum16(buf: Uint8Array, start = 0, end = buf.length, initial = 0): number {
  if (end - start >= WORDS_MIN && LITTLE_ENDIAN && ((buf.byteOffset + start) & 1) === 0 && buf.buffer.byteLength >= VIEW_BUFFER_MIN) return sumLong(buf, start, end, initial);
  return sumBytes(buf, start, end, initial);
}

/**
 * Complete a TCP or UDP checksum left partial (its field holds the pseudo-header sum, as for a
 * netif with checksum offload, TxMeta.csumPartial): the sum from `l4` to `end`, complemented, as
 * the netif would (a UDP checksum of 0 is sent as 0xffff, RFC 768).
 */
export function completeChecksum(buf: Uint8Array, l4: number, end: number, protocol: number): void {
  const at = l4 + (protocol === 6 ? 16 : 6);
  let c = finish(sum16(buf, l4, end));
  if (c === 0 && protocol === 17) c = 0xffff;
  buf[at] = c >>> 8;
  buf[at + 1] = c & 0xff;
}

/** sum16 byte by byte, 8 bytes per iteration; the accumulator stays well below 2^53. */
function sumBytes(buf: Uint8Array, start: number, end: number, initial: number): number {
  let sum = initial;
  let i = start;
  const end8 = end - ((end - start) & 7);
  for (; i < end8; i += 8) {
    sum += ((buf[i]! << 8) | buf[i + 1]!) + ((buf[i + 2]! << 8) | buf[i + 3]!) + ((buf[i + 4]! << 8) | buf[i + 5]!) + ((buf[i + 6]! << 8) | buf[i + 7]!);
  }
  for (; i + 1 < end; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) sum += buf[i]! << 8;
  return fold(sum);
}

/** sum16 of a long run at an even address, 32 bits at a time; the last 0-3 bytes byte by byte. */
function sumLong(buf: Uint8Array, start: number, end: number, initial: number): number {
  let sum = initial;
  let i = start;
  // A 2-byte lead reaches a 4-byte boundary (a frame's IP header after 14 bytes of Ethernet).
  if ((buf.byteOffset + i) & 2) {
    sum += (buf[i]! << 8) | buf[i + 1]!;
    i += 2;
  }
  const w = wordView(buf.buffer);
  // At most 2^20 words (4 MB) at a time: their sum stays below 2^52.
  for (let n = (end - i) >>> 2; n > 0; n = (end - i) >>> 2) {
    if (n > 1 << 20) n = 1 << 20;
    const from = (buf.byteOffset + i) >>> 2;
    sum += sumWords(w, from, from + n);
    i += n << 2;
  }
  return sumBytes(buf, i, end, sum);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * One 32-bit view per buffer, made once and kept with it: a view made per call was ~70 bytes of
 * JS heap per checksum, twice per segment on a link without offloads (the allocation test's
 * bound per segment was passed). Only for buffers of VIEW_BUFFER_MIN bytes or more, which are
 * the long-lived ones (a TAP's receive slots, Node's Buffer pool, large frames); a frame of its
 * own below that (an MTU-sized frame between stacks on a switch) is summed byte by byte, as a
 * view for it would be made once and used once.
 */
const WORD_VIEWS = new WeakMap<ArrayBufferLike, Uint32Array>();
const VIEW_BUFFER_MIN = 2048;
function wordView(ab: ArrayBufferLike): Uint32Array {
  let w = WORD_VIEWS.get(ab);
  if (w === undefined) {
    w = new Uint32Array(ab, 0, ab.byteLength >>> 2);
    WORD_VIEWS.set(ab, w);
  }
  return w;
}
/**
 * Shorter runs are summed byte by byte: finding the view (a WeakMap lookup) costs about what
 * making one did, 60-70 ns, so the words win from about here on (measured with the kept view:
 * 64 bytes 78-91 ns with words, 37-40 without; 96: 77-88 and 53; 128: 80-92 and 70; 512: 113-138
 * and 202).
 */
const WORDS_MIN = 128;

/**
 * The folded sum of little-endian 32-bit words w[from, to) (at most 2^20) as network-order
 * 16-bit words: each word is two byte-swapped 16-bit words, so the folded sum is the
 * byte-swapped sum.
 */
function sumWords(w: Uint32Array, from: number, to: number): number {
  const to4 = to - ((to - from) & 3);
  let s = 0;
  let k = from;
  for (; k < to4; k += 4) s += w[k]! + w[k + 1]! + w[k + 2]! + w[k + 3]!;
  for (; k < to; k++) s += w[k]!;
  const f = fold(s);
  return ((f & 0xff) << 8) | (f >>> 8);
}

/** Fold carries of a wide sum into 16 bits. */
export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

export function addSums(a: number, b: number): number {
  return fold(a + b);
}

/** Final checksum field value from a partial sum. */
export function finish(sum: number): number {
  return ~fold(sum) & 0xffff;
}

/** Checksum of a whole region (header checksums). */
export function checksum(buf: Uint8Array, start = 0, end = buf.length): number {
  return finish(sum16(buf, start, end));
}

/**
 * Partial sum of the TCP/UDP/ICMPv6 pseudo-header (RFC 768, RFC 9293 §3.1, RFC 8200 §8.1).
 * `src` and `dst` are 4 bytes (IPv4) or 16 bytes (IPv6).
 */
export function pseudoHeaderSum(src: Uint8Array, dst: Uint8Array, proto: number, length: number): number {
  let s = sum16(src, 0, src.length) + sum16(dst, 0, dst.length) + proto;
  s += length > 0xffff ? (length >>> 16) + (length & 0xffff) : length;
  return fold(s);
}
