/**
 * DHCPv4 messages (RFC 2131 §2, the BOOTP layout of RFC 951) and their options (RFC 2132).
 * Offsets are from the start of the UDP payload. Options are kept as raw bytes by code; a code
 * that appears more than once is one option with the values concatenated (RFC 3396 §7). The
 * option overload option (52) lets options continue in the `file` and `sname` fields (RFC 2132
 * §9.3), read in that order.
 */
import { copyBytes } from "./addr.js";
import { putU32 } from "./ndp.js";

export const DHCP = {
  OP: 0,
  HTYPE: 1,
  HLEN: 2,
  HOPS: 3,
  XID: 4,
  SECS: 8,
  FLAGS: 10,
  CIADDR: 12,
  YIADDR: 16,
  SIADDR: 20,
  GIADDR: 24,
  CHADDR: 28,
  SNAME: 44,
  FILE: 108,
  COOKIE: 236,
  OPTIONS: 240,
  /** BOOTP's minimum message (RFC 1542 §2.1): shorter ones are padded, some relays drop them. */
  MIN_LEN: 300,
} as const;

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;
export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
/** The BROADCAST flag (§2): "answer by broadcast, I cannot receive unicast yet". */
export const DHCP_FLAG_BROADCAST = 0x8000;
const MAGIC_COOKIE = [99, 130, 83, 99];

/** DHCP message types (option 53, RFC 2132 §9.6). */
export const DHCPDISCOVER = 1;
export const DHCPOFFER = 2;
export const DHCPREQUEST = 3;
export const DHCPDECLINE = 4;
export const DHCPACK = 5;
export const DHCPNAK = 6;
export const DHCPRELEASE = 7;

/** Option codes (RFC 2132). */
export const OPT = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOSTNAME: 12,
  DOMAIN_NAME: 15,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAMETER_LIST: 55,
  MESSAGE: 56,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  CLIENT_ID: 61,
  END: 255,
} as const;

export interface DhcpMessage {
  op: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: Uint8Array;
  yiaddr: Uint8Array;
  siaddr: Uint8Array;
  giaddr: Uint8Array;
  /** Client hardware address (hlen bytes, 6 for Ethernet). */
  chaddr: Uint8Array;
  /** Option values by code (views into the message). */
  options: Map<number, Uint8Array>;
}

export type DhcpParseError = "truncated" | "bad_cookie" | "bad_option";

/** Parse a DHCP message; the byte fields are copies, the option values views into `p`. */
export function parseDhcp(p: Uint8Array): DhcpMessage | DhcpParseError {
  if (p.length < DHCP.OPTIONS) return "truncated";
  for (let i = 0; i < 4; i++) if (p[DHCP.COOKIE + i] !== MAGIC_COOKIE[i]) return "bad_cookie";
  const hlen = Math.min(16, p[DHCP.HLEN]!);
  const options = new Map<number, Uint8Array>();
  const overload = readOptions(p, DHCP.OPTIONS, p.length, options);
  if (overload === "bad_option") return overload;
  // §9.3: 1 = file holds options, 2 = sname, 3 = both; file is read first.
  const o = options.get(OPT.OVERLOAD)?.[0] ?? 0;
  if (o & 1 && readOptions(p, DHCP.FILE, DHCP.FILE + 128, options) === "bad_option") return "bad_option";
  if (o & 2 && readOptions(p, DHCP.SNAME, DHCP.SNAME + 64, options) === "bad_option") return "bad_option";
  const u32 = (off: number) => ((p[off]! << 24) | (p[off + 1]! << 16) | (p[off + 2]! << 8) | p[off + 3]!) >>> 0;
  return {
    op: p[DHCP.OP]!,
    xid: u32(DHCP.XID),
    secs: (p[DHCP.SECS]! << 8) | p[DHCP.SECS + 1]!,
    flags: (p[DHCP.FLAGS]! << 8) | p[DHCP.FLAGS + 1]!,
    ciaddr: copyBytes(p, DHCP.CIADDR, DHCP.CIADDR + 4),
    yiaddr: copyBytes(p, DHCP.YIADDR, DHCP.YIADDR + 4),
    siaddr: copyBytes(p, DHCP.SIADDR, DHCP.SIADDR + 4),
    giaddr: copyBytes(p, DHCP.GIADDR, DHCP.GIADDR + 4),
    chaddr: copyBytes(p, DHCP.CHADDR, DHCP.CHADDR + hlen),
    options,
  };
}

