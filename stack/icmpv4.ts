/**
 * ICMPv4 (RFC 792, RFC 1122 §3.2.2): echo replies, our pings, errors we send (rate limited) and
 * errors we receive (handed to the upper protocol that sent the packet, path MTU from
 * "fragmentation needed", RFC 1191).
 */
import type { Ipv4Layer } from "./ipv4.js";
import type { IpPacket, UpperProtocol } from "./ip.js";
import type { TimerQueue } from "./core/timers.js";
import type { Random } from "./core/random.js";
import { Counters } from "./core/stats.js";
import { TokenBucket } from "./core/ratelimit.js";
import { sendIcmp } from "./icmp.js";
import { PingTable, sendEchoRequest, type PingOptions, type PingResult } from "./ping.js";
import {
  ICMP,
  ICMPV4_DEST_UNREACH,
  ICMPV4_ECHO_REPLY,
  ICMPV4_ECHO_REQUEST,
  ICMPV4_PARAM_PROBLEM,
  ICMPV4_TIME_EXCEEDED,
  ICMPV4_UNREACH_FRAG_NEEDED,
  ICMPV4_UNREACH_HOST,
  ICMPV4_UNREACH_PORT,
  IPPROTO_ICMP,
  icmpv4ChecksumOk,
  parseIcmp,
} from "./wire/icmp.js";
import { parseIpv4 } from "./wire/ipv4.js";
import { ETH } from "./wire/ethernet.js";
import { formatIPv4, ipv4ToU32 } from "./wire/addr.js";

export interface Icmpv4Options {
  /** ICMP errors we may send per second (RFC 1812 §4.3.2.8 style token bucket). Default 100. */
  errorRate?: number;
  /** Burst of errors allowed. Default 50. */
  errorBurst?: number;
  /** Answer echo requests sent to broadcast/multicast (Linux: icmp_echo_ignore_broadcasts=1). Default false. */
  echoBroadcast?: boolean;
}

export class Icmpv4 implements UpperProtocol {
  readonly counters = new Counters("icmpv4");
  /** The error rate limiter, made at the first error (it starts full, so that is no change). */
  private bucketObj: TokenBucket | undefined;
  private readonly errorRate: number;
  private readonly errorBurst: number;
  /** Our pings in flight, made at the first (an idle stack holds none); their identifier is drawn now. */
  private pingsObj: PingTable | undefined;
  private readonly pingIdent: number;
  private readonly echoBroadcast: boolean;

  constructor(
    private readonly ip: Ipv4Layer,
    private readonly timers: TimerQueue,
    random: Random,
    opts: Icmpv4Options = {},
  ) {
    this.errorRate = opts.errorRate ?? 100;
    this.errorBurst = opts.errorBurst ?? 50;
    this.pingIdent = random.u32() & 0xffff;
    this.echoBroadcast = opts.echoBroadcast ?? false;
  }

  private get pings(): PingTable {
    return (this.pingsObj ??= new PingTable(this.timers, this.pingIdent));
  }

  input(pkt: IpPacket): void {
    const c = this.counters;
    const p = pkt.payload;
    const r = parseIcmp(p);
    if (typeof r === "string") return c.drop(r);
    if (!icmpv4ChecksumOk(p)) return c.drop("bad_checksum");
    c.inc("rx_type_" + r.type);
    switch (r.type) {
      case ICMPV4_ECHO_REQUEST:
        if (pkt.multicast && !this.echoBroadcast) return c.drop("echo_broadcast_ignored");
        return this.echoReply(pkt, r.rest, r.body);
      case ICMPV4_ECHO_REPLY:
        if (!this.pingsObj?.reply(r.rest >>> 16, r.rest & 0xffff, r.body, pkt.ttl, formatIPv4(pkt.src))) c.drop("unmatched_echo_reply");
        return;
      case ICMPV4_DEST_UNREACH:
      case ICMPV4_TIME_EXCEEDED:
      case ICMPV4_PARAM_PROBLEM:
        return this.errorInput(r.type, r.code, r.rest, r.body);
      default:
        return; // timestamps, redirects (RFC 1122 says hosts may ignore redirects; we do), ...
    }
  }

  private echoReply(pkt: IpPacket, rest: number, body: Uint8Array): void {
    const route = this.ip.route(pkt.src);
    if (!route) return this.counters.drop("no_route");
    this.counters.inc("echo_replies_sent");
    sendIcmp(this.ip, route, ICMPV4_ECHO_REPLY, 0, rest, body);
  }

