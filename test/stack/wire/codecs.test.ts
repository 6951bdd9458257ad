// Wire codecs: parse/emit round trips (property-based) and malformed input of every field.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { checksum, finish, pseudoHeaderSum, sum16 } from "../../../stack/wire/checksum.js";
import { emitIpv4, parseIpv4 } from "../../../stack/wire/ipv4.js";
import { emitIpv6, parseIpv6, emitFragmentHeader, parseFragmentHeader } from "../../../stack/wire/ipv6.js";
import { emitArp, parseArp } from "../../../stack/wire/arp.js";
import { emitUdp, parseUdp, udpChecksumOk } from "../../../stack/wire/udp.js";
import { emitIcmp, icmpv4ChecksumOk, icmpv6ChecksumOk, parseIcmp } from "../../../stack/wire/icmp.js";
import { emitEthernet, parseEthernet } from "../../../stack/wire/ethernet.js";
import { formatIPv6, parseIPv6, parseCidr, parseMac, formatMac, inPrefix, parseIPv4, ipFamily } from "../../../stack/wire/addr.js";
import { isIPv4 } from "node:net";
import { ACK, emitTcp, newSegment, optionsLength, parseTcp, tcpChecksumOk, type TcpEmit } from "../../../stack/wire/tcp.js";

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });

describe("RFC 1071 Internet checksum", () => {
  it("matches a straightforward reference implementation for any buffer and split point", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), (buf, cut) => {
        let ref = 0;
        for (let i = 0; i < buf.length; i += 2) ref += (buf[i]! << 8) | (buf[i + 1] ?? 0);
        while (ref > 0xffff) ref = (ref & 0xffff) + (ref >>> 16);
        expect(sum16(buf)).toBe(ref);
        // Summing in two even-aligned parts gives the same result.
        const c = Math.min(buf.length, (cut % (buf.length + 1)) & ~1);
        expect(finish(sum16(buf, c, buf.length, sum16(buf, 0, c)))).toBe(finish(ref));
      }),
    );
  });
  it("sums long runs in 32-bit words: the same at every alignment, length and start (big buffers included)", () => {
    const ref = (b: Uint8Array, from: number, to: number, initial: number) => {
      let s = initial;
      for (let i = from; i < to; i += 2) s += (b[i]! << 8) | (i + 1 < to ? b[i + 1]! : 0);
      while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
      return s;
    };
    const backing = new Uint8Array(140_000);
    for (let i = 0; i < backing.length; i++) backing[i] = (i * 2654435761) >>> 24;
    fc.assert(
      fc.property(fc.nat(7), fc.nat(9), fc.integer({ min: 0, max: 70_000 }), fc.nat(0xffff), (offset, start, len, initial) => {
        // A view at every byteOffset mod 8 (a frame's headers put the payload at any even or odd
        // address), the sum taken from `start` inside it, every length around the word cut-over.
        const view = new Uint8Array(backing.buffer, offset, start + len + 3);
        expect(sum16(view, start, start + len, initial)).toBe(ref(view, start, start + len, initial));
      }),
      { numRuns: 400 },
    );
    for (let len = 120; len <= 140; len++)
      for (let off = 0; off < 4; off++) {
        const view = new Uint8Array(backing.buffer, off, len);
        expect(sum16(view)).toBe(ref(view, 0, len, 0));
      }
    // All ones: the widest carries, over 10 MB, where one sum of all its 32-bit words would pass
    // 2^53 and lose bits (the words are summed in 4 MB pieces).
    const ones = new Uint8Array(10 << 20).fill(0xff);
    expect(sum16(ones)).toBe(0xffff);
    expect(sum16(ones, 2, ones.length - 1, 0x1234)).toBe(ref(ones, 2, ones.length - 1, 0x1234));
    // RFC 1071 §3's example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2, here repeated past the word cut-over.
    const ex = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
    expect(sum16(new Uint8Array(ex))).toBe(0xddf2);
    const rep = new Uint8Array(8 * 64).map((_, i) => ex[i % 8]!);
    expect(sum16(rep)).toBe(ref(rep, 0, rep.length, 0));
  });
  it("a buffer with its checksum inserted sums to zero", () => {
    const b = new Uint8Array([0x45, 0, 0, 0x1c, 0, 1, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2]);
    const c = checksum(b);
    b[10] = c >> 8;
    b[11] = c & 0xff;
    expect(checksum(b)).toBe(0);
  });
});

