/**
 * ICMPv6 (RFC 4443): echo replies (also to multicast echo requests), our pings, errors we send
 * (rate limited, §2.4) and errors we receive (handed to the upper protocol, Packet Too Big to
 * the path MTU cache, RFC 8201). Neighbor Discovery messages go to ndp.ts.
 */
import type { Ipv6Layer } from "./ipv6.js";
import type { Ndp } from "./ndp.js";
import type { IpPacket, UpperProtocol, IcmpErrorInfo } from "./ip.js";
import type { TimerQueue } from "./core/timers.js";
import type { Random } from "./core/random.js";
import { Counters } from "./core/stats.js";
import { TokenBucket } from "./core/ratelimit.js";
import { sendIcmp } from "./icmp.js";
import { PingTable, sendEchoRequest, type PingOptions, type PingResult } from "./ping.js";
import {
  ICMP,
  ICMPV6_DEST_UNREACH,
  ICMPV6_ECHO_REPLY,
  ICMPV6_ECHO_REQUEST,
  ICMPV6_PACKET_TOO_BIG,
  ICMPV6_PARAM_PROBLEM,
  ICMPV6_TIME_EXCEEDED,
  ICMPV6_UNREACH_ADDRESS,
  ICMPV6_UNREACH_PORT,
  IPPROTO_ICMPV6,
  icmpv6ChecksumOk,
  parseIcmp,
} from "./wire/icmp.js";
import { MLD_QUERY, MLD_V1_DONE, MLD_V2_REPORT } from "./wire/mld.js";
import { NH_DEST_OPTS, NH_FRAGMENT, NH_HOP_BY_HOP, NH_ROUTING } from "./wire/ipv6.js";
import { ETH } from "./wire/ethernet.js";
import { formatIPv6, isIPv6Multicast, isZero } from "./wire/addr.js";

export interface Icmpv6Options {
  /** Errors sent per second (token bucket, §2.4 f). Default 100. */
  errorRate?: number;
  /** Burst of errors allowed. Default 50. */
  errorBurst?: number;
}

/** Where MLD messages go (mld.ts). */
export interface MldHandler {
  input(type: number, pkt: IpPacket): void;
}

export class Icmpv6 implements UpperProtocol {
  readonly counters = new Counters("icmpv6");
  private readonly bucket: TokenBucket;
  private readonly pings: PingTable;
  private mld: MldHandler | undefined;

  constructor(
    private readonly ip: Ipv6Layer,
    private readonly ndp: Ndp,
    private readonly timers: TimerQueue,
    random: Random,
    opts: Icmpv6Options = {},
  ) {
    this.bucket = new TokenBucket(opts.errorRate ?? 100, opts.errorBurst ?? 50, timers.now());
    this.pings = new PingTable(timers, random.u32() & 0xffff);
  }

  /** The MLD module that handles queries and reports (wired by the stack). */
  useMld(mld: MldHandler): void {
    this.mld = mld;
  }

  input(pkt: IpPacket): void {
    const c = this.counters;
    const p = pkt.payload;
    const r = parseIcmp(p);
    if (typeof r === "string") return c.drop(r);
    if (!icmpv6ChecksumOk(p, pkt.src, pkt.dst)) return c.drop("bad_checksum");
    c.inc("rx_type_" + r.type);
    if (r.type >= 133 && r.type <= 137) return this.ndp.input(r.type, r.code, pkt);
    if ((r.type >= MLD_QUERY && r.type <= MLD_V1_DONE) || r.type === MLD_V2_REPORT) return this.mld?.input(r.type, pkt);
    switch (r.type) {
      case ICMPV6_ECHO_REQUEST:
        return this.echoReply(pkt, r.rest, r.body);
      case ICMPV6_ECHO_REPLY:
        if (!this.pings.reply(r.rest >>> 16, r.rest & 0xffff, r.body, pkt.ttl, formatIPv6(pkt.src))) c.drop("unmatched_echo_reply");
        return;
      case ICMPV6_DEST_UNREACH:
      case ICMPV6_PACKET_TOO_BIG:
      case ICMPV6_TIME_EXCEEDED:
      case ICMPV6_PARAM_PROBLEM:
        return this.errorInput(r.type, r.code, r.rest, r.body);
      default:
        return; // §2.4 b: unknown informational messages are discarded silently
    }
  }

