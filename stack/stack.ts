/**
 * The StackV4V6 facade (after mirage-tcpip's Stack.Make(Eth)(Arp)(Ip)(Udp)(Tcp)): composes the
 * layers over one netif, by constructor injection, in this one place. Nothing here is
 * module-level state: every stack owns its caches, timers and counters, so many stacks live in
 * one process without seeing each other.
 */
import type { Netif } from "./netif/netif.js";
import type { Clock } from "./core/clock.js";
import type { Random } from "./core/random.js";
import type { TimerQueue } from "./core/timers.js";
import { KeepAlive, Scheduler, sharedScheduler } from "./core/scheduler.js";
import { Ingress, resolveTenantOptions, sourceBurst, type TenantOptions, type TenantOptionsResolved } from "./ingress.js";
import { StackReceiver } from "./receive.js";
import { Counters, type StatsSnapshot } from "./core/stats.js";
import { ERR_INVALID_ARG_TYPE, ERR_INVALID_ARG_VALUE, InternalErrors, errnoError, stackClosedError } from "./core/errors.js";
import { validateInteger } from "./core/validate.js";
import type { RouteOrigin } from "./routes.js";
import { EthernetLayer } from "./ethernet.js";
import { ArpLayer, type ArpOptions } from "./arp.js";
import { Ipv4Layer, type Ipv4Options } from "./ipv4.js";
import { Icmpv4, type Icmpv4Options } from "./icmpv4.js";
import { UdpLayer, type UdpOptions } from "./udp.js";
import { Ipv6Layer, type Ipv6Options, type Ipv6Address } from "./ipv6.js";
import { Ndp, type NdpOptions } from "./ndp.js";
import { Icmpv6, type Icmpv6Options } from "./icmpv6.js";
import { Igmp, type IgmpOptions } from "./igmp.js";
import { Mld, type MldOptions } from "./mld.js";
import { DhcpClient, type DhcpLease, type DhcpOptions } from "./dhcp.js";
import { IPPROTO_IGMP } from "./wire/igmp.js";
import type { Timer } from "./core/timers.js";
import { TcpApi, TcpLayer, type TcpOptions } from "./tcp/index.js";
import { DnsResolver, type DnsOptions } from "./dns.js";
import { StackNet } from "./net.js";
import { IPPROTO_TCP } from "./wire/tcp.js";
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from "./wire/ethernet.js";
import { IPPROTO_ICMP, IPPROTO_ICMPV6 } from "./wire/icmp.js";
import type { PingOptions, PingResult } from "./ping.js";
import { IPPROTO_UDP } from "./wire/udp.js";
import { bytesEqual, copyBytes, linkLocalFromMac, formatIP, formatMac, ipFamily, parseCidr, parseIP, parseMac, u32ToIPv4 } from "./wire/addr.js";