function readOptions(p: Uint8Array, off: number, end: number, out: Map<number, Uint8Array>): "ok" | "bad_option" {
  while (off < end) {
    const code = p[off]!;
    if (code === OPT.PAD) {
      off++;
      continue;
    }
    if (code === OPT.END) return "ok";
    if (off + 2 > end) return "bad_option";
    const len = p[off + 1]!;
    if (off + 2 + len > end) return "bad_option";
    const v = p.subarray(off + 2, off + 2 + len);
    const prev = out.get(code);
    if (prev) {
      // RFC 3396: a repeated option continues the same value.
      const joined = new Uint8Array(prev.length + v.length);
      joined.set(prev);
      joined.set(v, prev.length);
      out.set(code, joined);
    } else out.set(code, v);
    off += 2 + len;
  }
  return "ok";
}

export interface DhcpEmit {
  op: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr?: Uint8Array;
  chaddr: Uint8Array;
  /** Options in order (code, value); values over 255 bytes are split (RFC 3396). */
  options: Array<[number, Uint8Array]>;
}

/** Build a DHCP message (header, cookie, options, END, padded to 300 bytes). */
export function emitDhcp(m: DhcpEmit): Uint8Array {
  let optLen = 1;
  for (const [, v] of m.options) optLen += Math.max(1, Math.ceil(v.length / 255)) * 2 + v.length;
  const p = new Uint8Array(Math.max(DHCP.MIN_LEN, DHCP.OPTIONS + optLen));
  p[DHCP.OP] = m.op;
  p[DHCP.HTYPE] = 1; // Ethernet
  p[DHCP.HLEN] = m.chaddr.length;
  putU32(p, DHCP.XID, m.xid);
  p[DHCP.SECS] = m.secs >>> 8;
  p[DHCP.SECS + 1] = m.secs & 0xff;
  p[DHCP.FLAGS] = m.flags >>> 8;
  p[DHCP.FLAGS + 1] = m.flags & 0xff;
  if (m.ciaddr) p.set(m.ciaddr, DHCP.CIADDR);
  p.set(m.chaddr, DHCP.CHADDR);
  p.set(MAGIC_COOKIE, DHCP.COOKIE);
  let o: number = DHCP.OPTIONS;
  for (const [code, v] of m.options) {
    let i = 0;
    do {
      const n = Math.min(255, v.length - i);
      p[o] = code;
      p[o + 1] = n;
      p.set(v.subarray(i, i + n), o + 2);
      o += 2 + n;
      i += n;
    } while (i < v.length);
  }
  p[o] = OPT.END;
  return p;
}

/**
 * A time option (lease, T1, T2) in seconds, or undefined if it is not whole 4-byte values. Sent
 * twice (dnsmasq adds its own lease time before one set with --dhcp-option=51), the values were
 * concatenated: the shortest is taken, so an address is never held longer than a server meant.
 */
export function optU32(v: Uint8Array | undefined): number | undefined {
  if (!v || v.length === 0 || v.length % 4 !== 0) return undefined;
  let min = Infinity;
  for (let i = 0; i < v.length; i += 4) min = Math.min(min, ((v[i]! << 24) | (v[i + 1]! << 16) | (v[i + 2]! << 8) | v[i + 3]!) >>> 0);
  return min;
}

/** An option value as a list of IPv4 addresses (routers, DNS servers): whole 4-byte groups only. */
export function optAddresses(v: Uint8Array | undefined): Uint8Array[] {
  const out: Uint8Array[] = [];
  if (!v) return out;
  for (let i = 0; i + 4 <= v.length; i += 4) out.push(copyBytes(v, i, i + 4));
  return out;
}
