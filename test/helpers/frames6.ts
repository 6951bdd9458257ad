/** Builders for IPv6 frames a peer (host or router) would send. */
import { emitEthernet, ETHERTYPE_IPV6 } from "../../stack/wire/ethernet.js";
import { emitIpv6, emitFragmentHeader, parseIpv6 } from "../../stack/wire/ipv6.js";
import { emitIcmp, parseIcmp } from "../../stack/wire/icmp.js";
import { emitLladdrOption, emitPrefixOption, putU32 } from "../../stack/wire/ndp.js";
import { ipv6MulticastMac, parseIPv6, parseMac } from "../../stack/wire/addr.js";

export const PEER6_MAC = parseMac("02:00:00:00:00:01");
export const PEER6_LL = parseIPv6("fe80::1");
export const PEER6 = parseIPv6("2001:db8::1");
export const STACK6 = parseIPv6("2001:db8::2");

export function ipv6Frame(nextHeader: number, payload: Uint8Array, o: { src?: Uint8Array; dst?: Uint8Array; hopLimit?: number; dstMac: Uint8Array }): Uint8Array {
  const f = new Uint8Array(14 + 40 + payload.length);
  emitEthernet(f, o.dstMac, PEER6_MAC, ETHERTYPE_IPV6);
  emitIpv6(f, 14, { nextHeader, hopLimit: o.hopLimit ?? 64, src: o.src ?? PEER6, dst: o.dst ?? STACK6, payloadLen: payload.length });
  f.set(payload, 54);
  return f;
}

/** An ICMPv6 message (checksum over the pseudo-header) in a frame. */
export function icmp6Frame(type: number, code: number, rest: number, body: Uint8Array, o: { src?: Uint8Array; dst?: Uint8Array; hopLimit?: number; dstMac: Uint8Array }): Uint8Array {
  const m = new Uint8Array(8 + body.length);
  m.set(body, 8);
  emitIcmp(m, 0, m.length, type, code, rest, o.src ?? PEER6, o.dst ?? STACK6);
  return ipv6Frame(58, m, o);
}

/** A router advertisement from fe80::1 with one prefix option and a source link-layer option. */
export function routerAdvert(prefix: Uint8Array, valid: number, preferred: number, routerLifetime = 1800, mtu?: number): Uint8Array {
  const body = new Uint8Array(8 + 32 + 8 + (mtu ? 8 : 0));
  // body starts after the 8-byte ICMP header: reachable time, retrans timer
  putU32(body, 0, 0);
  putU32(body, 4, 0);
  emitPrefixOption(body, 8, { prefixLength: 64, onLink: true, autonomous: true, validLifetime: valid, preferredLifetime: preferred, prefix });
  emitLladdrOption(body, 40, 1, PEER6_MAC);
  if (mtu) {
    body[48] = 5;
    body[49] = 1;
    putU32(body, 52, mtu);
  }
  const rest = ((64 << 24) | (0 << 16) | routerLifetime) >>> 0;
  const allNodes = parseIPv6("ff02::1");
  return icmp6Frame(134, 0, rest, body, { src: PEER6_LL, dst: allNodes, hopLimit: 255, dstMac: ipv6MulticastMac(allNodes) });
}

/** Split an upper-layer message into IPv6 fragments of `chunk` bytes (multiple of 8). */
export function fragments6(nextHeader: number, msg: Uint8Array, chunk: number, ident: number, dstMac: Uint8Array, offsets?: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  const starts = offsets ?? [...Array(Math.ceil(msg.length / chunk)).keys()].map((i) => i * chunk);
  for (const off of starts) {
    const part = msg.subarray(off, Math.min(msg.length, off + chunk));
    const p = new Uint8Array(8 + part.length);
    emitFragmentHeader(p, 0, nextHeader, off, off + part.length < msg.length, ident);
    p.set(part, 8);
    out.push(ipv6Frame(44, p, { dstMac }));
  }
  return out;
}

export function decode6(frame: Uint8Array) {
  const ip = parseIpv6(frame.subarray(14));
  if (typeof ip === "string") throw new Error(`stack sent a bad IPv6 packet: ${ip}`);
  const icmp = ip.nextHeader === 58 ? parseIcmp(ip.payload) : undefined;
  return { ip, icmp: typeof icmp === "string" ? undefined : icmp, dstMac: frame.subarray(0, 6) };
}
