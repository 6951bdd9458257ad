// SipHash-2-4 against the reference vectors (key 00..0f, message 00..len-1): lengths 0 and 15
// from the paper, 8 and 20 from a BigInt transcription of its pseudo-code.
import { describe, expect, it } from "vitest";
import { SipHash } from "../../../stack/core/siphash.js";

const key = Uint8Array.from({ length: 16 }, (_, i) => i);
const msg = (n: number) => Uint8Array.from({ length: n }, (_, i) => i);
const hex = (s: SipHash, m: Uint8Array) => {
  const lo = s.hash(m);
  return s.high.toString(16).padStart(8, "0") + lo.toString(16).padStart(8, "0");
};

describe("SipHash-2-4", () => {
  it("matches the paper's test vectors", () => {
    const s = new SipHash(key);
    expect(hex(s, msg(0))).toBe("726fdb47dd0e0e31");
    expect(hex(s, msg(15))).toBe("a129ca6149be45e5");
    expect(hex(s, msg(8))).toBe("93f5f5799a932462");
    expect(hex(s, msg(20))).toBe("bed65cf21aa2ee98");
  });
  it("hashes only the first len bytes, and depends on the key", () => {
    const s = new SipHash(key);
    const m = msg(20);
    expect(s.hash(m, 15)).toBe(new SipHash(key).hash(msg(15)));
    const k2 = key.slice();
    k2[0] = 1;
    expect(new SipHash(k2).hash(m)).not.toBe(s.hash(m));
  });
});
