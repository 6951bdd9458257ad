// Runs the whole vitest suite, then prints the closing line
// "N passed, N failed[, N skipped][, N files failed to load]" from vitest's JSON report (CI reads
// that line). Tests are counted as tests: a file that fails to load (an import or syntax error, a
// throw at module level) has no tests and is counted on its own. Exit code: vitest's.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, existsSync } from "node:fs";

mkdirSync("test-artifacts", { recursive: true });
const out = "test-artifacts/vitest.json";
const args = ["vitest", "run", "--reporter=default", "--reporter=json", `--outputFile.json=${out}`, ...process.argv.slice(2)];
const r = spawnSync("npx", args, { stdio: "inherit", env: process.env });
let passed = 0,
  failed = 0,
  skipped = 0,
  unloaded = 0;
if (existsSync(out)) {
  const j = JSON.parse(readFileSync(out, "utf8"));
  passed = j.numPassedTests ?? 0;
  failed = j.numFailedTests ?? 0;
  skipped = (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0);
  unloaded = (j.testResults ?? []).filter((f) => f.status === "failed" && (f.assertionResults ?? []).length === 0).length;
} else {
  unloaded = 1;
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}${unloaded ? `, ${unloaded} file${unloaded === 1 ? "" : "s"} failed to load` : ""}`);
process.exit(r.status ?? 1);
