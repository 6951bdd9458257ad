/**
 * Sending an ICMP message (either version) through an IP layer: the message is written in place
 * after the route's headroom; ICMPv6 checksums cover the pseudo-header (RFC 4443 §2.3), ICMPv4's
 * do not (RFC 792).
 */
import type { IpOutput, Route, SendOptions } from "./ip.js";
import { ICMP, IPPROTO_ICMP, IPPROTO_ICMPV6, emitIcmp } from "./wire/icmp.js";

export function sendIcmp(ip: IpOutput, route: Route, type: number, code: number, rest: number, body: Uint8Array, opts: SendOptions = {}): boolean {
  const len = ICMP.HEADER_LEN + body.length;
  const frame = new Uint8Array(route.headroom + len);
  frame.set(body, route.headroom + ICMP.HEADER_LEN);
  if (route.family === 6) {
    emitIcmp(frame, route.headroom, len, type, code, rest, route.src, route.dst);
    return ip.send(route, IPPROTO_ICMPV6, frame, opts);
  }
  emitIcmp(frame, route.headroom, len, type, code, rest);
  return ip.send(route, IPPROTO_ICMP, frame, opts);
}
