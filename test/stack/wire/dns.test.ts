// DNS message codec (RFC 1035 §4): round trips (property-based, with and without compression),
// compression pointers (§4.1.4), and malformed input that must give a reason, never an exception.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { DNS_CLASS_IN, DNS_TYPE, emitDns, emitQuery, nameError, nameLabels, parseDns, sameName, type DnsMessage, type DnsRecord } from "../../../stack/wire/dns.js";
import { formatIPv6 } from "../../../stack/wire/addr.js";

/** A label as text: printable characters and escapes (\., \\, \DDD) the parser would produce. */
const labelText = fc
  .uint8Array({ minLength: 1, maxLength: 20 })
  .map((b) => Array.from(b, (x) => (x === 0x2e || x === 0x5c ? "\\" + String.fromCharCode(x) : x > 0x20 && x < 0x7f ? String.fromCharCode(x) : "\\" + String(x).padStart(3, "0"))).join(""));
const hostLabel = fc.stringMatching(/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?$/);
/** Names from a small pool of suffixes, so compression has something to point at. */
const name = fc
  .tuple(fc.array(fc.oneof(labelText, hostLabel), { maxLength: 3 }), fc.constantFrom("", "example.test", "a.b.test", "test"))
  .map(([ls, suffix]) => [...ls, ...(suffix ? [suffix] : [])].join("."))
  .filter((n) => nameError(n) === undefined);
const u32 = fc.integer({ min: 0, max: 0x7fffffff });
const v4 = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((b) => b.join("."));
const v6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => formatIPv6(b));
const record: fc.Arbitrary<DnsRecord> = fc.oneof(
  fc.record({ name, type: fc.constant(DNS_TYPE.A), class: fc.constant(DNS_CLASS_IN), ttl: u32, data: v4.map((address) => ({ kind: "A" as const, address })) }),
  fc.record({ name, type: fc.constant(DNS_TYPE.AAAA), class: fc.constant(DNS_CLASS_IN), ttl: u32, data: v6.map((address) => ({ kind: "AAAA" as const, address })) }),
  fc.record({ name, type: fc.constant(DNS_TYPE.CNAME), class: fc.constant(DNS_CLASS_IN), ttl: u32, data: name.map((target) => ({ kind: "CNAME" as const, target })) }),
  fc.record({
    name,
    type: fc.constant(DNS_TYPE.SOA),
    class: fc.constant(DNS_CLASS_IN),
    ttl: u32,
    data: fc.record({ kind: fc.constant("SOA" as const), mname: name, rname: name, serial: u32, refresh: u32, retry: u32, expire: u32, minimum: u32 }),
  }),
  fc.record({
    name,
    type: fc.constantFrom(DNS_TYPE.TXT, DNS_TYPE.MX, 99, 65280),
    class: fc.integer({ min: 0, max: 0xffff }),
    ttl: u32,
    data: fc.uint8Array({ maxLength: 40 }).map((bytes) => ({ kind: "raw" as const, bytes })),
  }),
);
const message: fc.Arbitrary<DnsMessage> = fc.record({
  id: fc.integer({ min: 0, max: 0xffff }),
  qr: fc.boolean(),
  opcode: fc.integer({ min: 0, max: 15 }),
  aa: fc.boolean(),
  tc: fc.boolean(),
  rd: fc.boolean(),
  ra: fc.boolean(),
  ad: fc.boolean(),
  cd: fc.boolean(),
  rcode: fc.integer({ min: 0, max: 15 }),
  questions: fc.array(fc.record({ name, type: fc.integer({ min: 0, max: 0xffff }), class: fc.integer({ min: 0, max: 0xffff }) }), { maxLength: 3 }),
  answers: fc.array(record, { maxLength: 6 }),
  authorities: fc.array(record, { maxLength: 3 }),
  additionals: fc.array(record, { maxLength: 3 }),
});

/** Header of a response with the given counts. */
function header(qd: number, an: number, ns = 0, ar = 0): number[] {
  return [0x12, 0x34, 0x81, 0x80, 0, qd, 0, an, 0, ns, 0, ar];
}

