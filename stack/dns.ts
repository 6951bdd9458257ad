/**
 * A DNS stub resolver (RFC 1035 §7, RFC 1123 §6.1.3) that runs over a paf stack's own UDP and
 * TCP: A and AAAA queries, answers like `dns.promises.lookup` / `resolve4` / `resolve6`.
 *
 * - Each attempt uses a fresh UDP socket on a random ephemeral port and a random query ID; a
 *   response counts only if it comes from the server's address and port, carries our ID and echoes
 *   our question (RFC 5452 §9.1). Anything else is dropped, counted, and the wait goes on.
 * - TC=1 retries the same server over TCP with 2-byte length framing (RFC 7766 §5, §8).
 * - Each attempt waits `timeoutMs`; the servers are tried in order, `attempts` rounds in all.
 *   SERVFAIL / REFUSED / FORMERR / NOTIMP move on to the next server; NXDOMAIN is an answer.
 * - CNAME chains are followed inside the answer section, at most `maxCnameDepth` links, and only
 *   records on the chain from the question's name are used.
 * - Positive answers are cached for their TTL (capped at `maxTtlSec`), negative ones (NXDOMAIN,
 *   no data) for the SOA's negative TTL (RFC 2308 §5, capped at `negativeTtlSec`); the cache is an
 *   LRU of `cacheSize` entries. Expiry is checked on use: no timer runs for the cache.
 * - Identical queries in flight are coalesced into one; at most `maxPending` distinct ones.
 * - IP literals and "localhost" / "*.localhost" (RFC 6761 §6.3) are answered without a query.
 *
 * Timers come from the stack's TimerQueue (so a VirtualClock drives them in tests); only a query
 * in flight holds one, like a pending ping.
 */
import type { Random } from "./core/random.js";
import type { Timer, TimerQueue } from "./core/timers.js";
import { Counters } from "./core/stats.js";
import type { UdpLayer, UdpSocket, RemoteInfo } from "./udp.js";
import type { TcpApi, TcpFlow } from "./tcp/index.js";
import { bytesEqual, ipFamily, parseIP } from "./wire/addr.js";
import { DNS_CLASS_IN, DNS_RCODE, DNS_TYPE, canonicalName, emitQuery, nameError, parseDns, sameName, type DnsMessage } from "./wire/dns.js";

export interface DnsOptions {
  /** Name servers: "198.18.0.1", "2001:db8::1", "198.18.0.1:5353" or "[2001:db8::1]:5353" (port default 53). */
  servers: string[];
  /** Wait for one answer, per attempt (UDP, or the whole TCP exchange). Default 2000 ms. */
  timeoutMs?: number;
  /** Rounds through the server list before ETIMEOUT (like resolv.conf's `attempts`). Default 2. */
  attempts?: number;
  /** Cache entries (one per name and type, positive or negative), least recently used evicted. Default 1024. */
  cacheSize?: number;
  /** Longest time an answer is cached, whatever its TTL says. Default 3600 s. */
  maxTtlSec?: number;
  /** Longest time a negative answer (NXDOMAIN / no data) is cached (RFC 2308). Default 60 s; 0 disables. */
  negativeTtlSec?: number;
  /** Distinct queries in flight (identical ones are coalesced); beyond: ENOBUFS. Default 256. */
  maxPending?: number;
  /** CNAME links followed in one answer. Default 8. */
  maxCnameDepth?: number;
  /** Largest response accepted, UDP or TCP (bytes). Default 65535. */
  maxResponseSize?: number;
  /** UDP payload size advertised with EDNS(0) (RFC 6891); 0 sends no OPT record (512-byte answers). Default 1232. */
  ednsUdpSize?: number;
}

export interface LookupOptions {
  /** 4, 6, or 0 for both (A and AAAA queried together). Default 0. */
  family?: 0 | 4 | 6;
  /** Return every address instead of the first. */
  all?: boolean;
  /** With family 0, which family comes first. Default "ipv4first". */
  order?: "ipv4first" | "ipv6first";
}

export interface LookupAddress {
  address: string;
  family: 4 | 6;
}

export interface RecordWithTtl {
  address: string;
  /** Seconds left (from the cache: what remains). */
  ttl: number;
}

/** The parts of a stack the resolver uses (a `Stack` is one). */
export interface DnsStackDeps {
  udp: UdpLayer;
  tcp: TcpApi;
  timers: TimerQueue;
  random: Random;
}

