/**
 * DNS messages (RFC 1035 §4): header, question, resource records, and domain names with
 * message compression (§4.1.4). Pure codec, no state: `parseDns` / `emitDns` between the wire
 * and a plain `DnsMessage`.
 *
 * Names are text in master-file form (RFC 1035 §5.1) without the trailing dot: labels joined by
 * ".", a "." or "\" inside a label escaped with "\", any byte outside 0x21-0x7e as "\DDD"
 * (decimal). The root is "". Case is kept as received; compare with `sameName`.
 *
 * Parsing never throws: malformed input gives a `DnsParseError` reason (used as a drop counter
 * name). Every read is bounds-checked; a compression pointer must point strictly before the
 * labels that contain it (a "prior occurrence", §4.1.4), which rules out loops, and a name is at
 * most 255 bytes on the wire (§2.3.4) however many pointers build it.
 */
import { formatIPv4, formatIPv6, ipFamily, parseIP } from "./addr.js";

export const DNS = { ID: 0, FLAGS: 2, QDCOUNT: 4, ANCOUNT: 6, NSCOUNT: 8, ARCOUNT: 10, HEADER_LEN: 12 } as const;

/** RR TYPEs this codec knows by name (RFC 1035 §3.2.2, RFC 3596, RFC 6891). */
export const DNS_TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, OPT: 41 } as const;
export const DNS_CLASS_IN = 1;
/** RCODEs (RFC 1035 §4.1.1). */
export const DNS_RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

/** Longest name on the wire, length octets included (RFC 1035 §2.3.4). */
export const DNS_MAX_NAME_LEN = 255;
/** Longest label (RFC 1035 §2.3.4). */
export const DNS_MAX_LABEL_LEN = 63;
/** Compression pointers followed for one name (belt and braces: backward-only pointers already terminate). */
export const DNS_MAX_POINTERS = 128;
/** Largest message (TCP's 2-byte length, RFC 1035 §4.2.2). */
export const DNS_MAX_MESSAGE_LEN = 65535;

export interface DnsQuestion {
  name: string;
  type: number;
  class: number;
}

/** Start of authority (RFC 1035 §3.3.13); `minimum` bounds negative caching (RFC 2308 §5). */
export interface DnsSoa {
  mname: string;
  rname: string;
  serial: number;
  refresh: number;
  retry: number;
  expire: number;
  minimum: number;
}

/** Record data: A, AAAA, CNAME and SOA decoded; anything else kept as the bytes on the wire. */
export type DnsRdata =
  | { kind: "A"; address: string }
  | { kind: "AAAA"; address: string }
  | { kind: "CNAME"; target: string }
  | ({ kind: "SOA" } & DnsSoa)
  /** Raw RDATA. Names inside (NS, MX, PTR ...) may hold pointers into the original message. */
  | { kind: "raw"; bytes: Uint8Array };

export interface DnsRecord {
  name: string;
  type: number;
  class: number;
  /** Seconds; a received value with the top bit set reads as 0 (RFC 2181 §8). */
  ttl: number;
  data: DnsRdata;
}

export interface DnsMessage {
  id: number;
  /** Response (true) or query. */
  qr: boolean;
  opcode: number;
  /** Authoritative answer. */
  aa: boolean;
  /** Truncated (RFC 1035 §4.1.1; retry over TCP, RFC 7766 §5). */
  tc: boolean;
  /** Recursion desired / available. */
  rd: boolean;
  ra: boolean;
  /** Authentic data / checking disabled (RFC 4035 §3.2). */
  ad: boolean;
  cd: boolean;
  rcode: number;
  questions: DnsQuestion[];
  answers: DnsRecord[];
  authorities: DnsRecord[];
  additionals: DnsRecord[];
}

export type DnsParseError = "truncated" | "bad_pointer" | "too_many_pointers" | "bad_label_type" | "name_too_long" | "bad_rdata";

const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const FLAG_RA = 0x0080;
const FLAG_AD = 0x0020;
const FLAG_CD = 0x0010;

// ---- names ----------------------------------------------------------------------------------------

function escapeLabel(p: Uint8Array, start: number, end: number): string {
  let s = "";
  for (let i = start; i < end; i++) {
    const b = p[i]!;
    if (b === 0x2e || b === 0x5c) s += "\\" + String.fromCharCode(b);
    else if (b > 0x20 && b < 0x7f) s += String.fromCharCode(b);
    else s += "\\" + String(b).padStart(3, "0");
  }
  return s;
}

/**
 * The labels of a text name as bytes, or an error message. Accepts one trailing dot; "" and "."
 * are the root (no labels).
 */
