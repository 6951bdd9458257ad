/**
 * Fragment reassembly shared by IPv4 (RFC 791 §3.2, RFC 815) and IPv6 (RFC 8200 §4.5).
 *
 * Bounded: at most `maxDatagrams` datagrams in progress (`maxDatagramsPerSource` from one source
 * address) and `maxBytes` of fragment data buffered across all of them. A bound reached makes
 * room by evicting the oldest datagram (the source's own oldest when the source is at its share),
 * never by refusing what is new: fragments that never complete (spoofed, or lost) age out under
 * pressure instead of locking every fragmented packet out until they time out, and a source
 * flooding them only evicts its own. Each datagram must complete within `timeoutMs` of its first
 * fragment. Overlapping fragments make the whole datagram invalid
 * (RFC 5722, and the same policy for IPv4, where overlaps are only ever an evasion attempt);
 * an exact duplicate of a fragment already held is ignored.
 */
import type { TimerQueue, Timer } from "./core/timers.js";
import type { Counters } from "./core/stats.js";
import { copyBytes } from "./wire/addr.js";

export interface ReassemblyOptions {
  /** Datagrams being reassembled at once (the oldest is evicted for a new one). Default 1024. */
  maxDatagrams?: number;
  /** Datagrams from one source address at once (its oldest is evicted for its new one). Default 64. */
  maxDatagramsPerSource?: number;
  /** Fragment bytes held at once, all datagrams together (the oldest datagrams are evicted). Default 4 MiB. */
  maxBytes?: number;
  /** Time allowed for one datagram (ms). Default 30000 (Linux's ipfrag_time). */
  timeoutMs?: number;
  /** Largest reassembled payload. Default 65535. */
  maxDatagramSize?: number;
}

interface Frag {
  offset: number;
  data: Uint8Array;
}

interface Pending {
  key: string;
  source: string;
  frags: Frag[];
  bytes: number;
  total: number; // -1 until the last fragment is seen
  timer: Timer;
  /** The first fragment's whole packet (for an ICMP time-exceeded quote), if seen. */
  first: Uint8Array | undefined;
  dead: boolean;
}

export class Reassembler {
  /** In arrival order of each datagram's first fragment: the first entry is the oldest. */
  private pendingMap: Map<string, Pending> | undefined;
  private bySourceMap: Map<string, Set<Pending>> | undefined;
  // The tables are made at first use: an idle stack (of thousands) holds none.
  private get pending(): Map<string, Pending> {
    return (this.pendingMap ??= new Map());
  }
  /** The same datagrams by source address, oldest first. */
  private get bySource(): Map<string, Set<Pending>> {
    return (this.bySourceMap ??= new Map());
  }
  private bytes = 0;
  private readonly o: Required<ReassemblyOptions>;

  constructor(
    private readonly timers: TimerQueue,
    private readonly counters: Counters,
    opts: ReassemblyOptions = {},
    private readonly onTimeout?: (firstFragment: Uint8Array) => void,
  ) {
    this.o = {
      maxDatagrams: opts.maxDatagrams ?? 1024,
      maxDatagramsPerSource: opts.maxDatagramsPerSource ?? 64,
      maxBytes: opts.maxBytes ?? 4 * 1024 * 1024,
      timeoutMs: opts.timeoutMs ?? 30_000,
      maxDatagramSize: opts.maxDatagramSize ?? 65535,
    };
  }

  get inProgress(): number {
    return this.pendingMap?.size ?? 0;
  }

  get bufferedBytes(): number {
    return this.bytes;
  }

  /**
   * Add one fragment of datagram `key` from `source` (`data` is a view, copied if kept). Returns
   * the reassembled payload when this fragment completes the datagram, otherwise undefined.
   */
  add(source: string, key: string, offset: number, more: boolean, data: Uint8Array, packet?: Uint8Array): Uint8Array | undefined {
    const c = this.counters;
    c.inc("frag_rx");
    const end = offset + data.length;
    if (end > this.o.maxDatagramSize) {
      c.drop("frag_too_big");
      this.kill(this.pending.get(key));
      return undefined;
    }
    if (more && data.length % 8 !== 0) {
      c.drop("frag_bad_length");
      return undefined;
    }
    let p = this.pending.get(key);
    if (!p) {
      let mine = this.bySource.get(source);
      if (mine && mine.size >= this.o.maxDatagramsPerSource) {
        c.drop("reassembly_source_evicted");
        this.remove(mine.values().next().value!);
      } else if (this.pending.size >= this.o.maxDatagrams) {
        c.drop("reassembly_evicted");
        this.remove(this.pending.values().next().value!);
      }
      const np: Pending = { key, source, frags: [], bytes: 0, total: -1, timer: undefined as unknown as Timer, first: undefined, dead: false };
      np.timer = this.timers.timer(() => this.expire(np), true);
      this.timers.arm(np.timer, this.o.timeoutMs);
      this.pending.set(key, np);
      mine = this.bySource.get(source);
      if (!mine) this.bySource.set(source, (mine = new Set()));
      mine.add(np);
      p = np;
    }
    if (!more) {
      if ((p.total >= 0 && p.total !== end) || p.frags.some((f) => f.offset + f.data.length > end)) {
        // A second, different last fragment, or fragments already held beyond this end (an
        // empty one included, which no byte count would catch).
        c.drop("frag_inconsistent_length");
        this.kill(p);
        return undefined;
      }
      p.total = end;
    }
    if (p.total >= 0 && end > p.total) {
      c.drop("frag_past_end");
      this.kill(p);
      return undefined;
    }
    for (const f of p.frags) {
      const fend = f.offset + f.data.length;
      if (offset < fend && f.offset < end) {
        if (f.offset === offset && f.data.length === data.length && bufEq(f.data, data)) {
          c.inc("frag_duplicate");
          return undefined;
        }
        c.drop("frag_overlap");
        this.kill(p);
        return undefined;
      }
    }
    // Over the byte bound: the oldest datagrams go first (this one last).
    while (this.bytes + data.length > this.o.maxBytes) {
      const oldest = this.pending.values().next().value!;
      c.drop("reassembly_memory");
      this.remove(oldest);
      if (oldest === p) return undefined;
    }
    p.frags.push({ offset, data: copyBytes(data) });
    p.bytes += data.length;
    this.bytes += data.length;
    if (offset === 0 && packet) p.first = copyBytes(packet, 0, Math.min(packet.length, 576));
    if (p.total < 0 || p.bytes !== p.total) return undefined;
    // Complete: no overlaps and the byte count matches, so there are no holes.
    const out = new Uint8Array(p.total);
    for (const f of p.frags) out.set(f.data, f.offset);
    this.remove(p);
    c.inc("reassembled");
    return out;
  }

  close(): void {
    for (const p of [...this.pending.values()]) this.remove(p);
  }

  private expire(p: Pending): void {
    if (this.pending.get(p.key) !== p) return;
    this.counters.drop("reassembly_timeout");
    const first = p.first;
    this.remove(p);
    if (first && this.onTimeout) this.onTimeout(first);
  }

  private kill(p: Pending | undefined): void {
    if (p) this.remove(p);
  }

  private remove(p: Pending): void {
    this.timers.cancel(p.timer);
    this.bytes -= p.bytes;
    this.pending.delete(p.key);
    const mine = this.bySource.get(p.source);
    mine?.delete(p);
    if (mine?.size === 0) this.bySource.delete(p.source);
  }
}

function bufEq(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
