// paf serve whose TAP is deleted under it: a graceful stop, then a non-zero exit that says why
// (a supervisor with restart-on-failure must see a failure, not a clean exit).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Netns, privileged } from "../helpers/netns.js";
import { startCli } from "../helpers/cli.js";

const run = privileged();

describe.skipIf(!run)("paf serve when its TAP goes away", () => {
  let ns: Netns;
  beforeAll(async () => {
    ns = await Netns.create("tapgone");
  });
  afterAll(async () => ns?.destroy());

  it("exits 1 naming the TAP", async () => {
    const tap = "pafg" + (process.pid % 100000);
    const { child, output } = await startCli(["serve", "--tap", tap, "--tap-netns", ns.name, "--ipv4", "198.18.0.2/24", "--https", "443"], /^listening/);
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    await ns.ip("link", "del", tap);
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r("still running"), 10_000))]);
    expect(code, output()).toBe(1);
    expect(output()).toMatch(new RegExp(`paf: ENODEV: TAP ${tap} failed .*the server stopped`));
  }, 20_000);
});