describe("addresses", () => {
  it("IPv6 text round-trips in RFC 5952 canonical form", () => {
    fc.assert(
      fc.property(bytes(16), (a) => {
        expect(parseIPv6(formatIPv6(a))).toEqual(a);
      }),
    );
    expect(formatIPv6(parseIPv6("2001:0db8:0:0:1:0:0:1"))).toBe("2001:db8::1:0:0:1");
    expect(formatIPv6(parseIPv6("::ffff:198.18.0.1"))).toBe("::ffff:c612:1");
    expect(formatIPv6(parseIPv6("fe80::1%tap0"))).toBe("fe80::1");
  });
  it("IPv4 text: accepted and parsed exactly as node:net's isIPv4 says, whatever the text", () => {
    const check = (t: string) => {
      expect(ipFamily(t) === 4, t).toBe(isIPv4(t));
      if (isIPv4(t)) expect(Array.from(parseIPv4(t)), t).toEqual(t.split(".").map(Number));
      else expect(() => parseIPv4(t), t).toThrow(TypeError);
    };
    for (const t of [
      "0.0.0.0",
      "255.255.255.255",
      "198.18.0.2",
      "01.2.3.4",
      "1.2.3.04",
      "1.2.3.00",
      "256.1.1.1",
      "1.2.3",
      "1.2.3.4.",
      ".1.2.3.4",
      "1..2.3",
      "1.2.3.4.5",
      "1.2.3.1000",
      "1.2.3.-1",
      " 1.2.3.4",
      "1.2.3.4 ",
      "1.2.3.4/24",
      "",
      "::1",
      "1.2.3.4x",
    ])
      check(t);
    fc.assert(fc.property(fc.array(fc.oneof(fc.constantFrom("0", "1", "2", "5", "9", "."), fc.integer({ min: 0, max: 300 }).map(String)), { maxLength: 9 }), (parts) => check(parts.join(""))));
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 299 }), { minLength: 3, maxLength: 5 }), (parts) => check(parts.join("."))));
  });
  it("bad text is rejected with an error naming it", () => {
    expect(() => parseIPv4("198.18.0.256")).toThrow(/198\.18\.0\.256/);
    expect(() => parseCidr("198.18.0.2/33")).toThrow(/prefix length/);
    expect(() => parseCidr("2001:db8::2/64", 4)).toThrow(/IPv4/);
    expect(() => parseMac("02:00:00:00:00")).toThrow(/MAC/);
    expect(formatMac(parseMac("02-AB-cd-00-00-01"))).toBe("02:ab:cd:00:00:01");
  });
  it("prefix matching", () => {
    expect(inPrefix(parseIPv4("198.18.0.77"), parseIPv4("198.18.0.2"), 24)).toBe(true);
    expect(inPrefix(parseIPv4("198.19.0.77"), parseIPv4("198.18.0.2"), 24)).toBe(false);
    expect(inPrefix(parseIPv4("198.19.0.77"), parseIPv4("198.18.0.2"), 15)).toBe(true);
    expect(inPrefix(parseIPv6("2001:db8::5"), parseIPv6("2001:db8::1"), 64)).toBe(true);
  });
});

describe("Ethernet II", () => {
  it("emit/parse round trip; short frames rejected", () => {
    fc.assert(
      fc.property(bytes(6), bytes(6), fc.integer({ min: 0, max: 0xffff }), (d, s, t) => {
        const f = new Uint8Array(14);
        emitEthernet(f, d, s, t);
        const r = parseEthernet(f)!;
        expect(r.dst).toEqual(d);
        expect(r.src).toEqual(s);
        expect(r.ethertype).toBe(t);
      }),
    );
    expect(parseEthernet(new Uint8Array(13))).toBeUndefined();
  });
});

