/**
 * A DHCPv4 client (RFC 2131, options of RFC 2132), driven by the stack's timers and randomness
 * over an ordinary UDP socket on port 68 (broadcasts from 0.0.0.0 before an address exists;
 * see Ipv4Layer.route). The state machine of §4.4 (Figure 5):
 *
 *   INIT -DISCOVER-> SELECTING -OFFER/REQUEST-> REQUESTING -ACK-> (ARP probe) -> BOUND
 *   INIT-REBOOT (a remembered address) -REQUEST-> REBOOTING -ACK-> (ARP probe) -> BOUND
 *   BOUND -T1-> RENEWING (REQUEST unicast to the server) -T2-> REBINDING (REQUEST broadcast)
 *   -> lease expiry: the address goes, back to INIT. A NAK anywhere: back to INIT.
 *
 * - Retransmissions (§4.1): 4 s, doubled up to 64 s, each randomized by -1..+1 s; in RENEWING
 *   and REBINDING half the time left until T2 / expiry, at least `minRenewRetransmitMs` (§4.4.5).
 * - Before using an offered address the client probes it with ARP (§4.4.1, RFC 5227 §2.1): a
 *   conflict is answered with DHCPDECLINE and a new try after `declineWaitMs` (§3.1.5: >= 10 s).
 * - Lease times count from when the REQUEST that was answered left (§4.4.1). T1 and T2 default
 *   to 0.5 and 0.875 of the lease (§4.4.5) and are ignored when not T1 <= T2 <= lease.
 * - Until an address is bound, the BROADCAST flag asks servers to answer by broadcast (§4.1):
 *   the IP layer accepts unicast only to addresses it holds.
 * The client does not configure anything itself: it hands each lease (or its end) to the stack.
 */
import { EventEmitter } from "node:events";
import type { Timer, TimerQueue } from "./core/timers.js";
import type { Random } from "./core/random.js";
import type { UdpLayer, UdpSocket } from "./udp.js";
import type { ArpProbeTiming } from "./arp.js";
import { Counters } from "./core/stats.js";
import { ERR_INVALID_ARG_TYPE, ERR_INVALID_ARG_VALUE, errnoError } from "./core/errors.js";
import { resolveOptions } from "./core/validate.js";
import {
  BOOTREPLY,
  BOOTREQUEST,
  DHCPACK,
  DHCPDECLINE,
  DHCPDISCOVER,
  DHCPNAK,
  DHCPOFFER,
  DHCPREQUEST,
  DHCP_CLIENT_PORT,
  DHCP_FLAG_BROADCAST,
  DHCP_SERVER_PORT,
  OPT,
  emitDhcp,
  optAddresses,
  optU32,
  parseDhcp,
  type DhcpMessage,
} from "./wire/dhcp.js";
import { bytesEqual, formatIPv4, ipFamily, ipv4ToU32, parseIPv4 } from "./wire/addr.js";
import { ipv4Mask } from "./routes.js";

/** `StackOptions.ipv4.dhcp`: everything is optional. */
export interface DhcpOptions {
  /** Our host name (option 12), for the server's records and DNS. */
  hostname?: string;
  /** Client identifier (option 61): a string is sent as type 0 + its bytes; bytes as given. Default: none (the server keys on our MAC). */
  clientId?: string | Uint8Array;
  /** An address held before: ask for it again first (INIT-REBOOT, §3.2). */
  requestAddress?: string;
  /** How long `stack.ready()` waits for a lease before failing with ETIMEDOUT (the client keeps trying). Default 30000 ms. */
  timeoutMs?: number;
  /** First retransmission wait (§4.1: 4 s), doubled each time. */
  retransmitInitialMs?: number;
  /** Longest retransmission wait (§4.1: 64 s). */
  retransmitMaxMs?: number;
  /** REQUESTs sent in REQUESTING / REBOOTING before starting over with a DISCOVER. Default 5. */
  requestAttempts?: number;
  /** Shortest wait between REQUESTs while renewing or rebinding (§4.4.5: 60 s). */
  minRenewRetransmitMs?: number;
  /** Wait after a DECLINE before trying again (§3.1.5: at least 10 s). */
  declineWaitMs?: number;
  /** ARP probes of an offered address before it is used (RFC 5227 PROBE_NUM, 3); 0: no check. */
  probes?: number;
  /** Random wait before the first probe, up to (PROBE_WAIT, 1000 ms). */
  probeWaitMs?: number;
  /** Spacing between probes, random in [min, max] (PROBE_MIN 1000 ms, PROBE_MAX 2000 ms). */
  probeMinMs?: number;
  probeMaxMs?: number;
  /** Silence after the last probe before the address is taken (ANNOUNCE_WAIT, 2000 ms). */
  announceWaitMs?: number;
}