export type DnsError = Error & { code: string; syscall: string; hostname: string };

interface Server {
  text: string;
  address: string;
  bytes: Uint8Array;
  family: 4 | 6;
  port: number;
}

interface CacheEntry {
  /** Clock ms after which the entry is stale. */
  expires: number;
  addresses?: string[];
  /** Negative entry: the error code to give. */
  code?: string;
}

/** One exchange's outcome: a validated response, or why there was none. */
type Exchange = { msg: DnsMessage } | { fail: string; detail?: string };

/** Internal failure carried to the API, which names the syscall. */
class Failure extends Error {
  constructor(
    readonly code: string,
    readonly detail = "",
  ) {
    super(code);
  }
}

export class DnsResolver {
  readonly counters = new Counters("dns");
  private serverList: readonly Server[];
  private readonly udp: UdpLayer;
  private readonly tcp: TcpApi;
  private readonly timers: TimerQueue;
  private readonly random: Random;
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly cacheSize: number;
  private readonly maxTtlSec: number;
  private readonly negativeTtlSec: number;
  private readonly maxPending: number;
  private readonly maxCnameDepth: number;
  private readonly maxResponseSize: number;
  private readonly ednsUdpSize: number;
  /** LRU: Map order is least recently used first. */
  private cacheMap: Map<string, CacheEntry> | undefined;
  private inflightMap: Map<string, Promise<RecordWithTtl[]>> | undefined;
  private activeSet: Set<() => void> | undefined;
  // The tables are made at first use: an idle stack (of thousands) holds none.
  private get cache(): Map<string, CacheEntry> {
    return (this.cacheMap ??= new Map());
  }
  private get inflight(): Map<string, Promise<RecordWithTtl[]>> {
    return (this.inflightMap ??= new Map());
  }
  /** Abort functions of exchanges on the wire, for close(). */
  private get active(): Set<() => void> {
    return (this.activeSet ??= new Set());
  }
  private closed = false;
  private closedCode = "ECANCELED";

  constructor(stack: DnsStackDeps, opts: DnsOptions = { servers: [] }) {
    this.udp = stack.udp;
    this.tcp = stack.tcp;
    this.timers = stack.timers;
    this.random = stack.random;
    this.serverList = (opts.servers ?? []).map(parseServer);
    const int = (v: number | undefined, def: number, min: number, name: string): number => {
      const x = v ?? def;
      if (!Number.isInteger(x) || x < min) throw new RangeError(`dns.${name} must be an integer >= ${min} (got ${String(v)})`);
      return x;
    };
    this.timeoutMs = int(opts.timeoutMs, 2000, 1, "timeoutMs");
    this.attempts = int(opts.attempts, 2, 1, "attempts");
    this.cacheSize = int(opts.cacheSize, 1024, 0, "cacheSize");
    this.maxTtlSec = int(opts.maxTtlSec, 3600, 0, "maxTtlSec");
    this.negativeTtlSec = int(opts.negativeTtlSec, 60, 0, "negativeTtlSec");
    this.maxPending = int(opts.maxPending, 256, 1, "maxPending");
    this.maxCnameDepth = int(opts.maxCnameDepth, 8, 0, "maxCnameDepth");
    this.maxResponseSize = Math.min(65535, int(opts.maxResponseSize, 65535, 512, "maxResponseSize"));
    this.ednsUdpSize = int(opts.ednsUdpSize, 1232, 0, "ednsUdpSize");
  }

  /** The name servers, in the order they are tried. */
  get servers(): readonly Server[] {
    return this.serverList;
  }

  /** Like `dns.getServers()`: the servers as given. */
  getServers(): string[] {
    return this.serverList.map((s) => s.text);
  }

  /**
   * Like `dns.setServers()`: replace the servers (a DHCP lease does, when the stack was given
   * none). Queries in flight finish with the list they started with; the cache is kept.
   */
  setServers(servers: readonly string[]): void {
    this.serverList = servers.map(parseServer);
  }

  /** Cached entries (positive and negative, stale ones included until used or evicted). */
  get cacheEntries(): number {
    return this.cacheMap?.size ?? 0;
  }

  clearCache(): void {
    this.cache.clear();
  }