export function nameLabels(name: string): Uint8Array[] | string {
  if (name === "" || name === ".") return [];
  const labels: Uint8Array[] = [];
  let cur: number[] = [];
  let wire = 1;
  for (let i = 0; i < name.length; i++) {
    const ch = name.charCodeAt(i);
    if (ch === 0x2e) {
      if (cur.length === 0) return `empty label in "${name}"`;
      labels.push(Uint8Array.from(cur));
      wire += cur.length + 1;
      cur = [];
      if (i === name.length - 1) break; // one trailing dot: fully qualified
      continue;
    }
    let b = ch;
    if (ch === 0x5c) {
      const d = name.slice(i + 1, i + 4);
      if (/^[0-9]{3}$/.test(d)) {
        b = Number(d);
        if (b > 255) return `bad escape \\${d} in "${name}"`;
        i += 3;
      } else if (i + 1 < name.length) {
        b = name.charCodeAt(++i);
      } else return `dangling "\\" in "${name}"`;
    }
    if (b > 0xff) return `non-ASCII character in "${name}" (use punycode)`;
    cur.push(b);
    if (cur.length > DNS_MAX_LABEL_LEN) return `label longer than ${DNS_MAX_LABEL_LEN} bytes in "${name}"`;
  }
  if (cur.length > 0) {
    labels.push(Uint8Array.from(cur));
    wire += cur.length + 1;
  }
  if (wire > DNS_MAX_NAME_LEN) return `name longer than ${DNS_MAX_NAME_LEN} bytes on the wire: "${name.slice(0, 40)}..."`;
  return labels;
}

/** Why `name` cannot be sent (a message), or undefined if it can. */
export function nameError(name: string): string | undefined {
  const l = nameLabels(name);
  return typeof l === "string" ? l : undefined;
}

/** ASCII case-insensitive name comparison (RFC 4343); a trailing dot is ignored. */
export function sameName(a: string, b: string): boolean {
  return canonicalName(a) === canonicalName(b);
}

/** Lower-case ASCII, no trailing dot: the form used for keys. */
export function canonicalName(n: string): string {
  const t = n.endsWith(".") && !n.endsWith("\\.") ? n.slice(0, -1) : n;
  return t.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/**
 * Read a (possibly compressed) name at `off`. Returns the text and the offset just past the
 * name where it started (after its first pointer, if any).
 */
function readName(p: Uint8Array, off: number): { name: string; next: number } | DnsParseError {
  let name = "";
  let wire = 1;
  let pos = off;
  let next = -1;
  // Pointers must go strictly below where the current run of labels began (RFC 1035 §4.1.4:
  // "a prior occurrence"), so every jump goes backwards and the walk ends.
  let runStart = off;
  let jumps = 0;
  for (;;) {
    if (pos >= p.length) return "truncated";
    const len = p[pos]!;
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= p.length) return "truncated";
      const target = ((len & 0x3f) << 8) | p[pos + 1]!;
      if (target >= runStart) return "bad_pointer";
      if (++jumps > DNS_MAX_POINTERS) return "too_many_pointers";
      if (next < 0) next = pos + 2;
      pos = target;
      runStart = target;
      continue;
    }
    if (kind !== 0) return "bad_label_type"; // 01 and 10: extended / reserved (RFC 6891 §5)
    if (len === 0) {
      if (next < 0) next = pos + 1;
      return { name, next };
    }
    wire += len + 1;
    if (wire > DNS_MAX_NAME_LEN) return "name_too_long";
    if (pos + 1 + len > p.length) return "truncated";
    name += (name === "" ? "" : ".") + escapeLabel(p, pos + 1, pos + 1 + len);
    pos += 1 + len;
  }
}

// ---- parse ---------------------------------------------------------------------------------------

const u16 = (p: Uint8Array, o: number) => (p[o]! << 8) | p[o + 1]!;
const u32 = (p: Uint8Array, o: number) => ((p[o]! << 24) | (p[o + 1]! << 16) | (p[o + 2]! << 8) | p[o + 3]!) >>> 0;

