// Path MTU discovery for TCP (RFC 1191 / RFC 8201): an ICMP "fragmentation needed" / "packet too
// big" lowers the MSS of the connection and the lost segment is resent at the smaller size.
import { describe, expect, it } from "vitest";
import { connected, pattern, sha256, collect } from "./helpers.js";
import { emitEthernet, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from "../../../stack/wire/ethernet.js";
import { emitIpv4 } from "../../../stack/wire/ipv4.js";
import { emitIpv6 } from "../../../stack/wire/ipv6.js";
import { emitIcmp } from "../../../stack/wire/icmp.js";

for (const family of [4, 6] as const) {
  describe(`PMTU discovery over IPv${family}`, () => {
    it("a too-big error lowers the segment size and the transfer completes intact", async () => {
      const p = await connected({ family }, false);
      const { client: c, server } = p;
      const got = collect(server);
      const LIMIT = family === 4 ? 1000 : 1280;
      let errors = 0;
      let biggestAfter = 0;
      // A "router" between the stacks: packets over LIMIT are dropped and answered with ICMP.
      const send = p.fa.send.bind(p.fa);
      p.fa.send = (f: Uint8Array) => {
        const ipLen = f.length - 14;
        // Once the error has been processed, nothing bigger may leave.
        if ((p.a.stats().tcp!["pmtu_reductions"] ?? 0) > 0) biggestAfter = Math.max(biggestAfter, ipLen);
        if (ipLen <= LIMIT) return send(f);
        errors++;
        const quote = f.subarray(14, 14 + Math.min(ipLen, family === 4 ? 28 : 1232 - 40));
        const icmpLen = 8 + quote.length;
        const hdr = family === 4 ? 20 : 40;
        const frame = new Uint8Array(14 + hdr + icmpLen);
        emitEthernet(frame, f.subarray(6, 12), f.subarray(0, 6), family === 4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6);
        frame.set(quote, 14 + hdr + 8);
        const src = family === 4 ? f.subarray(14 + 16, 14 + 20) : f.subarray(14 + 24, 14 + 40); // the destination answers
        const dst = family === 4 ? f.subarray(14 + 12, 14 + 16) : f.subarray(14 + 8, 14 + 24);
        if (family === 4) {
          emitIcmp(frame, 14 + hdr, icmpLen, 3, 4, LIMIT);
          emitIpv4(frame, 14, { ident: 1, ttl: 64, protocol: 1, src, dst, payloadLen: icmpLen });
        } else {
          emitIcmp(frame, 14 + hdr, icmpLen, 2, 0, LIMIT, src, dst);
          emitIpv6(frame, 14, { nextHeader: 58, hopLimit: 64, src, dst, payloadLen: icmpLen });
        }
        queueMicrotask(() => p.a.eth.input(frame));
        return true;
      };
      const data = pattern(300_000);
      c.end(data);
      await p.until(() => got.ended, "transfer under a smaller path MTU");
      expect(sha256(got.data())).toBe(sha256(data));
      expect(errors).toBeGreaterThan(0);
      expect(p.a.stats().tcp!["pmtu_reductions"]).toBeGreaterThan(0);
      expect(biggestAfter).toBeLessThanOrEqual(LIMIT);
      expect(c.tcpInfo!.mss).toBeLessThanOrEqual(LIMIT - (family === 4 ? 40 : 60));
      await p.close();
    });
  });
}