type NumericOptions = Omit<DhcpOptions, "hostname" | "clientId" | "requestAddress">;

const HOUR = 3_600_000;
const DHCP_OPTIONS = {
  timeoutMs: [30_000, 0, 24 * HOUR],
  retransmitInitialMs: [4000, 100, HOUR],
  retransmitMaxMs: [64_000, 100, HOUR],
  requestAttempts: [5, 1, 100],
  minRenewRetransmitMs: [60_000, 100, HOUR],
  declineWaitMs: [10_000, 0, HOUR],
  probes: [3, 0, 10],
  probeWaitMs: [1000, 0, 60_000],
  probeMinMs: [1000, 0, 60_000],
  probeMaxMs: [2000, 0, 60_000],
  announceWaitMs: [2000, 0, 60_000],
} as const;

/** A lease as the stack applies it and the events report it. */
export interface DhcpLease {
  address: string;
  prefixLength: number;
  /** The first router (option 3), the default gateway. */
  router: string | undefined;
  /** DNS servers (option 6). */
  dns: string[];
  /** Domain name (option 15). */
  domain: string | undefined;
  /** The server that granted it (option 54). */
  server: string;
  /** Lease, T1 and T2 in seconds (Infinity: an infinite lease). */
  leaseSec: number;
  renewSec: number;
  rebindSec: number;
  /** Clock times (ms) the lease started (the REQUEST left) and runs out. */
  obtainedAt: number;
  expiresAt: number;
}

export type DhcpState = "INIT" | "SELECTING" | "REQUESTING" | "PROBING" | "BOUND" | "RENEWING" | "REBINDING" | "INIT-REBOOT" | "REBOOTING" | "STOPPED";

export interface DhcpEvents {
  /** A new lease is configured (first one, or after INIT). */
  bound: [lease: DhcpLease];
  /** The lease was extended (RENEWING or REBINDING got an ACK). */
  renewed: [lease: DhcpLease];
  /** The lease ran out: its address is gone. */
  expired: [lease: DhcpLease];
  /** A server refused (DHCPNAK, with its message if any): back to INIT; the lease held, if any, is gone. */
  nak: [message: string, lease: DhcpLease | undefined];
  /** The offered address answered ARP (RFC 5227): declined. */
  declined: [address: string];
}

/** What the client needs of the stack. */
export interface DhcpHost {
  udp: UdpLayer;
  timers: TimerQueue;
  random: Random;
  mac: Uint8Array;
  /** RFC 5227 probe of an address (arp.ts); returns a cancel. */
  probe(ip: Uint8Array, timing: ArpProbeTiming, done: (conflict: boolean) => void): () => void;
  /** Configure `lease` (undefined: none), replacing `previous`. */
  apply(lease: DhcpLease | undefined, previous: DhcpLease | undefined): void;
}

/** The server's answer we wait for, and from whom. */
interface Offer {
  address: Uint8Array;
  server: Uint8Array;
}

export class DhcpClient extends EventEmitter<DhcpEvents> {
  readonly counters = new Counters("dhcp");
  private readonly o: Required<NumericOptions>;
  private readonly hostname: Uint8Array | undefined;
  private readonly clientId: Uint8Array | undefined;
  private readonly requestAddress: Uint8Array | undefined;
  private st: DhcpState = "INIT";
  private sock: UdpSocket | undefined;
  private xid = 0;
  /** When this acquisition began (the `secs` field), and when the last REQUEST left. */
  private startedAt = 0;
  private lastSent = 0;
  private tries = 0;
  private offer: Offer | undefined;
  private current: DhcpLease | undefined;
  private cancelProbe: (() => void) | undefined;
  private readonly retx: Timer;
  private readonly t1: Timer;
  private readonly t2: Timer;
  private readonly expiry: Timer;
  /** The pause after a DECLINE. */
  private readonly restart: Timer;

