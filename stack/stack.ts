/**
 * The StackV4V6 facade (after mirage-tcpip's Stack.Make(Eth)(Arp)(Ip)(Udp)(Tcp)): composes the
 * layers over one netif, by constructor injection, in this one place. Nothing here is
 * module-level state: every stack owns its caches, timers and counters, so many stacks live in
 * one process without seeing each other.
 */
import type { Netif } from "./netif/netif.js";
import type { Clock } from "./core/clock.js";
import type { Random } from "./core/random.js";
import { TimerQueue } from "./core/timers.js";
import { KeepAlive, Scheduler, sharedScheduler } from "./core/scheduler.js";
import { Ingress, resolveTenantOptions, type TenantOptions, type TenantOptionsResolved } from "./ingress.js";
import { StackReceiver } from "./receive.js";
import { Counters, type StatsSnapshot } from "./core/stats.js";
import { ERR_INVALID_ARG_VALUE, InternalErrors, stackClosedError } from "./core/errors.js";
import { validateInteger } from "./core/validate.js";
import { EthernetLayer } from "./ethernet.js";
import { ArpLayer, type ArpOptions } from "./arp.js";
import { Ipv4Layer, type Ipv4Options } from "./ipv4.js";
import { Icmpv4, type Icmpv4Options } from "./icmpv4.js";
import { UdpLayer, type UdpOptions } from "./udp.js";
import { Ipv6Layer, type Ipv6Options, type Ipv6Address } from "./ipv6.js";
import { Ndp, type NdpOptions } from "./ndp.js";
import { Icmpv6, type Icmpv6Options } from "./icmpv6.js";
import type { Timer } from "./core/timers.js";
import { TcpApi, TcpLayer, type TcpOptions } from "./tcp/index.js";
import { DnsResolver, type DnsOptions } from "./dns.js";
import { IPPROTO_TCP } from "./wire/tcp.js";
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from "./wire/ethernet.js";
import { IPPROTO_ICMP, IPPROTO_ICMPV6 } from "./wire/icmp.js";
import type { PingOptions, PingResult } from "./ping.js";
import { IPPROTO_UDP } from "./wire/udp.js";
import { copyBytes, linkLocalFromMac, formatIP, formatMac, ipFamily, parseCidr, parseIP, parseMac } from "./wire/addr.js";

export interface StackLimits {
  arp?: ArpOptions;
  ipv4?: Ipv4Options;
  icmpv4?: Icmpv4Options;
  udp?: UdpOptions;
  ipv6?: Ipv6Options;
  ndp?: NdpOptions;
  icmpv6?: Icmpv6Options;
  tcp?: TcpOptions;
  /** The stack as a tenant of its process: input rates, fair shares between sources, CPU per turn. */
  tenant?: TenantOptions;
}

export interface Ipv6Config {
  /** A static address with its prefix, e.g. "2001:db8::2/64" (the prefix becomes on-link). */
  address?: string;
  /** Static default router (otherwise routers from router advertisements are used). */
  gateway?: string;
  /** Form addresses from router advertisements (RFC 4862 SLAAC). Default false. */
  slaac?: boolean;
  /** Run duplicate address detection (RFC 4862 §5.4) before using an address. Default true. */
  dad?: boolean;
}

export interface StackOptions {
  netif: Netif;
  /** Our MAC (text or bytes). Default: a random locally administered unicast address. */
  mac?: string | Uint8Array;
  /** IPv4 configuration; omit for an IPv6-only stack. */
  ipv4?: { address: string; gateway?: string };
  /** IPv6 configuration; `{}` gives a link-local address only. Omit for an IPv4-only stack. */
  ipv6?: Ipv6Config;
  /** L3 MTU; default the netif's. */
  mtu?: number;
  limits?: StackLimits;
  /** DNS stub resolver over this stack's UDP/TCP (`stack.dns`): servers and bounds (see DnsOptions). */
  dns?: DnsOptions;
  /**
   * The scheduler this stack shares with others (timers, receive driver, fair shares of CPU).
   * Default: one per process, created at first use; with `clock` alone, one of its own on that
   * clock. A stack's clock is its scheduler's.
   */
  scheduler?: Scheduler;
  clock?: Clock;
  random?: Random;
}