  /**
   * Like `dns.promises.lookup`: the first address, or every one with `all`. Errors: ENOTFOUND
   * (no such name, or no address of the family), ETIMEOUT, ESERVFAIL, EREFUSED, EBADNAME ...
   * with `syscall` "getaddrinfo" and `hostname`.
   */
  lookup(name: string, opts: LookupOptions & { all: true }): Promise<LookupAddress[]>;
  lookup(name: string, opts?: LookupOptions & { all?: false }): Promise<LookupAddress>;
  lookup(name: string, opts?: LookupOptions): Promise<LookupAddress | LookupAddress[]>;
  async lookup(name: string, opts: LookupOptions = {}): Promise<LookupAddress | LookupAddress[]> {
    const family = opts.family ?? 0;
    if (family !== 0 && family !== 4 && family !== 6) throw Object.assign(new TypeError(`family must be 0, 4 or 6 (got ${String(family)})`), { code: "ERR_INVALID_ARG_VALUE" });
    const fam = typeof name === "string" ? ipFamily(name) : 0;
    let out: LookupAddress[];
    if (fam !== 0) out = [{ address: name, family: fam }];
    else {
      const order: (4 | 6)[] = family !== 0 ? [family] : opts.order === "ipv6first" ? [6, 4] : [4, 6];
      const settled = await Promise.allSettled(order.map((f) => this.resolveAddresses(name, f === 4 ? DNS_TYPE.A : DNS_TYPE.AAAA)));
      out = [];
      settled.forEach((s, i) => {
        if (s.status === "fulfilled") for (const r of s.value) out.push({ address: r.address, family: order[i]! });
      });
      if (out.length === 0) {
        // getaddrinfo's view: "no data" for a family is "not found" for the name.
        const first = (settled.find((s) => s.status === "rejected" && (s.reason as Failure).code !== "ENODATA") ?? settled[0]!) as PromiseRejectedResult;
        throw apiError(first.reason, "getaddrinfo", name, true);
      }
    }
    return opts.all ? out : out[0]!;
  }

  /** Like `dns.promises.resolve4(name, { ttl: true })`. Errors: ENOTFOUND, ENODATA, ETIMEOUT ... (syscall "queryA"). */
  resolve4(name: string): Promise<RecordWithTtl[]> {
    return this.resolveAddresses(name, DNS_TYPE.A).catch((e) => Promise.reject(apiError(e, "queryA", name, false)));
  }

  /** Like `dns.promises.resolve6(name, { ttl: true })` (syscall "queryAaaa"). */
  resolve6(name: string): Promise<RecordWithTtl[]> {
    return this.resolveAddresses(name, DNS_TYPE.AAAA).catch((e) => Promise.reject(apiError(e, "queryAaaa", name, false)));
  }

  /**
   * Stop: queries in flight and later ones fail with `code` (ECANCELED; ERR_STACK_CLOSED when
   * the stack closes it), the cache is emptied.
   */
  close(code = "ECANCELED"): void {
    this.closed = true;
    this.closedCode = code;
    for (const abort of [...(this.activeSet ?? [])]) abort();
    this.cacheMap?.clear();
  }

  // ---- cache, coalescing -----------------------------------------------------------------------