  constructor(
    private readonly host: DhcpHost,
    opts: DhcpOptions = {},
  ) {
    super();
    const { hostname, clientId, requestAddress, ...numeric } = opts;
    this.o = resolveOptions<NumericOptions>("ipv4.dhcp", numeric, DHCP_OPTIONS);
    if (hostname !== undefined) {
      if (typeof hostname !== "string") throw new ERR_INVALID_ARG_TYPE("ipv4.dhcp.hostname", "of type string", hostname);
      if (!/^[A-Za-z0-9][A-Za-z0-9.-]{0,254}$/.test(hostname)) throw new ERR_INVALID_ARG_VALUE("ipv4.dhcp.hostname", hostname, "is not a host name (letters, digits, '-' and '.')");
      this.hostname = Buffer.from(hostname);
    }
    if (clientId !== undefined) {
      const id = typeof clientId === "string" ? Buffer.concat([Buffer.from([0]), Buffer.from(clientId)]) : clientId;
      if (!(id instanceof Uint8Array) || id.length < 2 || id.length > 255) throw new ERR_INVALID_ARG_VALUE("ipv4.dhcp.clientId", clientId, "must be a non-empty string or 2-255 bytes");
      this.clientId = Uint8Array.from(id);
    }
    if (requestAddress !== undefined) {
      if (typeof requestAddress !== "string" || ipFamily(requestAddress) !== 4) throw new ERR_INVALID_ARG_VALUE("ipv4.dhcp.requestAddress", requestAddress, "is not an IPv4 address");
      this.requestAddress = parseIPv4(requestAddress);
    }
    const t = host.timers;
    this.retx = t.timer(() => this.retransmit());
    this.t1 = t.timer(() => this.renew());
    this.t2 = t.timer(() => this.rebind());
    this.expiry = t.timer(() => this.expire());
    this.restart = t.timer(() => this.init());
  }

  get state(): DhcpState {
    return this.st;
  }

  /** The lease in use, if any. */
  get lease(): DhcpLease | undefined {
    return this.current;
  }

  /** Open the socket and start: DISCOVER, or REQUEST the remembered address. */
  start(): void {
    const s = this.host.udp.createSocket({ type: "udp4", reuseAddr: true });
    s.bind(DHCP_CLIENT_PORT);
    s.setBroadcast(true);
    s.on("message", (msg) => this.input(msg));
    s.on("error", () => this.counters.inc("send_errors"));
    this.sock = s;
    if (this.requestAddress) this.initReboot(this.requestAddress);
    else this.init();
  }

  /**
   * Resolves once a lease is bound (at once if one is); rejects with ETIMEDOUT after
   * `timeoutMs` without one. The client goes on trying either way.
   */
  whenBound(): Promise<DhcpLease> {
    if (this.current) return Promise.resolve(this.current);
    return new Promise((resolve, reject) => {
      const timer = this.host.timers.timer(() => {
        this.off("bound", ok);
        reject(errnoError("ETIMEDOUT", "dhcp", `(no DHCP lease within ${this.o.timeoutMs} ms; state ${this.st})`));
      });
      const ok = (l: DhcpLease) => {
        this.host.timers.cancel(timer);
        resolve(l);
      };
      this.once("bound", ok);
      this.host.timers.arm(timer, this.o.timeoutMs);
    });
  }

  /** Stop: timers cancelled, socket closed. The address stays configured (no DHCPRELEASE). */
  close(): void {
    this.st = "STOPPED";
    this.cancelProbe?.();
    this.cancelTimers();
    this.sock?.close();
    this.sock = undefined;
  }

  // ---- states ---------------------------------------------------------------------------------

  private init(): void {
    this.cancelTimers();
    this.st = "SELECTING";
    this.offer = undefined;
    this.newTransaction();
    this.send(DHCPDISCOVER);
  }

  private initReboot(address: Uint8Array): void {
    this.st = "REBOOTING";
    this.offer = { address, server: new Uint8Array(4) };
    this.newTransaction();
    this.send(DHCPREQUEST);
  }

  private newTransaction(): void {
    this.xid = this.host.random.u32();
    this.startedAt = this.host.timers.now();
    this.tries = 0;
  }