export class Stack {
  readonly clock: Clock;
  readonly random: Random;
  readonly scheduler: Scheduler;
  readonly timers: TimerQueue;
  /** Stack-wide counters (internal errors). */
  readonly counters = new Counters("stack");
  readonly mac: Uint8Array;
  readonly mtu: number;
  readonly eth: EthernetLayer;
  readonly arp: ArpLayer;
  readonly ipv4: Ipv4Layer;
  readonly icmpv4: Icmpv4;
  readonly udp: UdpLayer;
  readonly ipv6: Ipv6Layer | undefined;
  readonly ndp: Ndp | undefined;
  readonly icmpv6: Icmpv6 | undefined;
  /** TCP: `stack.tcp.listen(...)`, `stack.tcp.connect(...)`; the layer itself is `stack.tcp.layer`. */
  readonly tcp: TcpApi;
  /** DNS stub resolver (`stack.dns.lookup(name)`); without `StackOptions.dns` lookups of names fail with ENOSERVERS. */
  readonly dns: DnsResolver;
  private closed = false;
  private readonly pendingDad: Promise<void>[] = [];
  private housekeeping: Timer | undefined;
  /** Limits of this stack as a tenant of its process (`limits.tenant`). */
  readonly tenant: TenantOptionsResolved;
  /** Admission of received frames by the tenant's rates (its drops are counted there). */
  private readonly ingress: Ingress;
  /** Between the netif and Ethernet: admission, batches, this stack's share of the scheduler. */
  private readonly receiver: StackReceiver;
  /** What keeps the process alive (listening servers) while the stack is ref'd. */
  private readonly keepAlive: KeepAlive;
  private refed = true;

  private constructor(readonly netif: Netif, opts: StackOptions) {
    if (opts.scheduler && opts.clock && opts.clock !== opts.scheduler.clock) throw new ERR_INVALID_ARG_VALUE("clock", "(a Clock)", "must be the scheduler's clock (or left out)");
    this.scheduler = opts.scheduler ?? (opts.clock ? new Scheduler({ clock: opts.clock }) : sharedScheduler());
    this.clock = this.scheduler.clock;
    this.random = opts.random ?? this.scheduler.random;
    this.timers = this.scheduler.timerQueue();
    this.mac = opts.mac === undefined ? randomMac(this.random) : typeof opts.mac === "string" ? parseMac(opts.mac) : copyBytes(opts.mac);
    if (this.mac[0]! & 1) throw new TypeError(`MAC ${formatMac(this.mac)} is a multicast address; a stack needs a unicast MAC`);
    this.mtu = opts.mtu ?? netif.mtu;
    validateInteger(this.mtu, "mtu", 576, 65535);
    const limits = opts.limits ?? {};
    this.eth = new EthernetLayer(netif, this.mac);
    this.arp = new ArpLayer(this.eth, this.timers, this.random, (frames) => this.icmpv4.linkFailure(frames), limits.arp);
    this.ipv4 = new Ipv4Layer(this.eth, this.arp, this.timers, this.random, this.mtu, limits.ipv4);
    this.icmpv4 = new Icmpv4(this.ipv4, this.timers, this.random, limits.icmpv4);
    this.eth.register(ETHERTYPE_ARP, (_frame, payload) => this.arp.input(payload));
    this.eth.register(ETHERTYPE_IPV4, (frame, payload, meta) => this.ipv4.input(frame, payload, meta));
    this.ipv4.register(IPPROTO_ICMP, this.icmpv4);
    this.ipv4.useIcmp(this.icmpv4);
    if (opts.ipv6) {
      this.ipv6 = new Ipv6Layer(this.eth, this.timers, this.random, this.mtu, limits.ipv6);
      const ndpOpts = { ...limits.ndp, ...(opts.ipv6.dad === false ? { dadTransmits: 0 } : {}) };
      this.ndp = new Ndp(this.ipv6, this.eth, this.timers, this.random, (frames) => this.icmpv6?.linkFailure(frames), ndpOpts, opts.ipv6.slaac ?? false);
      this.icmpv6 = new Icmpv6(this.ipv6, this.ndp, this.timers, this.random, limits.icmpv6);
      const ip6 = this.ipv6;
      this.eth.register(ETHERTYPE_IPV6, (frame, payload, meta) => ip6.input(frame, payload, meta));
      ip6.useNeighbours(this.ndp);
      ip6.register(IPPROTO_ICMPV6, this.icmpv6);
      ip6.useIcmp(this.icmpv6);
    }
    this.udp = new UdpLayer(opts.ipv4 ? this.ipv4 : undefined, this.ipv6, this.random, limits.udp);
    this.ipv4.register(IPPROTO_UDP, this.udp);
    this.ipv6?.register(IPPROTO_UDP, this.udp);
    const tcpLayer = new TcpLayer(opts.ipv4 ? this.ipv4 : undefined, this.ipv6, this.timers, this.random, limits.tcp, netif.features.tso ?? 0);
    this.keepAlive = new KeepAlive(this.scheduler);
    this.tcp = new TcpApi(tcpLayer, this.keepAlive);
    this.dns = new DnsResolver(this, opts.dns);
    this.ipv4.register(IPPROTO_TCP, tcpLayer);
    this.ipv6?.register(IPPROTO_TCP, tcpLayer);
    this.eth.onBatchEnd(() => {
      this.ipv4.batchEnd();
      this.ipv6?.batchEnd();
    });
    // A bug met while processing a frame or firing a timer must not take the stack (or the
    // process) down with it: counted, logged once per kind, the frame dropped.
    const bugs = new InternalErrors(this.counters, (msg, err) => this.onInternalError(err, msg));
    this.timers.onError = (err) => bugs.report("timer", err);
    // The receive side, driven by the scheduler; the tenant's rates checked before any parsing.
    this.tenant = resolveTenantOptions(limits.tenant);
    this.ingress = new Ingress(this.tenant, this.timers.now());
    this.receiver = new StackReceiver(this.scheduler, netif, this.ingress, this.eth, bugs, this.tenant.cpuPerTurnUs / 1000);
    netif.start(this.receiver);
    if (opts.ipv4) {
      const p = parseCidr(opts.ipv4.address, 4);
      const gw = opts.ipv4.gateway !== undefined ? parseIP(opts.ipv4.gateway) : undefined;
      if (opts.ipv4.gateway !== undefined && ipFamily(opts.ipv4.gateway) !== 4) throw new TypeError(`invalid IPv4 gateway "${opts.ipv4.gateway}"`);
      this.ipv4.configure({ address: p.address, prefixLength: p.length, gateway: gw });
    }
    if (opts.ipv6 && this.ipv6 && this.ndp) {
      const v6 = opts.ipv6;
      if (v6.gateway !== undefined) {
        if (ipFamily(v6.gateway) !== 6) throw new TypeError(`invalid IPv6 gateway "${v6.gateway}"`);
        this.ipv6.setGateway(parseIP(v6.gateway));
      }
      const ll = this.ndp.addAddress(linkLocalFromMac(this.mac), 64, "link-local");
      this.pendingDad.push(this.dadDone(ll));
      if (v6.address) {
        const p = parseCidr(v6.address, 6);
        this.pendingDad.push(this.dadDone(this.ndp.addAddress(p.address, p.length, "static")));
      }
      // Lifetimes of addresses, prefixes and routers are checked once a second.
      this.housekeeping = this.timers.timer(() => {
        this.ndp?.expire();
        this.timers.arm(this.housekeeping!, 1000);
      }, true);
      this.timers.arm(this.housekeeping, 1000);
    }
  }