export interface StackLimits {
  arp?: ArpOptions;
  ipv4?: Ipv4Options;
  icmpv4?: Icmpv4Options;
  udp?: UdpOptions;
  ipv6?: Ipv6Options;
  ndp?: NdpOptions;
  icmpv6?: Icmpv6Options;
  igmp?: IgmpOptions;
  mld?: MldOptions;
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

export interface Ipv4Config {
  /** A static address with its prefix, e.g. "198.18.0.2/24" (the prefix becomes on-link). */
  address?: string;
  /** Default gateway (a static route to 0.0.0.0/0); it must be on-link. */
  gateway?: string;
  /**
   * Take the address, the default route and (unless `StackOptions.dns` names servers) the DNS
   * servers from a DHCP server (RFC 2131): `true`, or options (host name, timeouts ...). Not with
   * `address`. `stack.ready()` waits for the lease; `stack.dhcp` emits bound/renewed/expired.
   */
  dhcp?: boolean | DhcpOptions;
}

/** A route as `addRoute` / `removeRoute` take it. */
export interface RouteSpec {
  /** Destination prefix, "198.19.0.0/16" or "2001:db8:1::/48" (a bare address is a host route); "default" is /0. */
  to: string;
  /** Gateway (on-link); omitted: the destination is on-link. */
  via?: string;
  /** Lower wins among routes with the same prefix length. Default 0 (DHCP's routes use 100). */
  metric?: number;
  /** IPv4: the source address to use on this route (one of ours). */
  src?: string;
}

/** A route as `routes()` lists it. */
export interface RouteInfo {
  family: 4 | 6;
  /** Destination prefix, e.g. "198.18.0.0/24", "0.0.0.0/0". */
  to: string;
  /** Gateway; absent for on-link routes. */
  via?: string;
  metric: number;
  /** connected: an address's prefix (or an RA's on-link prefix); static: addRoute or options; dhcp; ra: a router from a router advertisement. */
  origin: RouteOrigin | "ra";
  src?: string;
}

export interface StackOptions {
  netif: Netif;
  /** Our MAC (text or bytes). Default: a random locally administered unicast address. */
  mac?: string | Uint8Array;
  /** IPv4 configuration (`{}`: IPv4 with no address yet); omit for an IPv6-only stack. */
  ipv4?: Ipv4Config;
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
  /** IGMPv2: reports the IPv4 groups sockets join (addMembership). */
  readonly igmp: Igmp;
  readonly udp: UdpLayer;
  readonly ipv6: Ipv6Layer | undefined;
  readonly ndp: Ndp | undefined;
  readonly icmpv6: Icmpv6 | undefined;
  /** MLDv2: reports the IPv6 groups the stack listens to. */
  readonly mld: Mld | undefined;
  /** TCP: `stack.tcp.listen(...)`, `stack.tcp.connect(...)`; the layer itself is `stack.tcp.layer`. */
  readonly tcp: TcpApi;
  /** DNS stub resolver (`stack.dns.lookup(name)`); without `StackOptions.dns` (or servers from DHCP) lookups of names fail with ENOSERVERS. */
  get dns(): DnsResolver {
    if (!this.dnsObj) {
      this.dnsObj = new DnsResolver(this);
      if (this.closed) this.dnsObj.close("ERR_STACK_CLOSED");
    }
    return this.dnsObj;
  }
  /** node:net's shape over this stack: `stack.net.createServer(...)`, `stack.net.connect(...)`. */
  get net(): StackNet {
    return (this.netObj ??= new StackNet(this));
  }
  // Made at first use unless options ask for them (StackOptions.dns): an idle tenant of
  // thousands holds neither (~0.5 KB together).
  private dnsObj: DnsResolver | undefined;
  private netObj: StackNet | undefined;
  /** The DHCP client, with `ipv4: { dhcp }`: its events say when a lease is bound, renewed, lost. */
  readonly dhcp: DhcpClient | undefined;
  /** The DNS servers come from DHCP (none were given in StackOptions.dns). */
  private readonly dnsFromDhcp: boolean;
  private closed = false;
  /** StackOptions.ipv4 was given: IPv4 runs (UDP/TCP over it), with or without addresses yet. */
  private readonly ipv4On: boolean;
  private readonly pendingDad: Promise<void>[] = [];
  private housekeeping: Timer | undefined;
  /** Limits of this stack as a tenant of its process (`limits.tenant`). */
  readonly tenant: TenantOptionsResolved;
  /** `limits.tenant.sourcePacketsPerSec` is enforced by the netif (the kernel), not the ingress. */
  private readonly sourceLimitInNetif: boolean;
  /** Admission of received frames by the tenant's rates (its drops are counted there). */
  private readonly ingress: Ingress;
  /** Between the netif and Ethernet: admission, batches, this stack's share of the scheduler. */
  private readonly receiver: StackReceiver;
  /** What keeps the process alive (listening servers) while the stack is ref'd. */
  private readonly keepAlive: KeepAlive;
  private refed = true;