  /** T1: ask our server to extend the lease, unicast (§4.4.5). */
  private renew(): void {
    if (!this.current) return;
    this.st = "RENEWING";
    this.newTransaction();
    this.send(DHCPREQUEST);
  }

  /** T2: our server is silent; ask any server, by broadcast. */
  private rebind(): void {
    if (!this.current) return;
    this.st = "REBINDING";
    this.newTransaction();
    this.send(DHCPREQUEST);
  }

  /** The lease ran out: the address goes, and we start over. */
  private expire(): void {
    const old = this.current;
    if (!old) return;
    this.current = undefined;
    this.counters.inc("leases_expired");
    this.host.apply(undefined, old);
    this.emit("expired", old);
    this.init();
  }

  private retransmit(): void {
    switch (this.st) {
      case "SELECTING":
        return this.send(DHCPDISCOVER);
      case "REQUESTING":
      case "REBOOTING":
        // No answer to our REQUESTs: start over (§3.1.5 and §3.2 leave the count to us).
        if (this.tries >= this.o.requestAttempts) return this.init();
        return this.send(DHCPREQUEST);
      case "RENEWING":
      case "REBINDING":
        return this.send(DHCPREQUEST);
      default:
        return;
    }
  }

  // ---- output -------------------------------------------------------------------------------

  private send(type: number): void {
    const s = this.sock;
    if (!s) return;
    const renewing = this.st === "RENEWING" || this.st === "REBINDING";
    const opts: Array<[number, Uint8Array]> = [[OPT.MESSAGE_TYPE, Uint8Array.of(type)]];
    if (this.clientId) opts.push([OPT.CLIENT_ID, this.clientId]);
    if (type === DHCPREQUEST && !renewing && this.offer) {
      // SELECTING/REQUESTING name the server chosen; INIT-REBOOT names none (§4.3.2).
      opts.push([OPT.REQUESTED_IP, this.offer.address]);
      if (this.st === "REQUESTING") opts.push([OPT.SERVER_ID, this.offer.server]);
    }
    if (type === DHCPDECLINE && this.offer) opts.push([OPT.REQUESTED_IP, this.offer.address], [OPT.SERVER_ID, this.offer.server]);
    if (type !== DHCPDECLINE) {
      if (this.hostname) opts.push([OPT.HOSTNAME, this.hostname]);
      opts.push([OPT.PARAMETER_LIST, Uint8Array.of(OPT.SUBNET_MASK, OPT.ROUTER, OPT.DNS, OPT.DOMAIN_NAME, OPT.LEASE_TIME, OPT.SERVER_ID, OPT.RENEWAL_TIME, OPT.REBINDING_TIME)]);
    }
    const now = this.host.timers.now();
    const msg = emitDhcp({
      op: BOOTREQUEST,
      xid: this.xid,
      secs: Math.min(0xffff, Math.floor((now - this.startedAt) / 1000)),
      flags: renewing || type === DHCPDECLINE ? 0 : DHCP_FLAG_BROADCAST,
      ...(renewing && this.current ? { ciaddr: parseIPv4(this.current.address) } : {}),
      chaddr: this.host.mac,
      options: opts,
    });
    const dst = this.st === "RENEWING" && this.current ? this.current.server : "255.255.255.255";
    this.lastSent = now;
    this.counters.inc(`${TYPE_NAMES[type]}_sent`);
    s.send(msg, DHCP_SERVER_PORT, dst);
    if (type === DHCPDECLINE) return;
    this.tries++;
    this.host.timers.arm(this.retx, this.nextWait());
  }

  /** §4.1 backoff (INIT, REQUESTING, REBOOTING) or §4.4.5 halving (RENEWING, REBINDING). */
  private nextWait(): number {
    const now = this.host.timers.now();
    if ((this.st === "RENEWING" || this.st === "REBINDING") && this.current) {
      const until = this.st === "RENEWING" ? this.t2.deadline : this.current.expiresAt;
      return Math.max(this.o.minRenewRetransmitMs, (until - now) / 2);
    }
    const base = Math.min(this.o.retransmitMaxMs, this.o.retransmitInitialMs * 2 ** Math.min(this.tries - 1, 30));
    return Math.max(0, base - 1000 + (this.host.random.u32() % 2001));
  }