  /** Settles when `a` passed or failed DAD; a failure is reported through ready(), never as unhandled. */
  private dadDone(a: Ipv6Address): Promise<void> {
    const p = new Promise<void>((resolve, reject) => {
      if (a.state === "preferred" || a.state === "deprecated") return resolve();
      const ok = (x: Ipv6Address) => {
        if (x !== a) return;
        this.ndp!.off("dad-ok", ok).off("dad-failed", bad);
        resolve();
      };
      const bad = (x: Ipv6Address) => {
        if (x !== a) return;
        this.ndp!.off("dad-ok", ok).off("dad-failed", bad);
        const e = new Error(`duplicate address detected: ${formatIP(a.address)} is already in use on the link (RFC 4862 DAD)`) as Error & { code: string };
        e.code = "EADDRINUSE";
        reject(e);
      };
      this.ndp!.on("dad-ok", ok).on("dad-failed", bad);
    });
    p.catch(() => {});
    return p;
  }

  /**
   * Resolves when the configured addresses are usable: at once for IPv4, after duplicate
   * address detection for IPv6 (about one RetransTimer, 1 s). Rejects with EADDRINUSE naming the
   * address if DAD found a duplicate.
   */
  async ready(): Promise<void> {
    await Promise.all(this.pendingDad);
  }

  /** Build a stack over `opts.netif` and start receiving. */
  static create(opts: StackOptions): Stack {
    return new Stack(opts.netif, opts);
  }

  /**
   * Hook for bugs inside the stack (an exception while processing a frame or firing a timer),
   * called once per kind of error; every occurrence is counted in `stats().stack.internal_errors`.
   * Default: print it.
   */
  onInternalError: (err: unknown, msg: string) => void = (err, msg) => {
    console.error(msg, err);
  };

  /** ICMP echo to an IPv4 or IPv6 address. */
  ping(host: string, opts?: PingOptions): Promise<PingResult> {
    if (this.closed) return Promise.reject(stackClosedError("ping"));
    const fam = ipFamily(host);
    if (fam === 4) return this.icmpv4.ping(parseIP(host), opts);
    if (fam === 6 && this.icmpv6) return this.icmpv6.ping(parseIP(host), opts);
    return Promise.reject(new TypeError(`cannot ping "${host}": not an IP address this stack can reach`));
  }

