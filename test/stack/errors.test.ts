// One error and validation convention for the stack (Node's codes), and one policy for bugs met
// while processing frames or firing timers: counted, logged once per kind, never fatal.
import { describe, expect, it } from "vitest";
import { Stack } from "../../stack/stack.js";
import { VirtualClock } from "../../stack/core/clock.js";
import { SeededRandom } from "../../stack/core/random.js";
import { errnoError } from "../../stack/core/errors.js";
import { resolveOptions, validatePort } from "../../stack/core/validate.js";
import { CaptureNetif } from "../helpers/capture.js";
import { STACK_MAC, arpReply, ipv4Frame, udpDatagram } from "../helpers/frames.js";

function stack(limits = {}) {
  const netif = new CaptureNetif();
  const clock = new VirtualClock();
  const s = Stack.create({ netif, mac: STACK_MAC, ipv4: { address: "198.18.0.2/24" }, clock, random: new SeededRandom(1), limits });
  netif.inject(arpReply());
  netif.take();
  return { netif, clock, stack: s };
}

describe("bugs inside the stack", () => {
  it("an exception while handling frames is counted every time, logged once per kind, and the stack keeps answering", () => {
    const { netif, stack: s } = stack();
    const logged: unknown[] = [];
    s.onInternalError = (e) => logged.push(e);
    const sock = s.udp.createSocket("udp4");
    sock.on("message", () => {
      throw new Error("handler bug");
    });
    sock.bind(9);
    for (let i = 0; i < 5; i++) netif.inject(ipv4Frame(17, udpDatagram(1000, 9, new Uint8Array([i]))));
    expect(s.stats().stack!["internal_errors"]).toBe(5);
    expect(logged).toHaveLength(1);
    expect((logged[0] as Error).message).toBe("handler bug");
    // Still alive: UDP to a closed port gets its ICMP port unreachable.
    netif.inject(ipv4Frame(17, udpDatagram(1000, 10, new Uint8Array([1]))));
    expect(netif.take()).toHaveLength(1);
  });

  it("a timer callback that throws is counted and logged once, never an uncaught exception", () => {
    const { clock, stack: s } = stack();
    const logged: unknown[] = [];
    s.onInternalError = (e) => logged.push(e);
    for (let i = 0; i < 3; i++) {
      const t = s.timers.timer(() => {
        throw new TypeError("timer bug");
      });
      s.timers.arm(t, 10);
    }
    clock.advance(20);
    expect(s.stats().stack!["internal_errors"]).toBe(3);
    expect(logged).toHaveLength(1);
  });
});

describe("errors and options carry Node's codes", () => {
  it("system errors have code, negative errno and syscall like libuv's", () => {
    const e = errnoError("ECONNREFUSED", "connect", "198.18.0.2:80");
    expect(e).toMatchObject({ code: "ECONNREFUSED", errno: -111, syscall: "connect", message: "connect ECONNREFUSED 198.18.0.2:80" });
  });

  it("ports are validated like node:net (ERR_SOCKET_BAD_PORT)", () => {
    expect(validatePort("80")).toBe(80);
    for (const bad of [70000, -1, 1.5, "x", NaN, null]) expect(() => validatePort(bad)).toThrow(expect.objectContaining({ code: "ERR_SOCKET_BAD_PORT" }));
    expect(() => validatePort(0, "Port", false)).toThrow(/Port should be > 0 and < 65536. Received 0/);
  });

  it("options get defaults, and wrong values fail at once naming the option", () => {
    interface O {
      size?: number;
      on?: boolean;
      mode?: "a" | "b";
    }
    const spec = { size: [10, 1, 100], on: [true], mode: { default: "a", oneOf: ["a", "b"] } } as const;
    expect(resolveOptions<O>("limits.x", {}, spec)).toEqual({ size: 10, on: true, mode: "a" });
    expect(() => resolveOptions<O>("limits.x", { size: 0 }, spec)).toThrow(expect.objectContaining({ code: "ERR_OUT_OF_RANGE", message: expect.stringContaining('"limits.x.size"') }));
    expect(() => resolveOptions<O>("limits.x", { size: 2.5 }, spec)).toThrow(expect.objectContaining({ code: "ERR_OUT_OF_RANGE" }));
    expect(() => resolveOptions<O>("limits.x", { mode: "c" as "a" }, spec)).toThrow(expect.objectContaining({ code: "ERR_INVALID_ARG_VALUE" }));
    expect(() => resolveOptions<O>("limits.x", { sise: 3 } as O, spec)).toThrow(/limits\.x\.sise' is not a known option/);
  });

  it("a stack's bounds are range-checked at Stack.create", () => {
    expect(() => stack({ arp: { cacheSize: 0 } })).toThrow(expect.objectContaining({ code: "ERR_OUT_OF_RANGE", message: expect.stringContaining("limits.arp.cacheSize") }));
    expect(() => stack({ ndp: { maxSolicit: -1 } })).not.toThrow(); // no IPv6 on this stack: NDP options unused
  });
});
