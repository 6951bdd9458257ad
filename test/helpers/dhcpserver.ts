/**
 * A small DHCP server on a paf stack, for client tests on the virtual switch: it hands out
 * addresses from a pool with the lease, T1/T2, router and DNS options a test chooses, and can be
 * told to stay silent or to refuse (NAK) every request.
 */
import type { Stack } from "../../stack/stack.js";
import type { UdpSocket } from "../../stack/udp.js";
import { BOOTREPLY, DHCPACK, DHCPDECLINE, DHCPDISCOVER, DHCPNAK, DHCPOFFER, DHCPREQUEST, DHCP_FLAG_BROADCAST, OPT, emitDhcp, parseDhcp } from "../../stack/wire/dhcp.js";
import { putU32 } from "../../stack/wire/ndp.js";
import { formatIP, formatMac, parseIP } from "../../stack/wire/addr.js";

export interface DhcpServerConfig {
  /** Addresses handed out, in order. */
  pool: string[];
  mask?: string;
  router?: string;
  dns?: string[];
  leaseSec: number;
  t1Sec?: number;
  t2Sec?: number;
}

export interface Seen {
  type: number;
  from: string;
  ciaddr: string;
  requested: string | undefined;
  server: string | undefined;
  hostname: string | undefined;
  broadcastFlag: boolean;
}

export class DhcpServer {
  readonly seen: Seen[] = [];
  /** silent: answer nothing; nak: refuse every REQUEST. */
  mode: "normal" | "silent" | "nak" = "normal";
  private readonly sock: UdpSocket;
  private readonly leases = new Map<string, string>(); // mac -> address
  private readonly declined = new Set<string>();

  constructor(
    private readonly stack: Stack,
    public cfg: DhcpServerConfig,
  ) {
    this.sock = stack.udp.createSocket("udp4");
    this.sock.bind(67);
    this.sock.setBroadcast(true);
    this.sock.on("message", (msg: Buffer, rinfo: { address: string }) => this.input(msg, rinfo.address));
  }

  get id(): string {
    return this.stack.addresses()[0]!;
  }

  close(): void {
    this.sock.close();
  }

  private input(data: Uint8Array, from: string): void {
    const m = parseDhcp(data);
    if (typeof m === "string" || m.op !== 1) return;
    const type = m.options.get(OPT.MESSAGE_TYPE)?.[0] ?? 0;
    const req = m.options.get(OPT.REQUESTED_IP);
    const sid = m.options.get(OPT.SERVER_ID);
    const hn = m.options.get(OPT.HOSTNAME);
    const ciaddr = formatIP(m.ciaddr);
    this.seen.push({
      type,
      from,
      ciaddr,
      requested: req ? formatIP(req) : undefined,
      server: sid ? formatIP(sid) : undefined,
      hostname: hn ? Buffer.from(hn).toString() : undefined,
      broadcastFlag: (m.flags & DHCP_FLAG_BROADCAST) !== 0,
    });
    if (this.mode === "silent") return;
    const mac = formatMac(m.chaddr);
    if (type === DHCPDECLINE && req) {
      this.declined.add(formatIP(req));
      this.leases.delete(mac);
      return;
    }
    if (type === DHCPDISCOVER) return this.reply(m.xid, m.chaddr, DHCPOFFER, this.addressFor(mac), true);
    if (type !== DHCPREQUEST) return;
    if (sid && formatIP(sid) !== this.id) return; // another server was chosen
    const want = req ? formatIP(req) : ciaddr;
    if (this.mode === "nak" || !this.cfg.pool.includes(want)) return this.reply(m.xid, m.chaddr, DHCPNAK, "0.0.0.0", ciaddr === "0.0.0.0", ciaddr);
    this.leases.set(mac, want);
    this.reply(m.xid, m.chaddr, DHCPACK, want, ciaddr === "0.0.0.0", ciaddr);
  }

  private addressFor(mac: string): string {
    const have = this.leases.get(mac);
    if (have && !this.declined.has(have) && this.cfg.pool.includes(have)) return have;
    const free = this.cfg.pool.find((a) => !this.declined.has(a) && ![...this.leases.entries()].some(([m, x]) => x === a && m !== mac));
    if (!free) throw new Error("DHCP test server: pool exhausted");
    return free;
  }

  private reply(xid: number, chaddr: Uint8Array, type: number, yiaddr: string, broadcast: boolean, ciaddr = "0.0.0.0"): void {
    const u32 = (v: number) => {
      const b = new Uint8Array(4);
      putU32(b, 0, v);
      return b;
    };
    const opts: Array<[number, Uint8Array]> = [
      [OPT.MESSAGE_TYPE, Uint8Array.of(type)],
      [OPT.SERVER_ID, parseIP(this.id)],
    ];
    if (type !== DHCPNAK) {
      opts.push([OPT.LEASE_TIME, u32(this.cfg.leaseSec)], [OPT.SUBNET_MASK, parseIP(this.cfg.mask ?? "255.255.255.0")]);
      if (this.cfg.t1Sec !== undefined) opts.push([OPT.RENEWAL_TIME, u32(this.cfg.t1Sec)]);
      if (this.cfg.t2Sec !== undefined) opts.push([OPT.REBINDING_TIME, u32(this.cfg.t2Sec)]);
      if (this.cfg.router) opts.push([OPT.ROUTER, parseIP(this.cfg.router)]);
      if (this.cfg.dns?.length) opts.push([OPT.DNS, Buffer.concat(this.cfg.dns.map((d) => parseIP(d)))]);
    } else opts.push([OPT.MESSAGE, Buffer.from("no such lease")]);
    const msg = emitDhcp({ op: BOOTREPLY, xid, secs: 0, flags: 0, chaddr, options: opts });
    msg.set(parseIP(yiaddr), 16);
    this.sock.send(msg, 68, broadcast ? "255.255.255.255" : ciaddr);
  }
}