  private async resolveAddresses(name: string, type: number): Promise<RecordWithTtl[]> {
    if (typeof name !== "string") throw new Failure("EBADNAME", "the name is not a string");
    const fam = ipFamily(name);
    if (fam !== 0) {
      if ((fam === 4) === (type === DNS_TYPE.A)) return [{ address: name, ttl: 0 }];
      throw new Failure("ENODATA");
    }
    const qname = canonicalName(name);
    const bad = qname === "" ? "empty name" : nameError(name);
    if (bad !== undefined) throw new Failure("EBADNAME", bad);
    if (qname === "localhost" || qname.endsWith(".localhost")) return [{ address: type === DNS_TYPE.A ? "127.0.0.1" : "::1", ttl: 0 }];
    if (this.closed) throw new Failure(this.closedCode, "resolver closed");
    if (this.servers.length === 0) throw new Failure("ENOSERVERS", "no DNS servers configured for this stack (StackOptions.dns.servers)");

    const key = `${type} ${qname}`;
    const now = this.timers.now();
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      if (hit.expires > now) {
        this.cache.set(key, hit); // most recently used
        this.counters.inc("cache_hits");
        if (hit.code) throw new Failure(hit.code, "cached");
        const ttl = Math.max(0, Math.floor((hit.expires - now) / 1000));
        return hit.addresses!.map((address) => ({ address, ttl }));
      }
    }
    this.counters.inc("cache_misses");
    const pending = this.inflight.get(key);
    if (pending) {
      this.counters.inc("coalesced");
      return pending;
    }
    if (this.inflight.size >= this.maxPending) {
      this.counters.drop("pending_full");
      throw new Failure("ENOBUFS", `too many DNS queries in flight (limit ${this.maxPending})`);
    }
    const p = this.fetch(qname, type, key).finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  private async fetch(qname: string, type: number, key: string): Promise<RecordWithTtl[]> {
    const msg = await this.exchange(qname, type);
    const r = this.followChain(msg, qname, type);
    const now = this.timers.now();
    if ("code" in r) {
      if (r.code !== "EBADRESP") {
        const ttl = Math.min(negativeTtl(msg), this.negativeTtlSec);
        if (ttl > 0) this.remember(key, { expires: now + ttl * 1000, code: r.code });
      }
      throw new Failure(r.code, r.detail);
    }
    const ttl = Math.min(r.ttl, this.maxTtlSec);
    if (ttl > 0) this.remember(key, { expires: now + ttl * 1000, addresses: r.addresses });
    return r.addresses.map((address) => ({ address, ttl }));
  }

  private remember(key: string, e: CacheEntry): void {
    if (this.cacheSize === 0) return;
    this.cache.delete(key);
    while (this.cache.size >= this.cacheSize) {
      this.cache.delete(this.cache.keys().next().value!);
      this.counters.inc("cache_evictions");
    }
    this.cache.set(key, e);
  }

  /**
   * The addresses for `qname` from the answer section: records of `type` owned by `qname`, or by
   * the end of a CNAME chain starting at it (RFC 1034 §3.6.2), nothing else (RFC 5452 §6).
   */
  private followChain(msg: DnsMessage, qname: string, type: number): { addresses: string[]; ttl: number } | { code: string; detail?: string } {
    let owner = qname;
    let ttl = Infinity;
    const seen = new Set([canonicalName(owner)]);
    for (let depth = 0; ; depth++) {
      const addresses: string[] = [];
      let minTtl = ttl;
      for (const r of msg.answers) {
        if (r.type !== type || r.class !== DNS_CLASS_IN || !sameName(r.name, owner)) continue;
        if (r.data.kind !== "A" && r.data.kind !== "AAAA") continue;
        if (!addresses.includes(r.data.address)) addresses.push(r.data.address);
        minTtl = Math.min(minTtl, r.ttl);
      }
      if (addresses.length > 0) return { addresses, ttl: minTtl };
      const c = msg.answers.find((r) => r.type === DNS_TYPE.CNAME && r.class === DNS_CLASS_IN && sameName(r.name, owner));
      if (c?.data.kind !== "CNAME") break;
      const target = canonicalName(c.data.target);
      if (depth >= this.maxCnameDepth) {
        this.counters.drop("cname_too_deep");
        return { code: "EBADRESP", detail: `CNAME chain longer than ${this.maxCnameDepth}` };
      }
      if (seen.has(target)) {
        this.counters.drop("cname_loop");
        return { code: "EBADRESP", detail: `CNAME loop at ${target}` };
      }
      seen.add(target);
      ttl = Math.min(ttl, c.ttl);
      owner = target;
    }
    if (msg.rcode === DNS_RCODE.NXDOMAIN) return { code: "ENOTFOUND" };
    return { code: "ENODATA" };
  }

  // ---- the wire --------------------------------------------------------------------------------

  /** Ask the servers in turn until one gives NOERROR or NXDOMAIN. */
  private async exchange(qname: string, type: number): Promise<DnsMessage> {
    let last = new Failure("ETIMEOUT");
    for (let round = 0; round < this.attempts; round++) {
      for (const server of this.servers) {
        if (this.closed) throw new Failure(this.closedCode, "resolver closed");
        let r = await this.udpExchange(server, qname, type);
        if ("msg" in r && r.msg.tc) {
          this.counters.inc("truncated");
          r = await this.tcpExchange(server, qname, type);
        }
        if ("fail" in r) {
          last = new Failure(r.fail, r.detail);
          continue;
        }
        const rc = r.msg.rcode;
        if (rc === DNS_RCODE.NOERROR || rc === DNS_RCODE.NXDOMAIN) return r.msg;
        this.counters.inc("rcode_" + (RCODE_ERROR[rc]?.slice(1).toLowerCase() ?? String(rc)));
        last = new Failure(RCODE_ERROR[rc] ?? "EBADRESP", `${server.text} answered rcode ${rc}`);
      }
    }
    if (last.code === "ETIMEOUT") this.counters.inc("timeouts");
    throw last;
  }

