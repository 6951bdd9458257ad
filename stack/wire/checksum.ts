/**
 * The Internet checksum (RFC 1071): one's complement of the one's complement sum of 16-bit words.
 * `sum16` returns the folded, *uncomplemented* partial sum so pieces (pseudo-header, header,
 * payload) can be added together with `addSums` and complemented once with `finish`.
 */
export function sum16(buf: Uint8Array, start = 0, end = buf.length, initial = 0): number {
  let sum = initial;
  let i = start;
  // Process 8 bytes per iteration; the accumulator stays well below 2^53.
  const end8 = end - ((end - start) & 7);
  for (; i < end8; i += 8) {
    sum += ((buf[i]! << 8) | buf[i + 1]!) + ((buf[i + 2]! << 8) | buf[i + 3]!) + ((buf[i + 4]! << 8) | buf[i + 5]!) + ((buf[i + 6]! << 8) | buf[i + 7]!);
  }
  for (; i + 1 < end; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) sum += buf[i]! << 8;
  return fold(sum);
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
