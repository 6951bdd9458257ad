// The TAP netif on its own: frames both ways with the kernel, clear errors, idempotent close.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Netns, privileged, waitFor } from "../helpers/netns.js";
import { TapNetif } from "../../stack/netif/tap.js";
import { emitEthernet } from "../../stack/wire/ethernet.js";
import { emitArp, parseArp } from "../../stack/wire/arp.js";
import { parseIPv4, parseMac } from "../../stack/wire/addr.js";

const run = privileged();

describe.skipIf(!run)("TapNetif", () => {
  let ns: Netns;
  beforeAll(async () => {
    ns = await Netns.create("tap");
  });
  afterAll(async () => ns?.destroy());

  it("creates the TAP inside a namespace, receives the kernel's frames and sends frames the kernel answers", async () => {
    const name = "paftn" + (process.pid % 10000);
    const tap = TapNetif.open(name, { netns: ns.path, up: true });
    const got: Uint8Array[] = [];
    tap.start({ frame: (f) => got.push(Uint8Array.prototype.slice.call(f)) });
    const link = await ns.ip("link", "show", name);
    expect(link.stdout).toContain("UP");
    await ns.ip("addr", "add", "198.18.0.1/24", "dev", name);
    // Our ARP request for the kernel's address: the kernel must answer it.
    const me = parseMac("02:00:00:00:00:77");
    const f = new Uint8Array(60);
    emitEthernet(f, new Uint8Array(6).fill(255), me, 0x0806);
    emitArp(f.subarray(14), { op: 1, sha: me, spa: parseIPv4("198.18.0.77"), tha: new Uint8Array(6), tpa: parseIPv4("198.18.0.1") });
    expect(tap.send(f)).toBe(true);
    await waitFor(() => got.some((x) => x[12] === 0x08 && x[13] === 0x06 && x[21] === 2), "the kernel's ARP reply");
    const reply = got.find((x) => x[12] === 0x08 && x[13] === 0x06 && x[21] === 2)!;
    const a = parseArp(reply.subarray(14));
    if (typeof a === "string") throw new Error(a);
    expect([...a.tpa]).toEqual([...parseIPv4("198.18.0.77")]);
    expect(tap.stats().txFrames).toBe(1);
    expect(tap.stats().rxFrames).toBeGreaterThanOrEqual(1);
    await tap.close();
    await tap.close(); // idempotent
    expect(tap.send(f)).toBe(false);
  });

  it("names the problem: a too-long name is EINVAL, a TAP in use is EBUSY", async () => {
    expect(() => TapNetif.open("a-name-longer-than-15", { netns: ns.path })).toThrow(expect.objectContaining({ code: "EINVAL" }));
    const name = "paftb" + (process.pid % 10000);
    const t = TapNetif.open(name, { netns: ns.path });
    expect(() => TapNetif.open(name, { netns: ns.path })).toThrow(expect.objectContaining({ code: "EBUSY", message: expect.stringMatching(/in use/) }));
    await t.close();
    expect(() => TapNetif.open("x", { netns: "/var/run/netns/does-not-exist" })).toThrow(/ip netns add/);
  });
});
