/**
 * Addresses as bytes: MAC (6), IPv4 (4), IPv6 (16). Parsing and formatting follow the usual text
 * forms (RFC 5952 for IPv6 output). Every parse function throws a TypeError naming the bad input.
 */
import { isIPv6 } from "node:net";

export type Mac = Uint8Array;
export type IpBytes = Uint8Array; // 4 or 16 bytes

export const BROADCAST_MAC: Mac = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
export const ZERO_MAC: Mac = new Uint8Array(6);
export const IPV4_ANY = new Uint8Array(4);
export const IPV6_ANY = new Uint8Array(16);

export function parseMac(s: string): Mac {
  const m = /^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$/i.exec(s.trim());
  if (!m) throw new TypeError(`invalid MAC address "${s}" (expected six hex octets such as 02:00:00:00:00:01)`);
  return new Uint8Array(m.slice(1, 7).map((x) => parseInt(x, 16)));
}

export function formatMac(m: Uint8Array, off = 0): string {
  const parts: string[] = [];
  for (let i = 0; i < 6; i++) parts.push(m[off + i]!.toString(16).padStart(2, "0"));
  return parts.join(":");
}

export function isMulticastMac(m: Uint8Array, off = 0): boolean {
  return (m[off]! & 1) === 1;
}

/**
 * Scan dotted-quad text as node:net's isIPv4 accepts it (four decimal parts 0-255, no leading
 * zeros); the parts go to `out` when given. Nothing is allocated (a stack parses its addresses
 * at creation, a tenant among thousands).
 */
function scanIPv4(s: string, out?: Uint8Array): boolean {
  let part = 0;
  let val = 0;
  let digits = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || part === 3) return false;
      if (out) out[part] = val;
      part++;
      val = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && val === 0) return false; // a leading zero
      val = val * 10 + (c - 48);
      if (++digits > 3 || val > 255) return false;
    } else return false;
  }
  if (part !== 3 || digits === 0) return false;
  if (out) out[3] = val;
  return true;
}

export function parseIPv4(s: string): IpBytes {
  const out = new Uint8Array(4);
  if (typeof s !== "string" || !scanIPv4(s, out)) throw new TypeError(`invalid IPv4 address "${s}"`);
  return out;
}

export function formatIPv4(b: Uint8Array, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

export function ipv4ToU32(b: Uint8Array, off = 0): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

export function u32ToIPv4(n: number): IpBytes {
  return new Uint8Array([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

export function parseIPv6(s: string): IpBytes {
  let str = s;
  const pct = str.indexOf("%");
  if (pct >= 0) str = str.slice(0, pct); // zone index is not part of the address
  if (!isIPv6(str)) throw new TypeError(`invalid IPv6 address "${s}"`);
  const out = new Uint8Array(16);
  // Embedded IPv4 tail (::ffff:1.2.3.4)
  let tail4: Uint8Array | undefined;
  const lastColon = str.lastIndexOf(":");
  if (str.indexOf(".", lastColon) >= 0) {
    tail4 = parseIPv4(str.slice(lastColon + 1));
    str = str.slice(0, lastColon + 1) + "0:0";
  }
  const [head, rest] = str.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const t = rest !== undefined && rest !== "" ? rest.split(":") : [];
  const words: number[] = [];
  for (const x of h) words.push(parseInt(x, 16));
  if (rest !== undefined) for (let i = 0; i < 8 - h.length - t.length; i++) words.push(0);
  for (const x of t) words.push(parseInt(x, 16));
  for (let i = 0; i < 8; i++) {
    out[2 * i] = (words[i]! >>> 8) & 0xff;
    out[2 * i + 1] = words[i]! & 0xff;
  }
  if (tail4) out.set(tail4, 12);
  return out;
}

/** RFC 5952 canonical text form. */
export function formatIPv6(b: Uint8Array, off = 0): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((b[off + 2 * i]! << 8) | b[off + 2 * i + 1]!);
  // Longest run of >= 2 zero words, first one on ties.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(":");
  if (bestStart < 0) return hex(w);
  return hex(w.slice(0, bestStart)) + "::" + hex(w.slice(bestStart + bestLen));
}

export function parseIP(s: string): IpBytes {
  const v4 = new Uint8Array(4);
  if (typeof s === "string" && scanIPv4(s, v4)) return v4;
  return parseIPv6(s);
}

export function formatIP(b: Uint8Array): string {
  return b.length === 4 ? formatIPv4(b) : formatIPv6(b);
}

/** Address family of a textual IP, or 0 if it is not one. */
export function ipFamily(s: string): 0 | 4 | 6 {
  if (typeof s === "string" && scanIPv4(s)) return 4;
  const pct = s.indexOf("%");
  if (isIPv6(pct >= 0 ? s.slice(0, pct) : s)) return 6;
  return 0;
}

export interface Prefix {
  address: IpBytes;
  length: number;
}

/** Parse "198.18.0.2/24" or "2001:db8::2/64". A missing length means a host prefix (/32, /128). */
export function parseCidr(s: string, family?: 4 | 6): Prefix {
  const slash = s.indexOf("/");
  const addrText = slash >= 0 ? s.slice(0, slash) : s;
  const fam = ipFamily(addrText);
  if (fam === 0 || (family !== undefined && fam !== family)) {
    throw new TypeError(`invalid IPv${family ?? ""} address in "${s}" (expected e.g. ${family === 6 ? "2001:db8::2/64" : "198.18.0.2/24"})`);
  }
  const max = fam === 4 ? 32 : 128;
  let length = max;
  if (slash >= 0) {
    const lt = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lt) || Number(lt) > max) throw new TypeError(`invalid prefix length "/${lt}" in "${s}" (0..${max})`);
    length = Number(lt);
  }
  return { address: parseIP(addrText), length };
}

export function inPrefix(addr: Uint8Array, prefix: Uint8Array, length: number): boolean {
  if (addr.length !== prefix.length) return false;
  let bits = length;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((addr[i]! & mask) !== (prefix[i]! & mask)) return false;
  }
  return true;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array, boff = 0): boolean {
  const n = a.length;
  for (let i = 0; i < n; i++) if (a[i] !== b[boff + i]) return false;
  return true;
}

