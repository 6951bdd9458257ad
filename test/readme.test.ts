// The README's code examples, as a user would meet them: every TypeScript/JavaScript block is
// extracted, type-checked under the project's strict settings against the package's public
// exports (`import ... from "paf"` resolves to the built package through its "exports"), and run.
//
// A block's info string says how it runs:
//   ```ts           type-checked, then run in this process's namespace (in-process stacks only)
//   ```ts tap       run inside a fresh network namespace where tap0 exists, its kernel side
//                   198.18.0.1/24 and 2001:db8::1/64 (root)
//   ```ts check     type-checked only (it needs a peer the test cannot provide, e.g. a CA)
//   ```ts root      type-checked here; it makes namespaces of its own (root), and
//                   test/lab/readme.test.ts runs it and checks what it prints
// Every run must exit 0 within its time limit.
import { describe, expect, it, beforeAll } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, ensureBuilt } from "./helpers/cli.js";
import { requirePrivileged, withNetns } from "./helpers/netns.js";

const privileged = requirePrivileged();

interface Block {
  /** 1-based README line of the block's first code line. */
  line: number;
  mode: "run" | "tap" | "check" | "root";
  code: string;
}

function readmeBlocks(text: string): Block[] {
  const lines = text.split("\n");
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^```(ts|typescript|js|javascript)\b\s*(.*)$/.exec(lines[i]!);
    if (!m) continue;
    const tag = m[2]!.trim();
    if (tag !== "" && tag !== "tap" && tag !== "check" && tag !== "root") throw new Error(`README.md:${i + 1}: unknown block tag "${tag}" (use tap, check or root)`);
    const start = i + 1;
    let end = start;
    while (end < lines.length && lines[end] !== "```") end++;
    if (end === lines.length) throw new Error(`README.md:${i + 1}: unterminated code block`);
    blocks.push({ line: start + 1, mode: tag === "" ? "run" : tag, code: lines.slice(start, end).join("\n") + "\n" });
    i = end;
  }
  return blocks;
}

const DIR = join(ROOT, "test-artifacts", "readme");
const blocks = readmeBlocks(readFileSync(join(ROOT, "README.md"), "utf8"));
const file = (b: Block) => `example-${b.line}`;

function runNode(args: string[], timeoutMs: number) {
  const r = spawnSync(args[0]!, args.slice(1), { cwd: ROOT, encoding: "utf8", timeout: timeoutMs, killSignal: "SIGKILL" });
  return { code: r.status, out: `${r.stdout ?? ""}${r.stderr ?? ""}`, timedOut: r.error !== undefined };
}

describe("README code examples", () => {
  beforeAll(() => {
    ensureBuilt();
    rmSync(DIR, { recursive: true, force: true });
    mkdirSync(DIR, { recursive: true });
    for (const b of blocks) writeFileSync(join(DIR, `${file(b)}.ts`), b.code);
    // The project's own compiler settings (strict), the examples as the only inputs. The folder is
    // inside the package, so "paf" resolves to the package itself through its "exports".
    writeFileSync(
      join(DIR, "tsconfig.json"),
      JSON.stringify({ extends: "../../tsconfig.json", compilerOptions: { rootDir: ".", outDir: "out", declaration: false, sourceMap: false, noUnusedLocals: false }, include: ["*.ts"] }, null, 2),
    );
  });

  it("has examples of every kind, each block tagged", () => {
    expect(blocks.filter((b) => b.mode === "run").length).toBeGreaterThanOrEqual(4);
    expect(blocks.filter((b) => b.mode === "tap").length).toBeGreaterThanOrEqual(1);
  });

  it('every block type-checks under the strict settings against `import from "paf"`', () => {
    const r = runNode([process.execPath, join(ROOT, "node_modules/typescript/bin/tsc"), "-p", join(DIR, "tsconfig.json")], 120_000);
    // Point each diagnostic at its README line.
    const out = r.out.replace(/example-(\d+)\.ts\((\d+),(\d+)\)/g, (_m, start: string, l: string, c: string) => `README.md:${Number(start) + Number(l) - 1}:${c}`);
    expect(out).toBe("");
    expect(r.code).toBe(0);
    for (const b of blocks) expect(readFileSync(join(DIR, "out", `${file(b)}.js`), "utf8")).toMatch(/from "paf"/);
  });

  for (const b of blocks.filter((x) => x.mode === "run")) {
    it(`README.md:${b.line} runs and exits 0`, async () => {
      const run = (prefix: string[]) => {
        const r = runNode([...prefix, process.execPath, join(DIR, "out", `${file(b)}.js`)], 45_000);
        expect(r.timedOut, `timed out:\n${r.out}`).toBe(false);
        expect(r.code, r.out).toBe(0);
      };
      // In a namespace of its own where we can: an example that reached for the kernel's sockets by
      // mistake finds no route there instead of sending to 198.18.0.0/15 on the host's network.
      if (privileged) await withNetns("rdr", async (ns) => run(["ip", "netns", "exec", ns.name]));
      else run([]);
    });
  }

  for (const b of blocks.filter((x) => x.mode === "tap")) {
    it.skipIf(!privileged)(`README.md:${b.line} runs over tap0 in a namespace and exits 0`, async () => {
      await withNetns("rdm", async (ns) => {
        await ns.exec("ip", ["tuntap", "add", "tap0", "mode", "tap"]);
        await ns.kernelSide("tap0");
        const r = runNode(["ip", "netns", "exec", ns.name, process.execPath, join(DIR, "out", `${file(b)}.js`)], 45_000);
        expect(r.timedOut, `timed out:\n${r.out}`).toBe(false);
        expect(r.code, r.out).toBe(0);
      });
    });
  }
});