describe("RFC 1035 §4 message round trips", () => {
  it("parse(emit(m)) gives m back, compressed or not, and compression never grows a message", () => {
    fc.assert(
      fc.property(message, (m) => {
        const plain = emitDns(m, { compress: false });
        const packed = emitDns(m, { compress: true });
        expect(parseDns(plain)).toEqual(m);
        expect(parseDns(packed)).toEqual(m);
        expect(packed.length).toBeLessThanOrEqual(plain.length);
      }),
      { numRuns: 300 },
    );
  });

  it("a query carries one question, RD set, and an EDNS(0) OPT record when asked (RFC 6891 §6.1.2)", () => {
    const q = parseDns(emitQuery(0xbeef, "www.example.test", DNS_TYPE.AAAA, { ednsUdpSize: 1232 }));
    if (typeof q === "string") throw new Error(q);
    expect(q.id).toBe(0xbeef);
    expect(q.qr).toBe(false);
    expect(q.rd).toBe(true);
    expect(q.questions).toEqual([{ name: "www.example.test", type: 28, class: 1 }]);
    expect(q.additionals).toEqual([{ name: "", type: DNS_TYPE.OPT, class: 1232, ttl: 0, data: { kind: "raw", bytes: new Uint8Array(0) } }]);
    const bytes = emitQuery(1, "a.test", DNS_TYPE.A);
    expect(bytes.length).toBe(12 + 8 + 4); // 1 a 4 test 0, type, class
  });
});

describe("RFC 1035 §4.1.4 compression", () => {
  it("emits a pointer for a repeated suffix (exact case, so names keep theirs)", () => {
    const m: DnsMessage = {
      ...(parseDns(emitQuery(7, "www.Example.test", 1)) as DnsMessage),
      qr: true,
      additionals: [],
      answers: [{ name: "www.Example.test", type: 1, class: 1, ttl: 60, data: { kind: "A", address: "198.18.0.9" } }],
    };
    const b = emitDns(m);
    // The answer's owner name is a single pointer to offset 12 (the question's name).
    const q = 12 + 18 + 4;
    expect([b[q], b[q + 1]]).toEqual([0xc0, 12]);
    expect(b.length).toBe(q + 2 + 10 + 4);
  });

  it("follows pointers, also chains of them, to earlier names", () => {
    // question: www.example.test; answer owner: ptr->12; CNAME target "mail" + ptr->16 (example.test)
    const msg = Uint8Array.from([
      ...header(1, 2),
      3,
      0x77,
      0x77,
      0x77,
      7,
      ...Buffer.from("example"),
      4,
      ...Buffer.from("test"),
      0,
      0,
      1,
      0,
      1,
      0xc0,
      12,
      0,
      5,
      0,
      1,
      0,
      0,
      0,
      60,
      0,
      7,
      4,
      ...Buffer.from("mail"),
      0xc0,
      16,
      0xc0,
      46,
      0,
      1,
      0,
      1,
      0,
      0,
      0,
      30,
      0,
      4,
      198,
      18,
      0,
      7,
    ]);
    const m = parseDns(msg);
    if (typeof m === "string") throw new Error(m);
    expect(m.answers.map((r) => [r.name, r.data])).toEqual([
      ["www.example.test", { kind: "CNAME", target: "mail.example.test" }],
      ["mail.example.test", { kind: "A", address: "198.18.0.7" }],
    ]);
  });

  it("escapes dots, backslashes and unprintable bytes inside labels", () => {
    expect(nameLabels("a\\.b.c\\\\d.\\000x")).toEqual([Uint8Array.of(0x61, 0x2e, 0x62), Uint8Array.of(0x63, 0x5c, 0x64), Uint8Array.of(0, 0x78)]);
    const m = parseDns(emitQuery(1, "a\\.b.c\\\\d.\\000x", 1)) as DnsMessage;
    expect(m.questions[0]!.name).toBe("a\\.b.c\\\\d.\\000x");
    expect(sameName("WWW.Example.test.", "www.example.TEST")).toBe(true);
    expect(sameName("a.test", "b.test")).toBe(false);
  });
});

