// A stack on a TAP keeps its process alive (the TAP's fd poll, like an open socket), and
// stack.unref() lets the process exit anyway; closing the stack does too. Children in a namespace.
import { describe, expect, it } from "vitest";
import { privileged, useNetns, ifname } from "../helpers/netns.js";
import { lives } from "../helpers/lives.js";

const run = privileged();

describe.skipIf(!run)("ref / unref of a TAP stack", () => {
  const ctx = useNetns("refs");
  const tapStack = (name: string) => `
const netif = paf.TapNetif.open(${JSON.stringify(name)}, { netns: ${JSON.stringify(ctx.ns.path)}, up: true });
const stack = paf.Stack.create({ netif, ipv4: { address: "198.18.0.2/24" } });`;

  it("the open TAP keeps the process alive; stack.unref() or stack.close() lets it exit", async () => {
    expect(await lives(tapStack(ifname("rfa")), 1500)).toBe("alive");
    expect(await lives(tapStack(ifname("rfb")) + "\nstack.unref();", 3000)).toBe("exited");
    expect(await lives(tapStack(ifname("rfc")) + "\nstack.unref(); stack.ref();", 1500)).toBe("alive");
    expect(await lives(tapStack(ifname("rfd")) + "\nawait stack.close();", 3000)).toBe("exited");
  });
});