  /**
   * Check a response against what we asked: QR set, standard query, our ID, the question echoed
   * (RFC 5452 §9.1). Returns the message, or a drop reason.
   */
  private validate(data: Uint8Array, id: number, qname: string, type: number): DnsMessage | string {
    if (data.length > this.maxResponseSize) return "too_big";
    if (data.length < 2 || ((data[0]! << 8) | data[1]!) !== id) return "bad_id";
    const m = parseDns(data);
    if (typeof m === "string") return "malformed_" + m;
    if (!m.qr) return "not_response";
    if (m.opcode !== 0) return "bad_opcode";
    const q = m.questions;
    if (q.length !== 1 || q[0]!.type !== type || q[0]!.class !== DNS_CLASS_IN || !sameName(q[0]!.name, qname)) return "bad_question";
    return m;
  }

  private newId(): number {
    return this.random.u32() & 0xffff;
  }

  /** One UDP attempt: a fresh socket on a random port, one query, the first valid answer or a timeout. */
  private udpExchange(server: Server, qname: string, type: number): Promise<Exchange> {
    return new Promise((resolve) => {
      const id = this.newId();
      const query = emitQuery(id, qname, type, { ednsUdpSize: this.ednsUdpSize });
      let sock: UdpSocket;
      try {
        sock = this.udp.createSocket(server.family === 4 ? "udp4" : "udp6");
        sock.bind(0);
      } catch (e) {
        return resolve({ fail: (e as { code?: string }).code ?? "EINVAL", detail: (e as Error).message });
      }
      let done = false;
      const finish = (r: Exchange): void => {
        if (done) return;
        done = true;
        this.timers.cancel(timer);
        this.active.delete(abort);
        sock.close();
        resolve(r);
      };
      const abort = () => finish({ fail: this.closedCode, detail: "resolver closed" });
      const timer: Timer = this.timers.timer(() => finish({ fail: "ETIMEOUT", detail: `no answer from ${server.text} in ${this.timeoutMs} ms` }));
      this.active.add(abort);
      sock.on("message", (msg: Buffer, rinfo: RemoteInfo) => {
        const c = this.counters;
        c.inc("rx_udp");
        if (rinfo.port !== server.port || !sameAddress(rinfo.address, server.bytes)) return c.drop("bad_source");
        const m = this.validate(msg, id, qname, type);
        if (typeof m === "string") return c.drop(m);
        c.inc("responses");
        finish({ msg: m });
      });
      sock.on("error", (e: Error & { code?: string }) => finish({ fail: e.code ?? "EIO", detail: e.message }));
      this.counters.inc("udp_queries");
      sock.send(query, server.port, server.address, (err: Error | null) => {
        if (err) finish({ fail: (err as { code?: string }).code ?? "EIO", detail: err.message });
      });
      this.timers.arm(timer, this.timeoutMs);
    });
  }

