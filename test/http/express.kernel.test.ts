// An Express application through `paf serve --app`: it runs on the userspace stack unchanged
// (routing, JSON bodies, middleware), fetched with curl from the kernel side of the TAP.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import { ensureBuilt, startCli, ROOT } from "../helpers/cli.js";
import { Netns, privileged } from "../helpers/netns.js";

const run = privileged();

describe.skipIf(!run)("an Express app on the userspace stack", () => {
  let ns: Netns;
  let child: ChildProcess | undefined;
  beforeAll(async () => {
    ensureBuilt();
    ns = await Netns.create("exp");
    const dir = mkdtempSync(join(tmpdir(), "paf-express-"));
    const app = join(dir, "app.mjs");
    writeFileSync(
      app,
      `import express from ${JSON.stringify(join(ROOT, "node_modules", "express", "index.js"))};
const app = express();
app.use(express.json());
app.use((req, res, next) => { res.set("x-served-by", "paf"); next(); });
app.get("/hello/:name", (req, res) => res.send("hello " + req.params.name));
app.post("/sum", (req, res) => res.json({ sum: req.body.values.reduce((a, b) => a + b, 0) }));
export default app;
`,
    );
    const tap = "pafx" + (process.pid % 10000);
    const started = await startCli(["serve", "--tap", tap, "--tap-netns", ns.name, "--ipv4", "198.18.0.2/24", "--http", "80", "--app", app], /^listening/);
    child = started.child;
    await ns.kernelSide(tap, "198.18.0.1/24", undefined);
  });
  afterAll(async () => {
    child?.kill("SIGTERM");
    await ns?.destroy();
  });

  it("routes, middleware headers and JSON bodies work over paf", async () => {
    const hello = await ns.exec("curl", ["-sS", "-i", "--max-time", "5", "http://198.18.0.2/hello/world"]);
    expect(hello.stdout).toMatch(/^HTTP\/1\.1 200/);
    expect(hello.stdout).toMatch(/x-served-by: paf/i);
    expect(hello.stdout).toMatch(/hello world$/);
    const sum = await ns.exec("curl", ["-sS", "--max-time", "5", "-H", "content-type: application/json", "-d", '{"values":[1,2,3,4]}', "http://198.18.0.2/sum"]);
    expect(JSON.parse(sum.stdout)).toEqual({ sum: 10 });
    const missing = await ns.exec("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "http://198.18.0.2/nope"]);
    expect(missing.stdout).toBe("404");
  });
});