export function isZero(a: Uint8Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== 0) return false;
  return true;
}

// ---- IPv6 special addresses ------------------------------------------------------------

export function isIPv6Multicast(a: Uint8Array, off = 0): boolean {
  return a[off] === 0xff;
}

export function isIPv6LinkLocal(a: Uint8Array, off = 0): boolean {
  return a[off] === 0xfe && (a[off + 1]! & 0xc0) === 0x80;
}

/** fe80::/64 + modified EUI-64 interface identifier from a MAC (RFC 4291 App. A). */
export function linkLocalFromMac(mac: Mac): IpBytes {
  const a = new Uint8Array(16);
  a[0] = 0xfe;
  a[1] = 0x80;
  a.set(eui64(mac), 8);
  return a;
}

export function eui64(mac: Mac): Uint8Array {
  return new Uint8Array([mac[0]! ^ 0x02, mac[1]!, mac[2]!, 0xff, 0xfe, mac[3]!, mac[4]!, mac[5]!]);
}

/** Solicited-node multicast address ff02::1:ffXX:XXXX (RFC 4291 §2.7.1). */
export function solicitedNode(a: Uint8Array): IpBytes {
  const s = new Uint8Array(16);
  s[0] = 0xff;
  s[1] = 0x02;
  s[11] = 0x01;
  s[12] = 0xff;
  s[13] = a[13]!;
  s[14] = a[14]!;
  s[15] = a[15]!;
  return s;
}

/** Ethernet multicast MAC for an IPv6 multicast address: 33:33 + last 32 bits (RFC 2464 §7). */
export function ipv6MulticastMac(a: Uint8Array): Mac {
  return new Uint8Array([0x33, 0x33, a[12]!, a[13]!, a[14]!, a[15]!]);
}

/** Ethernet multicast MAC for an IPv4 multicast address (RFC 1112 §6.4). */
export function ipv4MulticastMac(a: Uint8Array): Mac {
  return new Uint8Array([0x01, 0x00, 0x5e, a[1]! & 0x7f, a[2]!, a[3]!]);
}

export const ALL_NODES = parseIPv6("ff02::1");
export const ALL_ROUTERS = parseIPv6("ff02::2");

/** Compact map key for an address (for demux tables). */
export function ipKey(a: Uint8Array, off = 0, len = a.length): string {
  // One string made at once, not one per byte: this runs for frames and segments.
  if (len === 4) return String.fromCharCode(a[off]!, a[off + 1]!, a[off + 2]!, a[off + 3]!);
  if (len === 6) return String.fromCharCode(a[off]!, a[off + 1]!, a[off + 2]!, a[off + 3]!, a[off + 4]!, a[off + 5]!);
  let s = "";
  for (let i = 0; i < len; i++) s += String.fromCharCode(a[off + i]!);
  return s;
}

/**
 * A real copy of bytes. (Buffer.prototype.slice returns a *view*, so `x.slice()` on a frame that
 * came from a netif slab would alias memory that the next batch overwrites.)
 */
export function copyBytes(a: Uint8Array, start = 0, end = a.length): Uint8Array {
  return Uint8Array.prototype.slice.call(a, start, end);
}