describe("malformed input gives a reason, never an exception", () => {
  const question = [3, 0x77, 0x77, 0x77, 4, ...Buffer.from("test"), 0, 0, 1, 0, 1];

  it("truncated header, name, question and record", () => {
    expect(parseDns(new Uint8Array(11))).toBe("truncated");
    const full = Uint8Array.from([...header(1, 1), ...question, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 0, 1]);
    expect(typeof parseDns(full)).toBe("object");
    for (let n = 12; n < full.length; n++) expect(parseDns(full.subarray(0, n))).toBe("truncated");
    // Counts larger than what follows.
    expect(parseDns(Uint8Array.from([...header(1, 65535), ...question]))).toBe("truncated");
  });

  it("pointer loops, self-pointers and forward pointers are refused (RFC 1035 §4.1.4 'prior occurrence')", () => {
    expect(parseDns(Uint8Array.from([...header(1, 0), 0xc0, 12, 0, 1, 0, 1]))).toBe("bad_pointer"); // points at itself
    expect(parseDns(Uint8Array.from([...header(1, 0), 0xc0, 14, 0xc0, 12, 0, 1, 0, 1]))).toBe("bad_pointer"); // 12 -> 14 -> 12
    expect(parseDns(Uint8Array.from([...header(1, 0), 1, 0x61, 0xc0, 12, 0, 1, 0, 1]))).toBe("bad_pointer"); // back into its own labels
    expect(parseDns(Uint8Array.from([...header(1, 0), 0xc0, 0x3f, 0, 1, 0, 1]))).toBe("bad_pointer"); // beyond the message
    expect(parseDns(Uint8Array.from([...header(1, 0), 0xc0]))).toBe("truncated");
  });

  it("labels over 63 bytes (label types 01/10) and names over 255 bytes", () => {
    expect(parseDns(Uint8Array.from([...header(1, 0), 64, ...new Uint8Array(64), 0, 0, 1, 0, 1]))).toBe("bad_label_type");
    expect(parseDns(Uint8Array.from([...header(1, 0), 0x80, 0, 0, 1, 0, 1]))).toBe("bad_label_type");
    const long: number[] = [];
    for (let i = 0; i < 5; i++) long.push(63, ...new Uint8Array(63).fill(0x61));
    expect(parseDns(Uint8Array.from([...header(1, 0), ...long, 0, 0, 1, 0, 1]))).toBe("name_too_long");
    // 255 bytes exactly is fine: 3 x 63-byte labels + one 61-byte label + root = 4*1 + 250 + 1.
    const max: number[] = [];
    for (const l of [63, 63, 63, 61]) max.push(l, ...new Uint8Array(l).fill(0x62));
    expect(typeof parseDns(Uint8Array.from([...header(1, 0), ...max, 0, 0, 1, 0, 1]))).toBe("object");
    // Built from pointers: a 200-byte name referenced after another 62-byte label still counts.
    const part: number[] = [];
    for (const l of [63, 63, 63]) part.push(l, ...new Uint8Array(l).fill(0x63));
    const viaPtr = Uint8Array.from([...header(2, 0), ...part, 0, 0, 1, 0, 1, 62, ...new Uint8Array(62).fill(0x64), 0xc0, 12, 0, 1, 0, 1]);
    expect(parseDns(viaPtr)).toBe("name_too_long");
  });

  it("rdata of the wrong length for A / AAAA, and a CNAME running past its RDATA", () => {
    const rr = (type: number, rdata: number[]) => Uint8Array.from([...header(1, 1), ...question, 0xc0, 12, 0, type, 0, 1, 0, 0, 0, 1, 0, rdata.length, ...rdata]);
    expect(parseDns(rr(1, [1, 2, 3]))).toBe("bad_rdata");
    expect(parseDns(rr(28, [1, 2, 3, 4]))).toBe("bad_rdata");
    expect(parseDns(rr(5, [3, 0x61, 0x62]))).toBe("bad_rdata");
    expect(parseDns(rr(5, [1, 0x61, 0, 0]))).toBe("bad_rdata");
    expect(parseDns(rr(6, [0, 0, 1, 2]))).toBe("bad_rdata");
    expect(parseDns(rr(5, [1, 0x61, 0]))).toMatchObject({ answers: [{ data: { kind: "CNAME", target: "a" } }] });
  });

  it("TTLs with the top bit set read as 0 (RFC 2181 §8)", () => {
    const m = parseDns(Uint8Array.from([...header(1, 1), ...question, 0xc0, 12, 0, 1, 0, 1, 0x80, 0, 0, 5, 0, 4, 1, 2, 3, 4])) as DnsMessage;
    expect(m.answers[0]!.ttl).toBe(0);
  });

  it("random bytes and mutated valid messages never throw", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => {
        const r = parseDns(b);
        expect(typeof r === "string" || typeof r === "object").toBe(true);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(message, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), fc.nat(), (m, flips, cut) => {
        const b = emitDns(m);
        for (const [at, v] of flips) b[at % b.length] = v;
        parseDns(b);
        parseDns(b.subarray(0, cut % (b.length + 1)));
      }),
      { numRuns: 1000 },
    );
  });

  it("emit refuses what cannot be encoded, naming it", () => {
    const q = (n: string) => () => emitQuery(1, n, 1);
    expect(q("a".repeat(64) + ".test")).toThrow(/label longer than 63/);
    expect(q(Array(130).fill("ab").join("."))).toThrow(/longer than 255/);
    expect(q("a..test")).toThrow(/empty label/);
    expect(nameError("a".repeat(63) + ".test")).toBeUndefined();
    expect(nameError("trailing.dot.")).toBeUndefined();
    expect(() => emitDns({ ...(parseDns(emitQuery(1, "x", 1)) as DnsMessage), answers: [{ name: "x", type: 1, class: 1, ttl: 1, data: { kind: "A", address: "::1" } }] })).toThrow(/not an IPv4/);
  });
});
