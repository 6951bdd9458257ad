// A stack on a TAP keeps its process alive (the TAP's fd poll, like an open socket), and
// stack.unref() lets the process exit anyway; closing the stack does too. Children in a namespace.
import { describe, expect, it } from "vitest";
import { privileged, useNetns, ifname } from "../helpers/netns.js";
import { lives } from "../helpers/lives.js";
import { udpbench } from "../helpers/udpbench.js";

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

  it("an unref'd TAP stack exits cleanly while frames keep arriving (nothing runs into the torn-down JS)", async () => {
    // A persistent TAP the children attach to in turn, flooded all along (a permanent neighbour
    // entry: the kernel keeps sending whether a stack answers or not). Before the addon stopped
    // its reader in an environment cleanup hook, 56 of 60 such exits died of SIGSEGV.
    const tap = ifname("rfe");
    await ctx.ns.ip("tuntap", "add", tap, "mode", "tap");
    await ctx.ns.kernelSide(tap, "198.18.0.1/24", "");
    await ctx.ns.ip("neigh", "replace", "198.18.0.2", "lladdr", "02:00:00:00:00:02", "dev", tap, "nud", "permanent");
    const flood = ctx.ns.spawn(udpbench(), ["flood", "198.18.0.2", "9", "64", "60", "100000"]);
    try {
      const ends: string[] = [];
      for (let i = 0; i < 6; i++) ends.push(await lives(`${tapStack(tap)}\nstack.unref();`, 3000));
      expect(ends).toEqual(Array(6).fill("exited"));
    } finally {
      flood.kill("SIGKILL");
    }
  });
});