  private constructor(
    readonly netif: Netif,
    opts: StackOptions,
  ) {
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
    this.ipv4On = opts.ipv4 !== undefined;
    this.eth = new EthernetLayer(netif, this.mac);
    this.arp = new ArpLayer(this.eth, this.timers, this.random, (frames) => this.icmpv4.linkFailure(frames), limits.arp);
    this.ipv4 = new Ipv4Layer(this.eth, this.arp, this.timers, this.random, this.mtu, limits.ipv4);
    this.icmpv4 = new Icmpv4(this.ipv4, this.timers, this.random, limits.icmpv4);
    this.eth.register(ETHERTYPE_ARP, (_frame, payload) => this.arp.input(payload));
    this.eth.register(ETHERTYPE_IPV4, (frame, payload, meta) => this.ipv4.input(frame, payload, meta));
    this.ipv4.register(IPPROTO_ICMP, this.icmpv4);
    this.ipv4.useIcmp(this.icmpv4);
    this.igmp = new Igmp(this.ipv4, this.timers, this.random, limits.igmp);
    this.ipv4.register(IPPROTO_IGMP, this.igmp);
    this.ipv4.useGroupListener(this.igmp);
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
      this.mld = new Mld(ip6, this.timers, this.random, limits.mld);
      this.icmpv6.useMld(this.mld);
      ip6.useGroupListener(this.mld);
    }
    // Transmit buffers from the netif where it reuses them (a TAP: see FramePool).
    const alloc = netif.allocFrame ? (len: number) => netif.allocFrame!(len) : undefined;
    this.udp = new UdpLayer(this.ipv4On ? this.ipv4 : undefined, this.ipv6, this.random, limits.udp, alloc, netif.features.checksumOffload);
    this.ipv4.register(IPPROTO_UDP, this.udp);
    this.ipv6?.register(IPPROTO_UDP, this.udp);
    const tcpLayer = new TcpLayer(this.ipv4On ? this.ipv4 : undefined, this.ipv6, this.timers, this.random, limits.tcp, netif.features.tso ?? 0, alloc, netif);
    this.keepAlive = new KeepAlive(this.scheduler);
    this.tcp = new TcpApi(tcpLayer, this.keepAlive);
    if (opts.dns) this.dnsObj = new DnsResolver(this, opts.dns); // its options are checked now
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
    this.sourceLimitInNetif = this.limitSourcesInNetif(netif);
    this.ingress = new Ingress(this.tenant, this.timers.now(), !this.sourceLimitInNetif);
    const t = this.tenant;
    const cap = t.cpuPercent < 100 ? { percent: t.cpuPercent, burstMs: t.burstMs } : undefined;
    this.receiver = new StackReceiver(this.scheduler, netif, this.ingress, this.eth, bugs, t.cpuPerTurnUs / 1000, cap);
    netif.start(this.receiver);
    if (opts.ipv4?.address !== undefined) {
      if (opts.ipv4.dhcp) throw new ERR_INVALID_ARG_VALUE("ipv4.dhcp", opts.ipv4.dhcp, "excludes ipv4.address (the address comes from the DHCP server)");
      const p = parseCidr(opts.ipv4.address, 4);
      this.ipv4.addAddress(p.address, p.length);
    }
    this.dnsFromDhcp = !opts.dns?.servers?.length;
    const dhcp = opts.ipv4?.dhcp;
    if (dhcp) {
      this.dhcp = new DhcpClient(
        {
          udp: this.udp,
          timers: this.timers,
          random: this.random,
          mac: this.mac,
          probe: (ip, timing, done) => this.arp.probe(ip, timing, done),
          apply: (lease, old) => this.applyLease(lease, old),
        },
        dhcp === true ? {} : dhcp,
      );
    }
    if (opts.ipv4?.gateway !== undefined) this.addRoute({ to: "0.0.0.0/0", via: opts.ipv4.gateway });
    if (opts.ipv6 && this.ipv6 && this.ndp) {
      const v6 = opts.ipv6;
      if (v6.gateway !== undefined) {
        if (ipFamily(v6.gateway) !== 6) throw new TypeError(`invalid IPv6 gateway "${v6.gateway}"`);
        this.ipv6.addRoute(new Uint8Array(16), 0, parseIP(v6.gateway), 0, "static");
      }
      const ll = this.ndp.addAddress(linkLocalFromMac(this.mac), 64, "link-local");
      this.pendingDad.push(this.dadDone(ll));
      if (v6.address) {
        const p = parseCidr(v6.address, 6);
        this.pendingDad.push(this.dadDone(this.ndp.addAddress(p.address, p.length, "static")));
      }
      // An address whose valid lifetime ran out takes its connections along, as a removed one does.
      this.ndp.on("address-removed", (a: Ipv6Address) => this.addressGone(a.address));
      // Lifetimes of addresses, prefixes and routers are checked once a second.
      this.housekeeping = this.timers.timer(() => {
        this.ndp?.expire();
        this.timers.arm(this.housekeeping!, 1000);
      }, true);
      this.timers.arm(this.housekeeping, 1000);
    }
    this.dhcp?.start();
  }