  // ---- input --------------------------------------------------------------------------------

  private input(data: Uint8Array): void {
    const c = this.counters;
    const m = parseDhcp(data);
    if (typeof m === "string") return c.drop(m);
    if (m.op !== BOOTREPLY || m.xid !== this.xid || !bytesEqual(this.host.mac, m.chaddr)) return c.drop("not_ours");
    const type = m.options.get(OPT.MESSAGE_TYPE)?.[0];
    const server = m.options.get(OPT.SERVER_ID);
    if (type === undefined) return c.drop("no_message_type");
    c.inc(`${TYPE_NAMES[type] ?? "other"}_received`);
    if (type === DHCPOFFER && this.st === "SELECTING") return this.onOffer(m, server);
    if (type !== DHCPACK && type !== DHCPNAK) return c.drop("unexpected");
    // In REQUESTING and RENEWING only the chosen server may answer (§4.4.1, §4.4.5).
    const expected = this.st === "REQUESTING" ? this.offer?.server : this.st === "RENEWING" ? this.current && parseIPv4(this.current.server) : undefined;
    if (expected && !(server?.length === 4 && bytesEqual(expected, server))) return c.drop("other_server");
    if (type === DHCPNAK) {
      if (this.st === "REQUESTING" || this.st === "REBOOTING" || this.st === "RENEWING" || this.st === "REBINDING") return this.onNak(m);
      return c.drop("unexpected");
    }
    if (this.st === "REQUESTING" || this.st === "REBOOTING") return this.onAck(m, server);
    if (this.st === "RENEWING" || this.st === "REBINDING") return this.onRenewed(m, server);
    c.drop("unexpected");
  }

  private onOffer(m: DhcpMessage, server: Uint8Array | undefined): void {
    const y = ipv4ToU32(m.yiaddr);
    if (server?.length !== 4) return this.counters.drop("offer_without_server_id");
    if (y === 0 || y === 0xffffffff || y >>> 28 >= 0xe || y >>> 24 === 127) return this.counters.drop("offer_bad_address");
    // The first acceptable offer is taken (§4.4.1 lets the client choose how long to collect).
    this.offer = { address: m.yiaddr, server: Uint8Array.from(server) };
    this.st = "REQUESTING";
    this.tries = 0;
    this.send(DHCPREQUEST);
  }

  private onAck(m: DhcpMessage, server: Uint8Array | undefined): void {
    const lease = this.leaseFrom(m, server);
    if (!lease) return;
    this.host.timers.cancel(this.retx);
    this.offer = { address: m.yiaddr, server: parseIPv4(lease.server) };
    if (this.o.probes === 0) return this.bind(lease);
    this.st = "PROBING";
    const timing: ArpProbeTiming = { probeWaitMs: this.o.probeWaitMs, probes: this.o.probes, probeMinMs: this.o.probeMinMs, probeMaxMs: this.o.probeMaxMs, announceWaitMs: this.o.announceWaitMs };
    this.cancelProbe = this.host.probe(m.yiaddr, timing, (conflict) => {
      this.cancelProbe = undefined;
      if (this.st !== "PROBING") return;
      if (conflict) return this.decline(lease);
      // The probe took a few seconds of the lease: the times still count from the REQUEST.
      this.bind(lease);
    });
  }

  /** RFC 5227 found the address in use: DHCPDECLINE, then a new DISCOVER after a pause (§3.1.5). */
  private decline(lease: DhcpLease): void {
    this.counters.inc("conflicts");
    this.send(DHCPDECLINE);
    this.emit("declined", lease.address);
    this.st = "INIT";
    this.host.timers.arm(this.restart, this.o.declineWaitMs);
  }

  private bind(lease: DhcpLease): void {
    const old = this.current;
    this.current = lease;
    this.st = "BOUND";
    this.counters.inc("leases_bound");
    this.host.apply(lease, old);
    this.armLeaseTimers(lease);
    this.emit("bound", lease);
  }

