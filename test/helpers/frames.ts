/** Builders for frames a peer would send, used to drive a stack from a test. */
import { emitEthernet, ETHERTYPE_ARP, ETHERTYPE_IPV4 } from "../../stack/wire/ethernet.js";
import { emitArp } from "../../stack/wire/arp.js";
import { emitIpv4, parseIpv4 } from "../../stack/wire/ipv4.js";
import { emitIcmp, parseIcmp } from "../../stack/wire/icmp.js";
import { emitUdp, parseUdp } from "../../stack/wire/udp.js";
import { parseIPv4, parseMac } from "../../stack/wire/addr.js";

export const PEER_MAC = parseMac("02:00:00:00:00:01");
export const STACK_MAC = parseMac("02:00:00:00:00:02");
export const PEER_IP = parseIPv4("198.18.0.1");
export const STACK_IP = parseIPv4("198.18.0.2");

export function arpRequest(tpa: Uint8Array, sha = PEER_MAC, spa = PEER_IP): Uint8Array {
  const f = new Uint8Array(60);
  emitEthernet(f, new Uint8Array([255, 255, 255, 255, 255, 255]), sha, ETHERTYPE_ARP);
  emitArp(f.subarray(14), { op: 1, sha, spa, tha: new Uint8Array(6), tpa });
  return f;
}

export function arpReply(sha = PEER_MAC, spa = PEER_IP, tha = STACK_MAC, tpa = STACK_IP): Uint8Array {
  const f = new Uint8Array(60);
  emitEthernet(f, tha, sha, ETHERTYPE_ARP);
  emitArp(f.subarray(14), { op: 2, sha, spa, tha, tpa });
  return f;
}

export interface Ip4Opts {
  src?: Uint8Array;
  dst?: Uint8Array;
  ident?: number;
  ttl?: number;
  moreFragments?: boolean;
  fragOffset?: number;
  dstMac?: Uint8Array;
}

export function ipv4Frame(protocol: number, payload: Uint8Array, o: Ip4Opts = {}): Uint8Array {
  const f = new Uint8Array(14 + 20 + payload.length);
  emitEthernet(f, o.dstMac ?? STACK_MAC, PEER_MAC, ETHERTYPE_IPV4);
  f.set(payload, 34);
  emitIpv4(f, 14, {
    ident: o.ident ?? 1,
    ttl: o.ttl ?? 64,
    protocol,
    src: o.src ?? PEER_IP,
    dst: o.dst ?? STACK_IP,
    payloadLen: payload.length,
    moreFragments: o.moreFragments ?? false,
    fragOffset: o.fragOffset ?? 0,
  });
  return f;
}

export function icmpEcho(type: number, ident: number, seq: number, data: Uint8Array): Uint8Array {
  const m = new Uint8Array(8 + data.length);
  m.set(data, 8);
  emitIcmp(m, 0, m.length, type, 0, ((ident << 16) | seq) >>> 0);
  return m;
}

export function udpDatagram(sp: number, dp: number, data: Uint8Array, src = PEER_IP, dst = STACK_IP): Uint8Array {
  const m = new Uint8Array(8 + data.length);
  m.set(data, 8);
  emitUdp(m, 0, sp, dp, data.length, src, dst);
  return m;
}

/** Split an IPv4 payload into fragment frames of at most `chunk` bytes (multiple of 8). */
export function fragments(protocol: number, payload: Uint8Array, chunk: number, ident: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0; off < payload.length; off += chunk) {
    const part = payload.subarray(off, Math.min(payload.length, off + chunk));
    out.push(ipv4Frame(protocol, part, { ident, fragOffset: off, moreFragments: off + chunk < payload.length }));
  }
  return out;
}

/** Decode an IPv4 frame the stack sent: IP header fields plus ICMP/UDP when present. */
export function decode4(frame: Uint8Array) {
  const ip = parseIpv4(frame.subarray(14));
  if (typeof ip === "string") throw new Error(`stack sent a bad IPv4 packet: ${ip}`);
  const icmp = ip.protocol === 1 ? parseIcmp(ip.payload) : undefined;
  const udp = ip.protocol === 17 ? parseUdp(ip.payload) : undefined;
  return { ip, icmp: typeof icmp === "string" ? undefined : icmp, udp: typeof udp === "string" ? undefined : udp, ethType: (frame[12]! << 8) | frame[13]! };
}