  /** Configure a DHCP lease, replacing the previous one (its address, routes and DNS servers). */
  private applyLease(lease: DhcpLease | undefined, old: DhcpLease | undefined): void {
    this.ipv4.removeRoutes("dhcp");
    if (old && (!lease || lease.address !== old.address || lease.prefixLength !== old.prefixLength)) {
      const a = parseIP(old.address);
      if (this.ipv4.isLocal(a)) this.ipv4.removeAddress(a);
      this.addressGone(a);
      if (this.dnsFromDhcp) this.dns.setServers([]);
    }
    if (!lease) return;
    const a = parseIP(lease.address);
    if (!this.ipv4.isLocal(a)) this.ipv4.addAddress(a, lease.prefixLength);
    if (lease.router) {
      try {
        this.ipv4.addRoute(new Uint8Array(4), 0, parseIP(lease.router), DHCP_ROUTE_METRIC, "dhcp");
      } catch {
        this.dhcp?.counters.inc("router_unusable"); // off-link, or the same route exists
      }
    }
    if (this.dnsFromDhcp) this.dns.setServers(lease.dns);
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
   * Resolves when the configured addresses are usable: at once for static IPv4, once a lease is
   * bound with DHCP (ETIMEDOUT after `dhcp.timeoutMs`, 30 s), after duplicate address detection
   * for IPv6 (about one RetransTimer, 1 s). Rejects with EADDRINUSE naming the address if DAD
   * found a duplicate.
   */
  async ready(): Promise<void> {
    await Promise.all([...this.pendingDad, ...(this.dhcp ? [this.dhcp.whenBound()] : [])]);
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
  onInternalError(err: unknown, msg: string): void {
    console.error(msg, err);
  }

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
    for (const a of this.ipv4.addresses) out.push(formatIP(a.address));
    for (const a of this.ipv6?.addresses ?? []) if (a.state !== "duplicate") out.push(formatIP(a.address) + (a.state === "tentative" ? " (tentative)" : ""));
    return out;
  }

  /**
   * Add an address at run time: "198.18.0.3/24" (a secondary IPv4 address: its subnet becomes
   * on-link, ARP answers for it) or "2001:db8::3/64" (resolves after duplicate address detection,
   * rejecting with EADDRINUSE on a duplicate). EEXIST if the stack holds it already.
   */
  async addAddress(cidr: string): Promise<void> {
    const p = parseCidr(cidr);
    if (p.address.length === 4) {
      if (!this.ipv4On) throw errnoError("EAFNOSUPPORT", "addAddress", `${cidr}: this stack has no IPv4`);
      this.ipv4.addAddress(p.address, p.length);
      return;
    }
    if (!this.ndp || !this.ipv6) throw errnoError("EAFNOSUPPORT", "addAddress", `${cidr}: this stack has no IPv6`);
    if (this.ipv6.findAddress(p.address)) throw errnoError("EEXIST", "addAddress", cidr);
    await this.dadDone(this.ndp.addAddress(p.address, p.length, "static"));
  }

  /**
   * Remove an address ("198.18.0.3", a prefix length is ignored). Routes through it go too, and
   * TCP connections using it fail with ECONNABORTED. EADDRNOTAVAIL if the stack does not hold it.
   */
  removeAddress(address: string): void {
    const a = parseCidr(address).address;
    if (a.length === 4) this.ipv4.removeAddress(a);
    else {
      const x = this.ipv6?.findAddress(a);
      if (!x || !this.ndp) throw errnoError("EADDRNOTAVAIL", "removeAddress", address);
      this.ndp.removeAddress(x);
    }
    this.addressGone(a);
  }

  /** TCP connections from an address the stack no longer holds cannot go on (Linux's SOCK_DESTROY). */
  private addressGone(a: Uint8Array): void {
    for (const t of this.tcp.layer.connections()) {
      if (bytesEqual(t.localAddress, a)) t.teardown(errnoError("ECONNABORTED", "read", `(local address ${formatIP(a)} was removed)`));
    }
  }

  /**
   * Add a route: `{ to: "198.19.0.0/16", via: "198.18.0.1" }`, `{ to: "default", via: ... }`,
   * `{ to: "198.20.0.0/16" }` (on-link). The longest matching prefix wins, then the lowest metric.
   * Errors: EEXIST (the same route exists), ENETUNREACH (an IPv4 gateway off every connected subnet).
   */
  addRoute(r: RouteSpec): void {
    const { family, dst, length, via, metric } = this.parseRoute(r, "addRoute");
    if (family === 4) return this.ipv4.addRoute(dst, length, via, metric, "static", r.src !== undefined ? parseIP(r.src) : undefined);
    this.ipv6!.addRoute(dst, length, via, metric, "static");
  }

  /** Remove a route added by addRoute (`via` and `metric` narrow the match). ESRCH if none matched. */
  removeRoute(r: RouteSpec): void {
    const { family, dst, length, via } = this.parseRoute(r, "removeRoute");
    if (family === 4) return this.ipv4.removeRoute(dst, length, via, r.metric);
    this.ipv6!.removeRoute(dst, length, via, r.metric);
  }

  private parseRoute(r: RouteSpec, syscall: string): { family: 4 | 6; dst: Uint8Array; length: number; via: Uint8Array | undefined; metric: number } {
    if (typeof r?.to !== "string") throw new ERR_INVALID_ARG_TYPE("route.to", "of type string", r?.to);
    const viaFam = r.via === undefined ? 0 : ipFamily(r.via);
    if (r.via !== undefined && viaFam === 0) throw new ERR_INVALID_ARG_VALUE("route.via", r.via, "is not an IP address");
    const metric = r.metric === undefined ? 0 : validateInteger(r.metric, "route.metric", 0, 0xffffffff);
    let p: { address: Uint8Array; length: number };
    if (r.to === "default") {
      if (viaFam === 0) throw new ERR_INVALID_ARG_VALUE("route.via", r.via, "is needed for a default route");
      p = { address: new Uint8Array(viaFam === 4 ? 4 : 16), length: 0 };
    } else p = parseCidr(r.to);
    const family = p.address.length === 4 ? 4 : 6;
    if (viaFam !== 0 && viaFam !== family) throw new ERR_INVALID_ARG_VALUE("route.via", r.via, `is not an IPv${family} address like the destination`);
    if (family === 4 ? !this.ipv4On : !this.ipv6) throw errnoError("EAFNOSUPPORT", syscall, `${r.to}: this stack has no IPv${family}`);
    return { family, dst: p.address, length: p.length, via: r.via !== undefined ? parseIP(r.via) : undefined, metric };
  }

  /** The routing tables, IPv4 then IPv6, longest prefix first (IPv6: on-link prefixes, static routes, routers from RAs). */
  routes(): RouteInfo[] {
    const out: RouteInfo[] = [];
    for (const r of this.ipv4.routes) {
      out.push({
        family: 4,
        to: `${formatIP(u32ToIPv4(r.dst))}/${r.prefixLength}`,
        ...(r.gateway ? { via: formatIP(u32ToIPv4(r.gateway)) } : {}),
        metric: r.metric,
        origin: r.origin,
        ...(r.src ? { src: formatIP(u32ToIPv4(r.src)) } : {}),
      });
    }
    if (this.ipv6 && this.ndp) {
      const v6: RouteInfo[] = this.ipv6.onLinkPrefixes().map((p) => ({ family: 6, to: `${formatIP(p.prefix)}/${p.length}`, metric: 0, origin: "connected" }));
      for (const r of this.ipv6.routes) v6.push({ family: 6, to: `${formatIP(r.dst)}/${r.prefixLength}`, ...(r.gateway ? { via: formatIP(r.gateway) } : {}), metric: r.metric, origin: r.origin });
      for (const ip of this.ndp.routerList()) v6.push({ family: 6, to: "::/0", via: formatIP(ip), metric: 1024, origin: "ra" });
      out.push(...v6.sort((a, b) => Number(b.to.split("/")[1]) - Number(a.to.split("/")[1])));
    }
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
      dns: { ...this.dnsObj?.counters.snapshot(), cache_entries: this.dnsObj?.cacheEntries ?? 0 },
      ...(this.dhcp ? { dhcp: this.dhcp.counters.snapshot() } : {}),
      igmp: this.igmp.counters.snapshot(),
      ...(this.ipv6 ? { ipv6: this.ipv6.counters.snapshot(), icmpv6: this.icmpv6!.counters.snapshot(), ndp: this.ndp!.counters.snapshot(), mld: this.mld!.counters.snapshot() } : {}),
    };
  }

