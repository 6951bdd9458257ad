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
    // Side by side: each child has its own TAP, and a slow start of one does not delay the others.
    const [plain, unrefd, refdAgain, closed] = await Promise.all([
      lives(tapStack(ifname("rfa")), 1500),
      lives(tapStack(ifname("rfb")) + "\nstack.unref();", 3000),
      lives(tapStack(ifname("rfc")) + "\nstack.unref(); stack.ref();", 1500),
      lives(tapStack(ifname("rfd")) + "\nawait stack.close();", 3000),
    ]);
    expect({ plain, unrefd, refdAgain, closed }).toEqual({ plain: "alive", unrefd: "exited", refdAgain: "alive", closed: "exited" });
  });
});