  /**
   * Packets that never left because their next hop did not answer address resolution: their
   * senders hear it as a host unreachable error, as if a router had sent one (Linux reports
   * EHOSTUNREACH to a connecting socket the same way, after ~3 s of unanswered solicitations).
   */
  linkFailure(frames: Uint8Array[]): void {
    for (const f of frames) {
      this.counters.inc("link_failures");
      this.errorInput(ICMPV4_DEST_UNREACH, ICMPV4_UNREACH_HOST, 0, f.subarray(ETH.HEADER_LEN));
    }
  }

  private errorInput(type: number, code: number, rest: number, body: Uint8Array): void {
    // The quoted packet is the IP header of what we sent plus at least 8 bytes (RFC 792).
    const q = parseIpv4(body, false);
    if (typeof q === "string") {
      // parseIpv4 rejects quotes truncated below their total length; accept header + 8 bytes.
      if (body.length < 28 || body[0]! >> 4 !== 4) return this.counters.drop("bad_quote");
    }
    const ihl = (body[0]! & 0x0f) * 4;
    if (ihl < 20 || body.length < ihl + 8) return this.counters.drop("bad_quote");
    const src = body.subarray(12, 16);
    const dst = body.subarray(16, 20);
    if (!this.ip.isLocal(src)) return this.counters.drop("quote_not_ours");
    const protocol = body[9]!;
    const quoted = body.subarray(ihl);
    let kind: "unreachable" | "port_unreachable" | "too_big" | "time_exceeded" | "param_problem" = "unreachable";
    let mtu: number | undefined;
    if (type === ICMPV4_TIME_EXCEEDED) kind = "time_exceeded";
    else if (type === ICMPV4_PARAM_PROBLEM) kind = "param_problem";
    else if (code === ICMPV4_UNREACH_PORT) kind = "port_unreachable";
    else if (code === ICMPV4_UNREACH_FRAG_NEEDED) {
      kind = "too_big";
      // RFC 1191 §4: next-hop MTU in the low 16 bits; 0 from old routers, then guess with the
      // plateau below the size of the packet that failed.
      let m = rest & 0xffff;
      const totalLen = (body[2]! << 8) | body[3]!;
      if (m === 0 || m >= totalLen) m = plateauBelow(totalLen);
      mtu = this.ip.updatePathMtu(dst, m);
    }
    this.counters.inc("errors_received");
    const h = this.ip.protocol(protocol);
    h?.icmpError?.({ family: 4, kind, mtu, src, dst, protocol, quoted });
  }

  /**
   * Send an ICMP error about `pkt` (RFC 1122 §3.2.2): never about an ICMP error, a broadcast or
   * multicast packet, a non-initial fragment, or a packet whose source is not a unicast host.
   */
  sendError(pkt: IpPacket, type: number, code: number, rest = 0): void {
    const c = this.counters;
    if (pkt.multicast) return c.drop("error_about_multicast");
    const s = ipv4ToU32(pkt.src);
    if (s === 0 || s >>> 28 >= 0xe) return c.drop("error_bad_source");
    const q = pkt.packet;
    if (q.length >= 8 && (((q[6]! << 8) | q[7]!) & 0x1fff) !== 0) return c.drop("error_about_fragment");
    if (pkt.protocol === IPPROTO_ICMP) {
      const ihl = (q[0]! & 0x0f) * 4;
      const t = q[ihl];
      if (t !== undefined && t !== ICMPV4_ECHO_REQUEST && t !== ICMPV4_ECHO_REPLY) return c.drop("error_about_error");
    }
    const bucket = (this.bucketObj ??= new TokenBucket(this.errorRate, this.errorBurst, this.timers.now()));
    if (!bucket.take(this.timers.now())) return c.drop("error_rate_limited");
    const route = this.ip.route(pkt.src);
    if (!route) return c.drop("no_route");
    // Quote as much of the original as fits in a 576-byte datagram (RFC 1812 §4.3.2.3).
    const quoteLen = Math.min(q.length, 576 - 20 - ICMP.HEADER_LEN);
    c.inc("errors_sent");
    sendIcmp(this.ip, route, type, code, rest, q.subarray(0, quoteLen));
  }

  sendIcmpError(pkt: IpPacket, kind: "port_unreachable" | "protocol_unreachable"): void {
    this.sendError(pkt, ICMPV4_DEST_UNREACH, kind === "port_unreachable" ? 3 : 2);
  }

  ping(dst: Uint8Array, opts: PingOptions = {}): Promise<PingResult> {
    return sendEchoRequest(this.pings, this.ip, dst, opts, ICMPV4_ECHO_REQUEST);
  }

  close(): void {
    this.pingsObj?.close();
  }
}

/** RFC 1191 §7 plateau table: the largest plateau strictly below `size`. */
function plateauBelow(size: number): number {
  const plateaus = [65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68];
  for (const p of plateaus) if (p < size) return p;
  return 68;
}