function readRdata(p: Uint8Array, type: number, cls: number, start: number, end: number): DnsRdata | DnsParseError {
  const len = end - start;
  // Only class IN gives A and AAAA their meaning (RFC 1035 §3.4.1, RFC 3596 §2.2).
  if (type === DNS_TYPE.A && cls === DNS_CLASS_IN) return len === 4 ? { kind: "A", address: formatIPv4(p, start) } : "bad_rdata";
  if (type === DNS_TYPE.AAAA && cls === DNS_CLASS_IN) return len === 16 ? { kind: "AAAA", address: formatIPv6(p, start) } : "bad_rdata";
  if (type === DNS_TYPE.CNAME) {
    // The name may point anywhere before it, but must end inside this RDATA.
    const n = readName(p.subarray(0, end), start);
    if (typeof n === "string") return n === "truncated" ? "bad_rdata" : n;
    return n.next === end ? { kind: "CNAME", target: n.name } : "bad_rdata";
  }
  if (type === DNS_TYPE.SOA) {
    const q = p.subarray(0, end);
    const m = readName(q, start);
    if (typeof m === "string") return m === "truncated" ? "bad_rdata" : m;
    const r = readName(q, m.next);
    if (typeof r === "string") return r === "truncated" ? "bad_rdata" : r;
    if (r.next + 20 !== end) return "bad_rdata";
    const o = r.next;
    return { kind: "SOA", mname: m.name, rname: r.name, serial: u32(p, o), refresh: u32(p, o + 4), retry: u32(p, o + 8), expire: u32(p, o + 12), minimum: u32(p, o + 16) };
  }
  return { kind: "raw", bytes: p.slice(start, end) };
}

function readRecords(p: Uint8Array, off: number, count: number, out: DnsRecord[]): number | DnsParseError {
  for (let i = 0; i < count; i++) {
    const n = readName(p, off);
    if (typeof n === "string") return n;
    off = n.next;
    if (off + 10 > p.length) return "truncated";
    const type = u16(p, off);
    const cls = u16(p, off + 2);
    let ttl = u32(p, off + 4);
    if (ttl > 0x7fffffff) ttl = 0; // RFC 2181 §8
    const rdlen = u16(p, off + 8);
    off += 10;
    if (off + rdlen > p.length) return "truncated";
    const data = readRdata(p, type, cls, off, off + rdlen);
    if (typeof data === "string") return data;
    out.push({ name: n.name, type, class: cls, ttl, data });
    off += rdlen;
  }
  return off;
}

/**
 * Parse a whole message. Bytes after the last record are ignored. Never throws; a record count
 * the message cannot hold fails as "truncated" after at most `length / 5` steps.
 */
export function parseDns(p: Uint8Array): DnsMessage | DnsParseError {
  if (p.length < DNS.HEADER_LEN) return "truncated";
  const flags = u16(p, DNS.FLAGS);
  const m: DnsMessage = {
    id: u16(p, DNS.ID),
    qr: (flags & FLAG_QR) !== 0,
    opcode: (flags >> 11) & 0xf,
    aa: (flags & FLAG_AA) !== 0,
    tc: (flags & FLAG_TC) !== 0,
    rd: (flags & FLAG_RD) !== 0,
    ra: (flags & FLAG_RA) !== 0,
    ad: (flags & FLAG_AD) !== 0,
    cd: (flags & FLAG_CD) !== 0,
    rcode: flags & 0xf,
    questions: [],
    answers: [],
    authorities: [],
    additionals: [],
  };
  let off: number = DNS.HEADER_LEN;
  const qd = u16(p, DNS.QDCOUNT);
  for (let i = 0; i < qd; i++) {
    const n = readName(p, off);
    if (typeof n === "string") return n;
    off = n.next;
    if (off + 4 > p.length) return "truncated";
    m.questions.push({ name: n.name, type: u16(p, off), class: u16(p, off + 2) });
    off += 4;
  }
  for (const [field, list] of [
    [DNS.ANCOUNT, m.answers],
    [DNS.NSCOUNT, m.authorities],
    [DNS.ARCOUNT, m.additionals],
  ] as const) {
    const r = readRecords(p, off, u16(p, field), list);
    if (typeof r === "string") return r;
    off = r;
  }
  return m;
}

// ---- emit ----------------------------------------------------------------------------------------

export interface EmitOptions {
  /** Compress names (RFC 1035 §4.1.4) in owner names and CNAME/SOA data. Default true. */
  compress?: boolean;
}

class Writer {
  buf = new Uint8Array(512);
  len = 0;
  /** Offsets of name suffixes already written (text -> offset), for compression. */
  readonly names = new Map<string, number>();
  constructor(readonly compress: boolean) {}

