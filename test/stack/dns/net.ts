/**
 * A small network for resolver tests on the virtual switch and a virtual clock: a client stack,
 * two name-server stacks and an attacker stack; and a tiny authoritative DNS server (UDP, and TCP
 * with RFC 7766 framing) written on a paf stack with the codec under test.
 */
import { Stack } from "../../../stack/stack.js";
import { VirtualSwitch } from "../../../stack/netif/vswitch.js";
import { VirtualClock } from "../../../stack/core/clock.js";
import { SeededRandom } from "../../../stack/core/random.js";
import type { DnsOptions } from "../../../stack/dns.js";
import type { RemoteInfo, UdpSocket } from "../../../stack/udp.js";
import type { TcpServer } from "../../../stack/tcp/index.js";
import { DNS_CLASS_IN, DNS_RCODE, DNS_TYPE, canonicalName, emitDns, parseDns, type DnsMessage, type DnsRecord } from "../../../stack/wire/dns.js";
import { runUntil } from "../../helpers/virtual.js";

export interface Net {
  clock: VirtualClock;
  sw: VirtualSwitch;
  /** 198.18.0.10 / 2001:db8::10, with the resolver under test. */
  client: Stack;
  /** 198.18.0.1 and 198.18.0.2 / 2001:db8::2: name servers. */
  ns1: Stack;
  ns2: Stack;
  /** 198.18.0.3: sends forged answers. */
  attacker: Stack;
  until(cond: () => boolean, what: string, maxMs?: number): Promise<void>;
  /** Run until `p` settles; returns its value or throws its error. */
  settle<T>(p: Promise<T>, maxMs?: number): Promise<T>;
  close(): Promise<void>;
}

export async function net(dns: Partial<DnsOptions> = {}): Promise<Net> {
  const clock = new VirtualClock();
  const sw = new VirtualSwitch();
  let seed = 11;
  const mk = (v4: string, v6?: string, extra: { dns?: DnsOptions } = {}) =>
    Stack.create({ netif: sw.port(v4), clock, random: new SeededRandom(seed++), ipv4: { address: v4 + "/24" }, ...(v6 ? { ipv6: { address: v6 + "/64", dad: false } } : {}), ...extra });
  const client = mk("198.18.0.10", "2001:db8::10", { dns: { servers: ["198.18.0.1", "198.18.0.2"], timeoutMs: 1000, attempts: 2, ...dns } });
  const ns1 = mk("198.18.0.1");
  const ns2 = mk("198.18.0.2", "2001:db8::2");
  const attacker = mk("198.18.0.3");
  const until = (cond: () => boolean, what: string, maxMs = 120_000) => runUntil(sw, clock, cond, what, maxMs, 200);
  const settle = async <T>(p: Promise<T>, maxMs?: number): Promise<T> => {
    let done = false;
    p.then(
      () => (done = true),
      () => (done = true),
    );
    await until(() => done, "a DNS answer", maxMs);
    return p;
  };
  // Learn every neighbour up front, so forged datagrams are not held back by ARP.
  await settle(Promise.all([client.ping("198.18.0.1"), client.ping("198.18.0.2"), client.ping("198.18.0.3"), ns1.ping("198.18.0.3")]));
  return { clock, sw, client, ns1, ns2, attacker, until, settle, close: async () => void (await Promise.all([client, ns1, ns2, attacker].map((s) => s.close()))) };
}

export type Zone = Map<string, DnsRecord[]>;

export function a(name: string, address: string, ttl = 300): DnsRecord {
  return { name, type: DNS_TYPE.A, class: DNS_CLASS_IN, ttl, data: { kind: "A", address } };
}
export function aaaa(name: string, address: string, ttl = 300): DnsRecord {
  return { name, type: DNS_TYPE.AAAA, class: DNS_CLASS_IN, ttl, data: { kind: "AAAA", address } };
}
export function cname(name: string, target: string, ttl = 300): DnsRecord {
  return { name, type: DNS_TYPE.CNAME, class: DNS_CLASS_IN, ttl, data: { kind: "CNAME", target } };
}
export function soa(zone: string, minimum: number, ttl = 3600): DnsRecord {
  return {
    name: zone,
    type: DNS_TYPE.SOA,
    class: DNS_CLASS_IN,
    ttl,
    data: { kind: "SOA", mname: "ns." + zone, rname: "hostmaster." + zone, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum },
  };
}

