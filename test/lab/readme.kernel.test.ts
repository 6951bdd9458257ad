// The README's namespace examples work as written: the "Testing in namespaces" TypeScript block
// runs against the built package (imported as "paf"), and the `paf serve` recipe of the CLI
// section works when pasted into a shell.
import { beforeAll, describe, expect, it } from "vitest";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ts from "typescript";
import { CLI, ensureBuilt, ROOT } from "../helpers/cli.js";
import { requirePrivileged, sh } from "../helpers/netns.js";
import { removeNetns } from "../../lab/netns.js";
import { readPcap } from "../../stack/netif/pcap.js";

const run = requirePrivileged();
const README = readFileSync(join(ROOT, "README.md"), "utf8");

/** The first ```LANG block after `after` in the README. */
function block(after: string, lang: string): string {
  const at = README.indexOf(after);
  if (at < 0) throw new Error(`README has no "${after}"`);
  const start = README.indexOf("```" + lang + "\n", at);
  if (start < 0) throw new Error(`README has no ${lang} block after "${after}"`);
  const body = start + lang.length + 4;
  return README.slice(body, README.indexOf("```", body));
}

beforeAll(() => ensureBuilt(), 120_000);

describe.skipIf(!run)("README: Testing in namespaces", () => {
  it("the TypeScript example runs as written against the package", async () => {
    const src = block("## Testing in namespaces", "ts root");
    expect(src).toContain('from "paf"');
    const js = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 } }).outputText;
    // Inside the package, so that "paf" resolves to it (package self-reference through "exports").
    mkdirSync(join(ROOT, "test-artifacts"), { recursive: true });
    const file = join(ROOT, "test-artifacts", `readme-lab-${process.pid}.mjs`);
    writeFileSync(file, js);
    const cwd = mkdtempSync(join(tmpdir(), "paf-readme-"));
    const before = (await sh("ip", ["netns", "list"])).stdout;
    try {
      const { stdout } = await sh(process.execPath, [file], { timeoutMs: 60_000, cwd }).catch((e: Error) => {
        throw new Error(`the README example failed: ${e.message}`);
      });
      expect(stdout).toContain("hello /lab");
      expect(stdout).toMatch(/5 packets transmitted, [1-5] received/);
      expect(stdout).toMatch(/aToB: \{\s+frames: \d+/);
      expect(readPcap(join(cwd, "a.pcap")).length).toBeGreaterThan(5);
      // Everything the example made is gone.
      const after = (await sh("ip", ["netns", "list"])).stdout.split("\n").filter((l) => l.startsWith("paf-lab"));
      for (const l of after) expect(before).toContain(l);
    } finally {
      rmSync(file, { force: true });
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it("the paf serve recipe of the CLI section works when pasted", async () => {
    const src = block("Example (the kernel side of the TAP gets 198.18.0.1", "sh");
    expect(src).toContain("paf serve --tap tap0 --tap-netns lab");
    // The block's namespace "lab" becomes one of our own; `paf` is the built CLI.
    const ns = `paf-readme${process.pid}`;
    const script = src.replace(/\blab\b/g, ns);
    const bin = mkdtempSync(join(tmpdir(), "paf-bin-"));
    writeFileSync(join(bin, "paf"), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"\n`);
    chmodSync(join(bin, "paf"), 0o755);
    try {
      const { stdout } = await sh("bash", ["-e", "-c", script], { timeoutMs: 30_000, env: { PATH: `${bin}:${process.env.PATH}` } });
      expect(stdout).toMatch(/\d+ packets transmitted, 3 received/);
      expect(existsSync(`/var/run/netns/${ns}`)).toBe(false);
    } finally {
      // If it failed half-way: the background paf serve (in the root namespace) and the namespace.
      await sh("pkill", ["-KILL", "-f", "--", `--tap-netns ${ns} `]).catch(() => {});
      await removeNetns(ns).catch(() => {});
      rmSync(bin, { recursive: true, force: true });
    }
  });
});