  private room(n: number): void {
    if (this.len + n > DNS_MAX_MESSAGE_LEN) throw new RangeError(`DNS message longer than ${DNS_MAX_MESSAGE_LEN} bytes`);
    if (this.len + n <= this.buf.length) return;
    const b = new Uint8Array(Math.min(DNS_MAX_MESSAGE_LEN, Math.max(this.buf.length * 2, this.len + n)));
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.len++] = v & 0xff;
  }
  u16(v: number): void {
    this.room(2);
    this.buf[this.len++] = (v >>> 8) & 0xff;
    this.buf[this.len++] = v & 0xff;
  }
  u32(v: number): void {
    this.u16(Math.floor(v / 65536));
    this.u16(v & 0xffff);
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  name(text: string): void {
    const labels = nameLabels(text);
    if (typeof labels === "string") throw new RangeError(labels);
    for (let i = 0; i < labels.length; i++) {
      // Key: the suffix from label i on, exactly (matching case-insensitively would rewrite the
      // case of later names, which a peer may check: DNS 0x20, draft-vixie-dnsext-dns0x20).
      const key = this.compress
        ? labels
            .slice(i)
            .map((l) => escapeLabel(l, 0, l.length))
            .join(".")
        : "";
      if (this.compress) {
        const at = this.names.get(key);
        if (at !== undefined) {
          this.u16(0xc000 | at);
          return;
        }
        if (this.len < 0x4000) this.names.set(key, this.len);
      }
      const l = labels[i]!;
      this.u8(l.length);
      this.bytes(l);
    }
    this.u8(0);
  }
}

function writeAddress(w: Writer, text: string, family: 4 | 6): void {
  if (ipFamily(text) !== family || text.includes("%")) throw new RangeError(`"${text}" is not an IPv${family} address`);
  w.bytes(parseIP(text));
}

function writeRecord(w: Writer, r: DnsRecord): void {
  w.name(r.name);
  w.u16(r.type);
  w.u16(r.class);
  w.u32(r.ttl);
  const lenAt = w.len;
  w.u16(0);
  const d = r.data;
  switch (d.kind) {
    case "A":
      writeAddress(w, d.address, 4);
      break;
    case "AAAA":
      writeAddress(w, d.address, 6);
      break;
    case "CNAME":
      w.name(d.target);
      break;
    case "SOA":
      w.name(d.mname);
      w.name(d.rname);
      for (const v of [d.serial, d.refresh, d.retry, d.expire, d.minimum]) w.u32(v);
      break;
    case "raw":
      w.bytes(d.bytes);
      break;
  }
  const rdlen = w.len - lenAt - 2;
  if (rdlen > 0xffff) throw new RangeError("RDATA longer than 65535 bytes");
  w.buf[lenAt] = rdlen >>> 8;
  w.buf[lenAt + 1] = rdlen & 0xff;
}

/**
 * Encode a message. Throws a RangeError naming the problem for input that cannot be encoded (a
 * label over 63 bytes, a name over 255, a bad address, a message over 65535 bytes): that is the
 * caller's data, never a peer's.
 */
export function emitDns(m: DnsMessage, opts: EmitOptions = {}): Uint8Array {
  const w = new Writer(opts.compress ?? true);
  w.u16(m.id);
  w.u16(
    (m.qr ? FLAG_QR : 0) |
      ((m.opcode & 0xf) << 11) |
      (m.aa ? FLAG_AA : 0) |
      (m.tc ? FLAG_TC : 0) |
      (m.rd ? FLAG_RD : 0) |
      (m.ra ? FLAG_RA : 0) |
      (m.ad ? FLAG_AD : 0) |
      (m.cd ? FLAG_CD : 0) |
      (m.rcode & 0xf),
  );
  for (const n of [m.questions.length, m.answers.length, m.authorities.length, m.additionals.length]) {
    if (n > 0xffff) throw new RangeError("more than 65535 entries in a section");
    w.u16(n);
  }
  for (const q of m.questions) {
    w.name(q.name);
    w.u16(q.type);
    w.u16(q.class);
  }
  for (const list of [m.answers, m.authorities, m.additionals]) for (const r of list) writeRecord(w, r);
  return w.buf.slice(0, w.len);
}

/** A standard query (opcode 0) for one question, with an EDNS(0) OPT record if `ednsUdpSize` > 0 (RFC 6891 §6.1.2). */
export function emitQuery(id: number, name: string, type: number, opts: { rd?: boolean; ednsUdpSize?: number } = {}): Uint8Array {
  const additionals: DnsRecord[] = [];
  const edns = opts.ednsUdpSize ?? 0;
  if (edns > 0) additionals.push({ name: "", type: DNS_TYPE.OPT, class: Math.max(512, Math.min(65535, edns)), ttl: 0, data: { kind: "raw", bytes: new Uint8Array(0) } });
  return emitDns({
    id,
    qr: false,
    opcode: 0,
    aa: false,
    tc: false,
    rd: opts.rd ?? true,
    ra: false,
    ad: false,
    cd: false,
    rcode: 0,
    questions: [{ name, type, class: DNS_CLASS_IN }],
    answers: [],
    authorities: [],
    additionals,
  });
}
