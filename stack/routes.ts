/**
 * A host's routing table (the longest-match rule of RFC 1812 §5.2.4.3, as Linux's FIB applies it
 * for a host): each entry is a destination prefix, a next hop (a gateway, or none: on-link) and a
 * metric. The entries are kept sorted, longest prefix first and lowest metric first among equal
 * prefixes, so a lookup is one scan that stops at the first match: the IP layers scan `entries`
 * with their own (allocation-free) match, once per datagram sent.
 */

/** Where a route came from: an address's own prefix, the user, DHCP. */
export type RouteOrigin = "connected" | "static" | "dhcp";

export interface RouteEntry {
  readonly prefixLength: number;
  readonly metric: number;
  readonly origin: RouteOrigin;
}

export class RouteTable<E extends RouteEntry> {
  /** Replaced on every change, never changed in place (exactly sized: a table changes rarely, a stack may have thousands of siblings). */
  private list: readonly E[] = [];

  constructor(
    /** Same destination and next hop (and metric): the identity of a route, as `ip route` sees it. */
    private readonly same: (a: E, b: E) => boolean,
  ) {}

  /** Sorted: longest prefix first, then lowest metric. Read-only for the scan. */
  get entries(): readonly E[] {
    return this.list;
  }

  /** Insert in order; false if an identical route is there already. */
  add(e: E): boolean {
    if (this.list.some((x) => this.same(x, e))) return false;
    let i = 0;
    while (i < this.list.length && (this.list[i]!.prefixLength > e.prefixLength || (this.list[i]!.prefixLength === e.prefixLength && this.list[i]!.metric <= e.metric))) i++;
    this.list = this.list.slice(0, i).concat(e, this.list.slice(i));
    return true;
  }

  /** Remove every entry `pred` selects; returns how many. */
  removeWhere(pred: (e: E) => boolean): number {
    const kept = this.list.filter((e) => !pred(e));
    const n = this.list.length - kept.length;
    if (n > 0) this.list = kept;
    return n;
  }
}

/** A mask of `length` leading one bits, as an unsigned 32-bit number. */
export function ipv4Mask(length: number): number {
  return length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
}