  /** TCP counters plus gauges: connections, orphans closing, in TIME-WAIT, bytes held, remote addresses, memory pressure (%). */
  private tcpStats(): Record<string, number> {
    const l = this.tcp.layer;
    return {
      ...l.counters.snapshot(),
      connections: l.connectionCount,
      orphans: l.orphanCount,
      time_wait_connections: l.timeWaitCount,
      buffered_bytes: l.buffered,
      remote_hosts: l.memory.hostCount,
      memory_pressure_pct: Math.round(l.memory.stackFraction() * 100),
    };
  }

  /**
   * `limits.tenant.sourcePacketsPerSec` handed to the netif when it can enforce it before the
   * stack (a TAP: in the kernel); false when there is no such limit or the netif cannot (then the
   * ingress enforces it, and a warning says why once per process).
   */
  private limitSourcesInNetif(netif: Netif): boolean {
    const t = this.tenant;
    if (t.sourcePacketsPerSec === 0 || !netif.limitSources) return false;
    try {
      netif.limitSources(t.sourcePacketsPerSec, sourceBurst(t), t.maxSources);
      return true;
    } catch (e) {
      if (!sourceLimitWarned) {
        sourceLimitWarned = true;
        process.emitWarning(`limits.tenant.sourcePacketsPerSec is enforced by the stack, not by ${netif.name}: ${(e as Error).message}`, { code: "PAF_SOURCE_LIMIT" });
      }
      return false;
    }
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
      drop_source_rate: g.dropSourceRate + (this.sourceLimitInNetif ? (this.netif.sourceLimitDrops?.() ?? 0) : 0),
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
      cpu_throttled: this.receiver.task.throttles,
      cpu_throttled_ms: Math.round(this.receiver.task.throttledMs * 1000) / 1000,
      source_limit_in_kernel: this.sourceLimitInNetif ? 1 : 0,
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
    this.dhcp?.close();
    this.dnsObj?.close("ERR_STACK_CLOSED");
    this.tcp.layer.close();
    this.udp.close();
    this.mld?.close();
    this.icmpv6?.close();
    this.ndp?.close();
    this.ipv6?.close();
    this.igmp.close();
    this.icmpv4.close();
    this.ipv4.close();
    this.arp.close();
    this.timers.close();
    this.receiver.task.close();
    this.keepAlive.setRef(false);
    await this.netif.close();
  }
}

/** The fallback of limitSourcesInNetif is said once per process, not once per tenant. */
let sourceLimitWarned = false;

/** DHCP's default route yields to a static one of the same prefix (as NetworkManager's 100 does). */
const DHCP_ROUTE_METRIC = 100;

function randomMac(r: Random): Uint8Array {
  const m = r.fill(new Uint8Array(6));
  m[0] = (m[0]! & 0xfc) | 0x02; // locally administered, unicast
  return m;
}
