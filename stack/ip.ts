/**
 * The contract between the IP layers (ipv4.ts, ipv6.ts) and the protocols above them
 * (icmp, udp, tcp). Upper layers are family-neutral: an address is 4 or 16 bytes.
 */

/** A received packet handed to an upper-layer protocol. Views are valid only during the call. */
export interface IpPacket {
  family: 4 | 6;
  src: Uint8Array;
  dst: Uint8Array;
  protocol: number;
  /** TTL / hop limit as received. */
  ttl: number;
  /** The upper-layer message (after IP header and extension headers, reassembled if it was fragmented). */
  payload: Uint8Array;
  /** The whole IP packet, header included (ICMP errors quote it). */
  packet: Uint8Array;
  /** Sent to a broadcast or multicast address: never answer with an error or a RST. */
  multicast: boolean;
  /** The L4 checksum was already verified by the netif (offload). */
  csumValid: boolean;
}

/** No bytes: what a reused IpPacket points at between two inputs. */
export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

/** A packet to fill in (the IP layers reuse one per layer: see Ipv4Layer.input). */
export function newIpPacket(family: 4 | 6): IpPacket {
  const n = family === 4 ? 4 : 16;
  return { family, src: new Uint8Array(n), dst: new Uint8Array(n), protocol: 0, ttl: 0, payload: EMPTY_BYTES, packet: EMPTY_BYTES, multicast: false, csumValid: false };
}

/** What an ICMP error (unreachable, too big, time exceeded) tells the upper protocol that sent the offending packet. */
export interface IcmpErrorInfo {
  family: 4 | 6;
  /** "unreachable" (host/net/port/protocol/admin), "too_big" (path MTU), "time_exceeded", "param_problem". */
  kind: "unreachable" | "port_unreachable" | "too_big" | "time_exceeded" | "param_problem";
  /** For too_big: the next-hop MTU reported. */
  mtu?: number;
  /** Addresses and first bytes of the upper-layer header of the packet we had sent (ports live here). */
  src: Uint8Array;
  dst: Uint8Array;
  protocol: number;
  quoted: Uint8Array;
}

export interface UpperProtocol {
  input(pkt: IpPacket): void;
  icmpError?(err: IcmpErrorInfo): void;
  /** Called after the netif delivered a batch of frames (coalesce ACKs, flush output). */
  batchEnd?(): void;
}

/**
 * The outcome of routing a destination: which source to use, the link MTU (or path MTU when
 * known), and how many bytes of headers (Ethernet + IP) to reserve in front of the L4 message.
 */
export interface Route {
  family: 4 | 6;
  src: Uint8Array;
  dst: Uint8Array;
  /** Largest IP packet that goes out without fragmentation (path MTU when learned). */
  mtu: number;
  /** Bytes to reserve before the L4 message in a frame buffer (14 + 20, or 14 + 40). */
  headroom: number;
  /** To one of our own addresses: looped back inside the stack, never on the link. */
  local?: boolean;
  /** To a broadcast address (limited or subnet-directed): a socket must allow it (SO_BROADCAST). */
  broadcast: boolean;
}

export interface SendOptions {
  ttl?: number;
  tos?: number;
  /** IPv4 DF bit (TCP sets it for path MTU discovery); IPv6 never fragments in transit anyway. */
  dontFragment?: boolean;
  /**
   * A TCP super-segment for the netif to cut into segments of this many payload bytes (TSO; only
   * when the netif's features.tso allows the size): it may exceed the path MTU, and is never
   * fragmented.
   */
  gsoSize?: number;
  /**
   * A multicast datagram is also delivered to this stack's own sockets when the stack joined the
   * group (IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP, on by default for sockets).
   */
  multicastLoop?: boolean;
}

/** The output half of an IP layer, as used by UDP/TCP/ICMP. */
export interface IpOutput {
  readonly family: 4 | 6;
  /** Route to `dst` (optionally forcing a source address we own). Undefined when unroutable or `src` is not ours. */
  /**
   * `transient`: the caller uses the route for one send and drops it, and `dst` stays as it is
   * meanwhile, so the route may point at it instead of a copy (one allocation less per datagram).
   */
  route(dst: Uint8Array, src?: Uint8Array, transient?: boolean): Route | undefined;
  /**
   * Send an L4 message that the caller wrote into `frame` at offset `route.headroom` (its length
   * is `frame.length - route.headroom`). The IP layer writes its header and the Ethernet header
   * in place, fragments when needed (unless dontFragment), and resolves the next hop's MAC.
   * Returns false if the packet was dropped (no route, queue full, too big with DF).
   * `partial`: a TCP or UDP message whose checksum field holds only the pseudo-header sum, for a
   * netif with checksum offload (features.checksumOffload) to complete; the IP layer completes it
   * itself where the packet does not go to the netif as it is (fragmented, or to our own sockets).
   */
  send(route: Route, protocol: number, frame: Uint8Array, opts?: SendOptions, partial?: boolean): boolean;
  /** Is this one of our unicast addresses? */
  isLocal(addr: Uint8Array): boolean;
  /** Send an ICMP error about a received packet (rate limited, never about multicast/ICMP errors). */
  sendIcmpError(pkt: IpPacket, kind: "port_unreachable" | "protocol_unreachable"): void;
  /** Listen to multicast group `g` (reference counted; the first join is reported, IGMP / MLD). */
  joinGroup(g: Uint8Array): void;
  /** Undo one joinGroup (the last leave is reported). */
  leaveGroup(g: Uint8Array): void;
}

/**
 * Told when the set of groups a layer listens to changes (first join, last leave): the group
 * membership protocol (IGMP for IPv4, MLD for IPv6) reports it to multicast routers.
 */
export interface GroupListener {
  joined(g: Uint8Array): void;
  left(g: Uint8Array): void;
}