  private onRenewed(m: DhcpMessage, server: Uint8Array | undefined): void {
    const old = this.current;
    const lease = this.leaseFrom(m, server ?? (old ? parseIPv4(old.server) : undefined));
    if (!lease || !old) return;
    this.host.timers.cancel(this.retx);
    this.current = lease;
    this.st = "BOUND";
    this.counters.inc("leases_renewed");
    // A different address in the answer replaces the old one (the server changed its mind).
    if (lease.address !== old.address || lease.prefixLength !== old.prefixLength || lease.router !== old.router || lease.dns.join() !== old.dns.join()) this.host.apply(lease, old);
    this.armLeaseTimers(lease);
    this.emit("renewed", lease);
  }

  private onNak(m: DhcpMessage): void {
    const msg = m.options.get(OPT.MESSAGE);
    const text = msg ? Buffer.from(msg).toString("utf8") : "";
    const old = this.current;
    this.current = undefined;
    this.counters.inc("naks");
    if (old) this.host.apply(undefined, old);
    this.emit("nak", text, old);
    this.init();
  }

  private armLeaseTimers(l: DhcpLease): void {
    const q = this.host.timers;
    if (l.leaseSec === Infinity) return this.cancelTimers();
    q.armAt(this.t1, l.obtainedAt + l.renewSec * 1000);
    q.armAt(this.t2, l.obtainedAt + l.rebindSec * 1000);
    q.armAt(this.expiry, l.expiresAt);
  }

  private cancelTimers(): void {
    for (const t of [this.retx, this.t1, this.t2, this.expiry, this.restart]) this.host.timers.cancel(t);
  }

  /** The lease an ACK grants, or undefined (counted) when it is unusable. */
  private leaseFrom(m: DhcpMessage, server: Uint8Array | undefined): DhcpLease | undefined {
    const c = this.counters;
    const y = ipv4ToU32(m.yiaddr);
    if (y === 0 || y === 0xffffffff || y >>> 28 >= 0xe || y >>> 24 === 127) return void c.drop("ack_bad_address");
    if (server?.length !== 4) return void c.drop("ack_without_server_id");
    const o = m.options;
    const prefixLength = maskLength(o.get(OPT.SUBNET_MASK)) ?? classfulLength(y);
    // §3.3: a lease time is required in an ACK to a REQUEST; without one, take it as infinite.
    const leaseSec = optU32(o.get(OPT.LEASE_TIME)) ?? 0xffffffff;
    const infinite = leaseSec === 0xffffffff;
    let renewSec = optU32(o.get(OPT.RENEWAL_TIME)) ?? leaseSec * 0.5;
    let rebindSec = optU32(o.get(OPT.REBINDING_TIME)) ?? leaseSec * 0.875;
    if (!(renewSec <= rebindSec && rebindSec <= leaseSec)) {
      c.inc("bad_t1_t2");
      renewSec = leaseSec * 0.5;
      rebindSec = leaseSec * 0.875;
    }
    const routers = optAddresses(o.get(OPT.ROUTER));
    const domain = o.get(OPT.DOMAIN_NAME);
    return {
      address: formatIPv4(m.yiaddr),
      prefixLength,
      router: routers[0] && formatIPv4(routers[0]),
      dns: optAddresses(o.get(OPT.DNS)).map((a) => formatIPv4(a)),
      domain: domain && domain.length > 0 ? Buffer.from(domain).toString("utf8").replace(/\0+$/, "") : undefined,
      server: formatIPv4(server),
      leaseSec: infinite ? Infinity : leaseSec,
      renewSec: infinite ? Infinity : renewSec,
      rebindSec: infinite ? Infinity : rebindSec,
      obtainedAt: this.lastSent,
      expiresAt: infinite ? Infinity : this.lastSent + leaseSec * 1000,
    };
  }
}

const TYPE_NAMES: Record<number, string> = { 1: "discover", 2: "offer", 3: "request", 4: "decline", 5: "ack", 6: "nak", 7: "release", 8: "inform" };

/** A contiguous subnet mask's prefix length; undefined for anything else. */
function maskLength(v: Uint8Array | undefined): number | undefined {
  if (v?.length !== 4) return undefined;
  const m = ipv4ToU32(v);
  const len = Math.clz32(~m >>> 0); // the leading one bits
  return m === ipv4Mask(len) ? len : undefined;
}

/** RFC 2131 §3.3 leaves a missing mask to the address's class (RFC 791). */
function classfulLength(y: number): number {
  return y >>> 31 === 0 ? 8 : y >>> 30 === 2 ? 16 : 24;
}