  private echoReply(pkt: IpPacket, rest: number, body: Uint8Array): void {
    if (isZero(pkt.src)) return this.counters.drop("echo_from_unspecified");
    // To a multicast request we answer from one of our unicast addresses (§4.2).
    const route = this.ip.route(pkt.src, pkt.multicast ? undefined : pkt.dst);
    if (!route) return this.counters.drop("no_route");
    this.counters.inc("echo_replies_sent");
    sendIcmp(this.ip, route, ICMPV6_ECHO_REPLY, 0, rest, body);
  }

  /**
   * Packets that never left because their next hop did not answer address resolution: their
   * senders hear it as a host unreachable error, as if a router had sent one (Linux reports
   * EHOSTUNREACH to a connecting socket the same way, after ~3 s of unanswered solicitations).
   */
  linkFailure(frames: Uint8Array[]): void {
    for (const f of frames) {
      this.counters.inc("link_failures");
      this.errorInput(ICMPV6_DEST_UNREACH, ICMPV6_UNREACH_ADDRESS, 0, f.subarray(ETH.HEADER_LEN));
    }
  }

  private errorInput(type: number, code: number, rest: number, body: Uint8Array): void {
    const c = this.counters;
    if (body.length < 40 || body[0]! >> 4 !== 6) return c.drop("bad_quote");
    const src = body.subarray(8, 24);
    const dst = body.subarray(24, 40);
    if (!this.ip.isLocal(src)) return c.drop("quote_not_ours");
    // Walk the quoted packet's extension headers to its upper-layer header.
    let nh = body[6]!;
    let off = 40;
    for (let i = 0; i < 8 && off < body.length; i++) {
      if (nh === NH_HOP_BY_HOP || nh === NH_DEST_OPTS || nh === NH_ROUTING) {
        if (off + 2 > body.length) break;
        const n = body[off]!;
        off += (body[off + 1]! + 1) * 8;
        nh = n;
      } else if (nh === NH_FRAGMENT) {
        if (off + 8 > body.length) break;
        nh = body[off]!;
        off += 8;
      } else break;
    }
    const info: IcmpErrorInfo = { family: 6, kind: "unreachable", src, dst, protocol: nh, quoted: body.subarray(Math.min(off, body.length)) };
    if (type === ICMPV6_PACKET_TOO_BIG) {
      info.kind = "too_big";
      info.mtu = this.ip.updatePathMtu(dst, rest);
    } else if (type === ICMPV6_TIME_EXCEEDED) info.kind = "time_exceeded";
    else if (type === ICMPV6_PARAM_PROBLEM) info.kind = "param_problem";
    else if (code === ICMPV6_UNREACH_PORT) info.kind = "port_unreachable";
    c.inc("errors_received");
    this.ip.protocol(nh)?.icmpError?.(info);
  }

  /**
   * Send an error about `pkt` (§2.4): never about an error message, never from or to the
   * unspecified address, never about a multicast destination except Packet Too Big and
   * unrecognised-option parameter problems (code 2), and rate limited.
   */
  sendError(pkt: IpPacket, type: number, code: number, rest = 0): void {
    const c = this.counters;
    if (isZero(pkt.src) || isIPv6Multicast(pkt.src)) return c.drop("error_bad_source");
    if (pkt.multicast && !(type === ICMPV6_PACKET_TOO_BIG || (type === ICMPV6_PARAM_PROBLEM && code === 2))) return c.drop("error_about_multicast");
    if (pkt.protocol === IPPROTO_ICMPV6) {
      const t = pkt.payload[0];
      if (t !== undefined && t < 128) return c.drop("error_about_error");
    }
    if (!this.bucket.take(this.timers.now())) return c.drop("error_rate_limited");
    const route = this.ip.route(pkt.src, pkt.multicast ? undefined : pkt.dst);
    if (!route) return c.drop("no_route");
    // As much of the invoking packet as fits in the minimum MTU (§2.4 c).
    const q = pkt.packet;
    const quoteLen = Math.min(q.length, 1280 - 40 - ICMP.HEADER_LEN);
    c.inc("errors_sent");
    sendIcmp(this.ip, route, type, code, rest, q.subarray(0, quoteLen));
  }

  sendIcmpError(pkt: IpPacket, kind: "port_unreachable" | "protocol_unreachable"): void {
    if (kind === "port_unreachable") this.sendError(pkt, ICMPV6_DEST_UNREACH, ICMPV6_UNREACH_PORT);
    else this.sendError(pkt, ICMPV6_PARAM_PROBLEM, 1, 6);
  }

  ping(dst: Uint8Array, opts: PingOptions = {}): Promise<PingResult> {
    return sendEchoRequest(this.pings, this.ip, dst, opts, ICMPV6_ECHO_REQUEST);
  }

  close(): void {
    this.pings.close();
  }
}