describe("RFC 826 ARP", () => {
  it("emit/parse round trip", () => {
    fc.assert(
      fc.property(fc.constantFrom(1, 2), bytes(6), bytes(4), bytes(6), bytes(4), (op, sha, spa, tha, tpa) => {
        const p = new Uint8Array(28);
        emitArp(p, { op, sha, spa, tha, tpa });
        expect(parseArp(p)).toEqual({ op, sha, spa, tha, tpa });
      }),
    );
  });
  it("rejects truncation, other hardware and protocol types", () => {
    const p = new Uint8Array(28);
    emitArp(p, { op: 1, sha: new Uint8Array(6), spa: new Uint8Array(4), tha: new Uint8Array(6), tpa: new Uint8Array(4) });
    expect(parseArp(p.subarray(0, 27))).toBe("truncated");
    const hw = p.slice();
    hw[1] = 6;
    expect(parseArp(hw)).toBe("unsupported_hardware");
    const hl = p.slice();
    hl[4] = 8;
    expect(parseArp(hl)).toBe("unsupported_hardware");
    const pt = p.slice();
    pt[2] = 0x86;
    expect(parseArp(pt)).toBe("unsupported_protocol");
    const pl = p.slice();
    pl[5] = 16;
    expect(parseArp(pl)).toBe("unsupported_protocol");
  });
});

const ipv4Header = fc.record({
  tos: fc.integer({ min: 0, max: 255 }),
  ident: fc.integer({ min: 0, max: 0xffff }),
  dontFragment: fc.boolean(),
  moreFragments: fc.boolean(),
  fragOffset: fc.integer({ min: 0, max: 0x1fff }).map((x) => x * 8),
  ttl: fc.integer({ min: 0, max: 255 }),
  protocol: fc.integer({ min: 0, max: 255 }),
  src: bytes(4),
  dst: bytes(4),
  payload: fc.uint8Array({ maxLength: 64 }),
});

describe("RFC 791 IPv4 header", () => {
  it("emit/parse round trip with a valid checksum", () => {
    fc.assert(
      fc.property(ipv4Header, (h) => {
        const buf = new Uint8Array(20 + h.payload.length);
        buf.set(h.payload, 20);
        emitIpv4(buf, 0, { ...h, payloadLen: h.payload.length });
        const r = parseIpv4(buf);
        if (typeof r === "string") throw new Error(r);
        expect(r.ident).toBe(h.ident);
        expect(r.tos).toBe(h.tos);
        expect(r.dontFragment).toBe(h.dontFragment);
        expect(r.moreFragments).toBe(h.moreFragments);
        expect(r.fragOffset).toBe(h.fragOffset);
        expect(r.ttl).toBe(h.ttl);
        expect(r.protocol).toBe(h.protocol);
        expect(r.src).toEqual(h.src);
        expect(r.dst).toEqual(h.dst);
        expect(r.payload).toEqual(h.payload);
      }),
    );
  });
  it("rejects each malformed field with its reason", () => {
    const good = new Uint8Array(28);
    emitIpv4(good, 0, { ident: 1, ttl: 64, protocol: 17, src: new Uint8Array([198, 18, 0, 1]), dst: new Uint8Array([198, 18, 0, 2]), payloadLen: 8 });
    expect(typeof parseIpv4(good)).toBe("object");
    const mut = (f: (b: Uint8Array) => void) => {
      const b = good.slice();
      f(b);
      return parseIpv4(b);
    };
    expect(parseIpv4(good.subarray(0, 19))).toBe("truncated");
    expect(mut((b) => (b[0] = 0x65))).toBe("bad_version");
    expect(mut((b) => (b[0] = 0x44))).toBe("bad_header_length");
    expect(mut((b) => (b[0] = 0x4f))).toBe("bad_header_length");
    expect(mut((b) => (b[3] = 19))).toBe("bad_total_length");
    expect(mut((b) => (b[3] = 29))).toBe("bad_total_length");
    expect(mut((b) => (b[8] = 63))).toBe("bad_checksum");
    // Link padding past the total length is trimmed, not an error.
    const padded = new Uint8Array(60);
    padded.set(good);
    const r = parseIpv4(padded);
    expect(typeof r !== "string" && r.payload.length).toBe(8);
  });
});