  /** The same question over TCP (RFC 7766): 2-byte length prefix both ways, one query, then FIN. */
  private tcpExchange(server: Server, qname: string, type: number): Promise<Exchange> {
    return new Promise((resolve) => {
      const id = this.newId();
      const query = emitQuery(id, qname, type);
      const framed = new Uint8Array(2 + query.length);
      framed[0] = query.length >>> 8;
      framed[1] = query.length & 0xff;
      framed.set(query, 2);
      let flow: TcpFlow;
      try {
        flow = this.tcp.connectFlow({ host: server.address, port: server.port });
      } catch (e) {
        return resolve({ fail: (e as { code?: string }).code ?? "EINVAL", detail: (e as Error).message });
      }
      let done = false;
      // The 2-byte length first, then one buffer of exactly that size: no re-concatenation, so a
      // server dribbling bytes costs linear time, and never more than maxResponseSize of memory.
      const lenBytes: number[] = [];
      let body: Buffer | undefined;
      let have = 0;
      const finish = (r: Exchange, polite: boolean): void => {
        if (done) return;
        done = true;
        this.timers.cancel(timer);
        this.active.delete(abort);
        if (polite) {
          flow.resume();
          flow.end();
        } else flow.destroy();
        resolve(r);
      };
      const abort = () => finish({ fail: this.closedCode, detail: "resolver closed" }, false);
      const timer: Timer = this.timers.timer(() => finish({ fail: "ETIMEOUT", detail: `no answer over TCP from ${server.text} in ${this.timeoutMs} ms` }, false));
      this.active.add(abort);
      flow.on("error", (e: Error & { code?: string }) => finish({ fail: e.code ?? "EIO", detail: e.message }, false));
      flow.on("connect", () => {
        this.counters.inc("tcp_queries");
        flow.write(framed);
      });
      flow.on("data", (d: Buffer) => {
        if (done) return;
        let i = 0;
        while (!body && i < d.length) {
          lenBytes.push(d[i++]!);
          if (lenBytes.length < 2) continue;
          const len = (lenBytes[0]! << 8) | lenBytes[1]!;
          if (len > this.maxResponseSize) {
            this.counters.drop("too_big");
            return finish({ fail: "EBADRESP", detail: `${len}-byte response over TCP (limit ${this.maxResponseSize})` }, false);
          }
          body = Buffer.allocUnsafe(len);
        }
        if (!body) return;
        const n = Math.min(d.length - i, body.length - have);
        d.copy(body, have, i, i + n);
        have += n;
        if (have < body.length) return;
        const m = this.validate(body, id, qname, type);
        if (typeof m === "string") {
          // On a connection we opened, a bad answer is the server's: give up on it, count why.
          this.counters.drop(m);
          return finish({ fail: "EBADRESP", detail: `bad response over TCP from ${server.text} (${m})` }, false);
        }
        this.counters.inc("responses");
        finish({ msg: m }, true);
      });
      const early = () => finish({ fail: "EBADRESP", detail: `${server.text} closed the TCP connection before answering` }, false);
      flow.on("end", early);
      flow.on("close", early);
      this.timers.arm(timer, this.timeoutMs);
    });
  }
}

const RCODE_ERROR: Record<number, string> = {
  [DNS_RCODE.FORMERR]: "EFORMERR",
  [DNS_RCODE.SERVFAIL]: "ESERVFAIL",
  [DNS_RCODE.NOTIMP]: "ENOTIMP",
  [DNS_RCODE.REFUSED]: "EREFUSED",
};

/** Negative TTL (RFC 2308 §5): min(SOA TTL, SOA MINIMUM) from the authority section; 0 without a SOA. */
function negativeTtl(m: DnsMessage): number {
  for (const r of m.authorities) if (r.data.kind === "SOA") return Math.min(r.ttl, r.data.minimum);
  return 0;
}

function sameAddress(text: string, bytes: Uint8Array): boolean {
  try {
    const b = parseIP(text);
    return b.length === bytes.length && bytesEqual(b, bytes);
  } catch {
    return false;
  }
}

function parseServer(s: string): Server {
  let address = s;
  let port = 53;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(s);
  const v4 = /^([\d.]+):(\d+)$/.exec(s);
  if (v6 || v4) {
    address = (v6 ?? v4)![1]!;
    port = Number((v6 ?? v4)![2]);
  }
  const family = ipFamily(address);
  if (family === 0 || address.includes("%")) throw new TypeError(`invalid DNS server "${s}": an IPv4 or IPv6 address, optionally with :port ([v6]:port)`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`invalid DNS server port in "${s}" (1..65535)`);
  return { text: s, address, bytes: parseIP(address), family, port };
}

/** A Node-like error: "queryA ENOTFOUND name" with code, syscall and hostname. */
function apiError(e: unknown, syscall: string, hostname: string, lookup: boolean): DnsError {
  if (!(e instanceof Failure)) return e as DnsError;
  const code = lookup && e.code === "ENODATA" ? "ENOTFOUND" : e.code;
  const err = new Error(`${syscall} ${code} ${hostname}${e.detail && e.detail !== "cached" ? ` (${e.detail})` : ""}`) as DnsError;
  err.code = code;
  err.syscall = syscall;
  err.hostname = hostname;
  return err;
}