export function zone(records: DnsRecord[]): Zone {
  const z: Zone = new Map();
  for (const r of records) {
    const k = canonicalName(r.name);
    z.set(k, [...(z.get(k) ?? []), r]);
  }
  return z;
}

/** The answer an authoritative server gives from `z` (CNAMEs chased inside the zone), SOA minimum 30 s on negatives. */
export function answerFrom(z: Zone, q: DnsMessage): DnsMessage {
  const question = q.questions[0]!;
  const answers: DnsRecord[] = [];
  let name = canonicalName(question.name);
  let rcode: number = DNS_RCODE.NOERROR;
  for (let i = 0; i < 16; i++) {
    const rrs = z.get(name);
    if (!rrs) {
      rcode = DNS_RCODE.NXDOMAIN;
      break;
    }
    const hit = rrs.filter((r) => r.type === question.type);
    if (hit.length) {
      answers.push(...hit);
      break;
    }
    const c = rrs.find((r) => r.type === DNS_TYPE.CNAME);
    if (c?.data.kind !== "CNAME") break;
    answers.push(c);
    name = canonicalName(c.data.target);
  }
  const authorities = answers.length === 0 || rcode !== DNS_RCODE.NOERROR ? [soa("test", 30)] : [];
  return response(q, { rcode, answers, authorities });
}

export function response(q: DnsMessage, over: Partial<DnsMessage> = {}): DnsMessage {
  return { ...q, qr: true, aa: true, ra: true, tc: false, rcode: 0, answers: [], authorities: [], additionals: [], ...over };
}

export type Handler = (q: DnsMessage, rinfo: RemoteInfo, send: (m: DnsMessage | Uint8Array) => void) => void;

/** A DNS server on `stack` port 53. `handler` decides per query (default: answer from the zone). */
export class TestDnsServer {
  readonly queries: DnsMessage[] = [];
  readonly tcpQueries: DnsMessage[] = [];
  udpHandler: Handler;
  /** TCP answers are written this many bytes at a time (exercises length-prefix reassembly). */
  tcpChunk = 0;
  /** Rewrites each TCP answer before it is sent (forged IDs and the like). */
  tcpMangle: (m: DnsMessage) => DnsMessage = (m) => m;
  private readonly sock: UdpSocket;
  private tcp: TcpServer | undefined;

  constructor(
    readonly stack: Stack,
    public zone: Zone,
    type: "udp4" | "udp6" = "udp4",
  ) {
    this.udpHandler = (q, _r, send) => send(answerFrom(this.zone, q));
    this.sock = stack.udp.createSocket(type);
    this.sock.bind(53);
    this.sock.on("message", (msg: Buffer, rinfo: RemoteInfo) => {
      const q = parseDns(msg);
      if (typeof q === "string") return;
      this.queries.push(q);
      this.udpHandler(q, rinfo, (m) => this.sock.send(m instanceof Uint8Array ? m : emitDns(m), rinfo.port, rinfo.address));
    });
  }

  /** Also answer over TCP (RFC 7766), from the zone. */
  listenTcp(): this {
    this.tcp = this.stack.tcp.listen({ port: 53, allowHalfOpen: true }, (flow) => {
      let buf = Buffer.alloc(0);
      flow.on("error", () => {});
      flow.on("end", () => flow.end());
      flow.on("data", (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const q = parseDns(buf.subarray(2, 2 + buf.readUInt16BE(0)));
          buf = buf.subarray(2 + buf.readUInt16BE(0));
          if (typeof q === "string") continue;
          this.tcpQueries.push(q);
          const out = emitDns(this.tcpMangle(answerFrom(this.zone, q)));
          const framed = Buffer.concat([Buffer.from([out.length >> 8, out.length & 0xff]), out]);
          const step = this.tcpChunk || framed.length;
          for (let i = 0; i < framed.length; i += step) flow.write(framed.subarray(i, i + step));
        }
      });
    });
    return this;
  }

  close(): void {
    this.sock.close();
    this.tcp?.close();
  }
}