describe("RFC 8200 IPv6 header", () => {
  it("emit/parse round trip", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 0xfffff }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 255 }),
        bytes(16),
        bytes(16),
        fc.uint8Array({ maxLength: 64 }),
        (tc, fl, nh, hl, src, dst, payload) => {
          const buf = new Uint8Array(40 + payload.length);
          buf.set(payload, 40);
          emitIpv6(buf, 0, { trafficClass: tc, flowLabel: fl, nextHeader: nh, hopLimit: hl, src, dst, payloadLen: payload.length });
          const r = parseIpv6(buf);
          if (typeof r === "string") throw new Error(r);
          expect([r.trafficClass, r.flowLabel, r.nextHeader, r.hopLimit]).toEqual([tc, fl, nh, hl]);
          expect(r.src).toEqual(src);
          expect(r.dst).toEqual(dst);
          expect(r.payload).toEqual(payload);
        },
      ),
    );
  });
  it("rejects truncation, version and payload length", () => {
    const b = new Uint8Array(48);
    emitIpv6(b, 0, { nextHeader: 59, hopLimit: 64, src: new Uint8Array(16), dst: new Uint8Array(16), payloadLen: 8 });
    expect(parseIpv6(b.subarray(0, 39))).toBe("truncated");
    const v = b.slice();
    v[0] = 0x40;
    expect(parseIpv6(v)).toBe("bad_version");
    const l = b.slice();
    l[5] = 9;
    expect(parseIpv6(l)).toBe("bad_payload_length");
  });
  it("fragment header round trip", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 8191 }), fc.boolean(), fc.integer({ min: 0, max: 0xffffffff }), (nh, o, m, id) => {
        const b = new Uint8Array(8);
        emitFragmentHeader(b, 0, nh, o * 8, m, id);
        expect(parseFragmentHeader(b, 0)).toEqual({ nextHeader: nh, offset: o * 8, moreFragments: m, ident: id });
      }),
    );
    expect(parseFragmentHeader(new Uint8Array(7), 0)).toBeUndefined();
  });
});

describe("RFC 768 UDP", () => {
  it("emit/parse round trip with checksum over the pseudo-header (both families)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(4, 16),
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.uint8Array({ maxLength: 200 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (alen, sp, dp, payload, addrs) => {
          const src = addrs.subarray(0, alen);
          const dst = addrs.subarray(16, 16 + alen);
          const buf = new Uint8Array(8 + payload.length);
          buf.set(payload, 8);
          emitUdp(buf, 0, sp, dp, payload.length, src, dst);
          const r = parseUdp(buf);
          if (typeof r === "string") throw new Error(r);
          expect([r.srcPort, r.dstPort]).toEqual([sp, dp]);
          expect(r.payload).toEqual(payload);
          expect(r.checksum).not.toBe(0);
          expect(udpChecksumOk(buf, src, dst)).toBe(true);
          buf[buf.length - 1]! ^= 1;
          expect(udpChecksumOk(buf, src, dst)).toBe(false);
        },
      ),
    );
  });
  it("rejects bad lengths", () => {
    const b = new Uint8Array(12);
    b[5] = 7;
    expect(parseUdp(b)).toBe("bad_length");
    b[5] = 13;
    expect(parseUdp(b)).toBe("bad_length");
    expect(parseUdp(b.subarray(0, 7))).toBe("truncated");
  });
});

describe("RFC 792 / RFC 4443 ICMP", () => {
  it("ICMPv4 and ICMPv6 (pseudo-header) checksums verify after emit", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.uint8Array({ maxLength: 100 }),
        bytes(16),
        bytes(16),
        (t, c, rest, body, s, d) => {
          const b = new Uint8Array(8 + body.length);
          b.set(body, 8);
          emitIcmp(b, 0, b.length, t, c, rest);
          expect(icmpv4ChecksumOk(b)).toBe(true);
          const r = parseIcmp(b);
          if (typeof r === "string") throw new Error(r);
          expect([r.type, r.code, r.rest]).toEqual([t, c, rest]);
          emitIcmp(b, 0, b.length, t, c, rest, s, d);
          expect(icmpv6ChecksumOk(b, s, d)).toBe(true);
          expect(finish(sum16(b, 0, b.length, pseudoHeaderSum(s, d, 58, b.length)))).toBe(0);
        },
      ),
    );
    expect(parseIcmp(new Uint8Array(7))).toBe("truncated");
  });
});