  /** Addresses configured on the stack, as text. */
  addresses(): string[] {
    const out: string[] = [];
    const a4 = this.ipv4.address;
    if (a4) out.push(formatIP(a4));
    for (const a of this.ipv6?.addresses ?? []) if (a.state !== "duplicate") out.push(formatIP(a.address) + (a.state === "tentative" ? " (tentative)" : ""));
    return out;
  }

  /** Counters of every layer, by layer name (like `netstat -s`). */
  stats(): StatsSnapshot {
    return {
      stack: this.counters.snapshot(),
      netif: { ...this.netif.stats() },
      ethernet: this.eth.counters.snapshot(),
      arp: this.arp.counters.snapshot(),
      ipv4: this.ipv4.counters.snapshot(),
      icmpv4: this.icmpv4.counters.snapshot(),
      udp: this.udp.counters.snapshot(),
      tcp: this.tcpStats(),
      tenant: this.tenantStats(),
      dns: { ...this.dns.counters.snapshot(), cache_entries: this.dns.cacheEntries },
      ...(this.ipv6 ? { ipv6: this.ipv6.counters.snapshot(), icmpv6: this.icmpv6!.counters.snapshot(), ndp: this.ndp!.counters.snapshot() } : {}),
    };
  }

  /** TCP counters plus gauges: connections, orphans closing, bytes held, remote addresses, memory pressure (%). */
  private tcpStats(): Record<string, number> {
    const l = this.tcp.layer;
    return {
      ...l.counters.snapshot(),
      connections: l.connectionCount,
      orphans: l.orphanCount,
      buffered_bytes: l.buffered,
      remote_hosts: l.memory.hostCount,
      memory_pressure_pct: Math.round(l.memory.stackFraction() * 100),
    };
  }

  /**
   * What an operator of many tenants watches: connections, bytes held, CPU time used (input
   * batches and timers, ms), turns held back for being over the CPU share, and every drop by a
   * limit (`drop_*`, summed in `drops_by_limit`): input rates and source shares, new
   * connections per second and per remote address, connections, TCP memory.
   */
  private tenantStats(): Record<string, number> {
    const l = this.tcp.layer;
    const g = this.ingress;
    const tcp = l.counters;
    const limitDrops: Record<string, number> = {
      drop_packet_rate: g.dropPacketRate,
      drop_byte_rate: g.dropByteRate,
      drop_source_share: g.dropSourceShare,
      drop_syn_rate: tcp.get("drop_syn_rate"),
      drop_syn_source_share: tcp.get("drop_syn_source_share"),
      drop_host_connections: tcp.get("drop_host_connections"),
      drop_max_connections: tcp.get("drop_max_connections"),
      drop_tcp_memory: tcp.get("drop_rcv_memory") + tcp.get("drop_ooo_memory"),
    };
    let drops = 0;
    for (const v of Object.values(limitDrops)) drops += v;
    return {
      connections: l.connectionCount,
      buffered_bytes: l.buffered,
      cpu_ms: Math.round((this.receiver.task.cpuMs + this.timers.cpuMs) * 1000) / 1000,
      deferred_turns: this.receiver.task.deferredTurns,
      drops_by_limit: drops,
      ...limitDrops,
    };
  }

  /**
   * Keep the process alive while this stack has something that should (the default, like a
   * socket): its netif (an open TAP), its timers of work in progress, its listening servers.
   */
  ref(): this {
    if (this.refed) return this;
    this.refed = true;
    this.timers.ref();
    this.netif.ref?.();
    this.keepAlive.setRef(true);
    return this;
  }

  /** Nothing of this stack keeps the process alive any more (it keeps working while it runs). */
  unref(): this {
    if (!this.refed) return this;
    this.refed = false;
    this.timers.unref();
    this.netif.unref?.();
    this.keepAlive.setRef(false);
    return this;
  }

  /**
   * Close the stack: every TCP connection ends at once with 'close' (destroyed with ECONNABORTED
   * if data was still to be sent or read and the flow has an 'error' listener; a flow without
   * one just closes, the owner closing its stack being no crash), the peer told with a RST;
   * connects in progress reject with ECONNABORTED; servers (emitting 'close') and UDP sockets
   * close; pings and DNS queries in flight fail with ERR_STACK_CLOSED, as do connect, listen,
   * UDP bind and send, ping and DNS afterwards. Then the netif is closed.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.dns.close("ERR_STACK_CLOSED");
    this.tcp.layer.close();
    this.udp.close();
    this.icmpv6?.close();
    this.ndp?.close();
    this.ipv6?.close();
    this.icmpv4.close();
    this.ipv4.close();
    this.arp.close();
    this.timers.close();
    this.receiver.task.close();
    this.keepAlive.setRef(false);
    await this.netif.close();
  }
}

function randomMac(r: Random): Uint8Array {
  const m = r.fill(new Uint8Array(6));
  m[0] = (m[0]! & 0xfc) | 0x02; // locally administered, unicast
  return m;
}