describe("RFC 9293 TCP header and options (the option table)", () => {
  const src = new Uint8Array([198, 18, 0, 1]);
  const dst = new Uint8Array([198, 18, 0, 2]);
  it("every option round-trips, alone and together, and the checksum verifies", () => {
    const opt = fc.record({
      mss: fc.option(fc.integer({ min: 0, max: 65535 }), { nil: undefined }),
      wscale: fc.option(fc.integer({ min: 0, max: 14 }), { nil: undefined }),
      sackPermitted: fc.boolean(),
      ts: fc.option(fc.record({ val: fc.nat(), ecr: fc.nat() }), { nil: undefined }),
      sack: fc.option(
        fc.array(fc.nat(), { minLength: 2, maxLength: 6 }).map((a) => a.slice(0, a.length & ~1)),
        { nil: undefined },
      ),
    });
    fc.assert(
      fc.property(opt, fc.uint8Array({ maxLength: 40 }), (o, payload) => {
        const repr: TcpEmit = { srcPort: 1000, dstPort: 80, seq: 7, ack: 9, flags: ACK, window: 1234, ...o };
        // Combinations that do not fit the 40 bytes of options never occur (SACK blocks ride on
        // data segments, at most 3 of them beside a timestamp).
        fc.pre(optionsLength(repr) <= 40);
        const hl = 20 + optionsLength(repr);
        const buf = new Uint8Array(hl + payload.length);
        buf.set(payload, hl);
        expect(emitTcp(buf, 0, repr, payload.length, src, dst)).toBe(hl);
        const s = newSegment();
        expect(parseTcp(buf, s)).toBeUndefined();
        expect(tcpChecksumOk(buf, src, dst)).toBe(true);
        expect(s.mss).toBe(o.mss ?? -1);
        expect(s.wscale).toBe(o.wscale ?? -1);
        expect(s.sackPermitted).toBe(o.sackPermitted);
        expect(s.hasTimestamp).toBe(o.ts !== undefined);
        if (o.ts) expect([s.tsVal, s.tsEcr]).toEqual([o.ts.val, o.ts.ecr]);
        const n = o.sack?.length ? o.sack.length / 2 : 0;
        expect(s.sackCount).toBe(n);
        expect(s.sack.slice(0, 2 * n)).toEqual(o.sack?.slice(0, 2 * n) ?? []);
        expect([...s.payload]).toEqual([...payload]);
      }),
    );
  });

  it("a data segment's timestamp is laid out NOP NOP TS (RFC 7323 Appendix A, the kernel's fast path)", () => {
    const repr: TcpEmit = { srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: ACK, window: 1, ts: { val: 1, ecr: 2 } };
    const buf = new Uint8Array(20 + optionsLength(repr));
    emitTcp(buf, 0, repr, 0, src, dst);
    expect([...buf.subarray(20, 24)]).toEqual([1, 1, 8, 10]);
    expect(buf.length).toBe(32);
  });

  it("malformed options are refused, unknown ones skipped", () => {
    const s = newSegment();
    const mk = (opts: number[]) => {
      const b = new Uint8Array(20 + ((opts.length + 3) & ~3));
      b[12] = (b.length / 4) << 4;
      b.set(opts, 20);
      return b;
    };
    expect(parseTcp(mk([2, 3, 5]), s)).toBe("bad_option"); // MSS of length 3
    expect(parseTcp(mk([5, 6, 0, 0, 0, 0]), s)).toBe("bad_option"); // SACK without a whole block
    expect(parseTcp(mk([99, 4, 0, 0]), s)).toBeUndefined(); // unknown kind: skipped
    expect(parseTcp(mk([8, 40]), s)).toBe("bad_option"); // runs past the header
  });
});
