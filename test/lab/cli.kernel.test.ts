// `paf lab run|up|down`: usage and argument errors, curl end to end through an impaired path to a
// paf stack and to a kernel server routed through paf, exit statuses, --pcap, and a background lab.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { ensureBuilt, runCli } from "../helpers/cli.js";
import { requirePrivileged, sh, waitFor } from "../helpers/netns.js";
import { readPcap } from "../../stack/netif/pcap.js";
import { expectedPatternSha256 } from "../helpers/pattern.js";

const run = requirePrivileged();
const dir = mkdtempSync(join(tmpdir(), "paf-labcli-"));

beforeAll(() => {
  ensureBuilt();
  process.env.PAF_LAB_DIR = join(dir, "state");
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const netnsList = async (): Promise<string> => (await sh("ip", ["netns", "list"])).stdout;
const removedNamespaces = (stderr: string): string[] => /removed (.*)/.exec(stderr)?.[1]?.split(", ") ?? [];

describe("paf lab: usage and bad arguments", () => {
  it("--help prints the usage on stdout and exits 0", async () => {
    for (const args of [
      ["lab", "--help"],
      ["lab", "run", "--help"],
      ["lab", "up", "--help"],
    ]) {
      const r = await runCli(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^usage: paf lab run/);
      expect(r.stdout).toContain("--loss-ge");
    }
  });

  const cases: Array<[string[], RegExp]> = [
    [["lab"], /usage: paf lab run/],
    [["lab", "frob"], /unknown subcommand "frob"/],
    [["lab", "run"], /needs a command/],
    [["lab", "run", "--loss", "3x", "--", "true"], /--loss: "3x" is not a percentage/],
    [["lab", "run", "--loss", "150%", "--", "true"], /--loss: "150%" is more than 100%/],
    [["lab", "run", "--delay", "fast", "--", "true"], /--delay: "fast" is not a time/],
    [["lab", "run", "--delay", "40ms,x", "--", "true"], /--delay: "x" is not a time/],
    [["lab", "run", "--rate", "100mbitz", "--", "true"], /--rate: "100mbitz" is not a rate/],
    [["lab", "run", "--burst", "10kb", "--", "true"], /--burst needs --rate/],
    [["lab", "run", "--queue", "10", "--", "true"], /--queue needs --rate/],
    [["lab", "run", "--limit", "0", "--", "true"], /--limit must be between 1 and/],
    [["lab", "run", "--loss-ge", "1%", "--", "true"], /--loss-ge: expected P%,R%/],
    [["lab", "run", "--loss-ge", "1%,0%", "--", "true"], /--loss-ge: R .* must be more than 0%/],
    [["lab", "run", "--reorder", "5%,soon", "--", "true"], /--reorder: "soon" is not a time/],
    [["lab", "run", "--seed", "x", "--", "true"], /--seed expects a whole number/],
    [["lab", "run", "--mtu", "100", "--", "true"], /--mtu must be between 1280 and 9000/],
    [["lab", "run", "--peer", "router", "--", "true"], /--peer: expected stack or kernel, got "router"/],
    [["lab", "run", "--server", "x", "--", "true"], /--server needs --peer kernel/],
    [["lab", "run", "--timeout", "0s", "--", "true"], /--timeout must be more than 0/],
    [["lab", "run", "--ttl", "1h", "--", "true"], /--ttl is for paf lab up/],
    [["lab", "run", "--bogus", "--", "true"], /Unknown option '--bogus'/],
    [["lab", "run", "stray", "--", "true"], /unexpected "stray" before --/],
    [["lab", "up"], /needs exactly one NAME/],
    [["lab", "up", "Bad_Name"], /NAME: "Bad_Name" must be/],
    [["lab", "up", "x", "--timeout", "1s"], /--timeout is for paf lab run/],
    [["lab", "down", "x", "--loss", "1%"], /paf lab down takes only NAME \(got --loss\)/],
  ];
  for (const [args, msg] of cases) {
    it(`paf ${args.join(" ")}: exit 2, ${msg}`, async () => {
      const r = await runCli(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(msg);
    });
  }
});

describe.skipIf(!run)("paf lab run", () => {
  it("curl through 3% loss, 40 ms delay and a 100 mbit rate to a paf stack: the body arrives whole, the setup is printed, nothing is left", async () => {
    const pcap = join(dir, "run.pcap");
    const r = await runCli(
      ["lab", "run", "--loss", "3%", "--delay", "40ms", "--rate", "100mbit", "--seed", "9", "--pcap", pcap, "--", "sh", "-c", "curl -sS --max-time 60 http://198.18.0.2/bytes/300000 | sha256sum"],
      90_000,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split(" ")[0]).toBe(expectedPatternSha256(300000));
    expect(r.stderr).toMatch(/namespace paf-lab\d+-\w+ \(commands run here\): kernel 198\.18\.0\.1 2001:db8::1/);
    expect(r.stderr).toContain("peer: paf stack 198.18.0.2 2001:db8::2");
    expect(r.stderr).toContain("path, each way: loss 3% delay 40ms rate 100mbit burst 0b queue 100 (seed 9)");
    expect(r.stderr).toMatch(/to the stack: \d+ frames, [1-9]\d* lost/);
    const gone = removedNamespaces(r.stderr);
    expect(gone.length).toBe(1);
    expect(await netnsList()).not.toContain(gone[0]);
    // The capture is the kernel's wire: its HTTP request and the stack's data segments.
    const frames = readPcap(pcap);
    expect(frames.length).toBeGreaterThan(200);
  });

  it("--peer kernel --server: curl to a kernel HTTP server routed through paf's bridge", async () => {
    const www = join(dir, "www");
    rmSync(www, { recursive: true, force: true });
    const { mkdirSync } = await import("node:fs");
    mkdirSync(www);
    const blob = randomBytes(200_000);
    writeFileSync(join(www, "blob"), blob);
    const r = await runCli(
      [
        "lab",
        "run",
        "--peer",
        "kernel",
        "--server",
        `python3 -m http.server 8000 --bind 198.18.0.2 --directory ${www}`,
        "--loss",
        "2%",
        "--delay",
        "10ms,5ms",
        "--",
        "sh",
        "-c",
        "curl -sS --max-time 60 http://198.18.0.2:8000/blob | sha256sum",
      ],
      90_000,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split(" ")[0]).toBe(createHash("sha256").update(blob).digest("hex"));
    expect(r.stderr).toMatch(/peer: namespace paf-lab\d+-\w+: kernel 198\.18\.0\.2 2001:db8::2 on \S+, joined through paf's bridge/);
    expect(r.stderr).toContain("path, each way: loss 2% delay 10ms jitter 5ms");
    expect(r.stderr).toMatch(/to the peer: \d+ frames/);
    const gone = removedNamespaces(r.stderr);
    expect(gone.length).toBe(2);
    const listed = await netnsList();
    for (const n of gone) expect(listed).not.toContain(n);
    // The server was killed with its namespace.
    expect((await sh("pgrep", ["-f", `http.server 8000 --bind 198.18.0.2 --directory ${www}`]).catch(() => ({ stdout: "" }))).stdout).toBe("");
  });

  it("exits with the command's status, and 124 when --timeout kills it", async () => {
    expect((await runCli(["lab", "run", "--", "sh", "-c", "exit 7"], 30_000)).code).toBe(7);
    const t0 = Date.now();
    const r = await runCli(["lab", "run", "--timeout", "500ms", "--", "sleep", "30"], 30_000);
    expect(r.code).toBe(124);
    expect(r.stderr).toContain("ran out of time");
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it("SIGINT to paf ends the command, removes the lab and exits 130", async () => {
    const { startCli } = await import("../helpers/cli.js");
    const { child, output } = await startCli(["lab", "run", "--", "sh", "-c", "echo started; sleep 30"], /^started/);
    const ended = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    child.kill("SIGINT");
    expect(await ended).toBe(130);
    expect(output()).toContain("interrupted by SIGINT");
    const gone = removedNamespaces(output());
    expect(gone.length).toBe(1);
    expect(await netnsList()).not.toContain(gone[0]);
  });
});

describe.skipIf(!run)("paf lab up / down", () => {
  const name = `t${process.pid}`;
  afterAll(async () => {
    await runCli(["lab", "down", name]);
  });

  it("up leaves a named lab running with a pid file; commands reach the stack through it; down removes it all", async () => {
    const up = await runCli(["lab", "up", name, "--delay", "20ms", "--ttl", "5m"], 40_000);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toContain(`namespace paf-${name} (commands run here)`);
    expect(up.stdout).toContain("path, each way: delay 20ms");
    const pid = Number(readFileSync(join(dir, "state", `${name}.pid`), "utf8"));
    expect(() => process.kill(pid, 0)).not.toThrow();
    const { stdout } = await sh("ip", ["netns", "exec", `paf-${name}`, "ping", "-c", "3", "-i", "0.2", "198.18.0.2"]);
    expect(stdout).toMatch(/3 received/);
    expect(Number(/= [\d.]+\/([\d.]+)\//.exec(stdout)![1])).toBeGreaterThanOrEqual(40);
    // A second lab of that name is refused while the first runs.
    const again = await runCli(["lab", "up", name], 20_000);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`lab ${name} is already up (pid ${pid})`);
    const down = await runCli(["lab", "down", name], 20_000);
    expect(down.code).toBe(0);
    expect(down.stdout).toContain(`removed lab ${name}`);
    await waitFor(() => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    }, "the lab's process to exit");
    expect(await netnsList()).not.toContain(`paf-${name}`);
    expect(existsSync(join(dir, "state", `${name}.pid`))).toBe(false);
    expect(readFileSync(join(dir, "state", `${name}.log`), "utf8")).toContain("stopping (SIGTERM)");
  });

  it("down cleans up after a lab whose process was killed; down of no lab exits 1", async () => {
    const up = await runCli(["lab", "up", name, "--peer", "kernel", "--server", "sleep 600 & nc -lk 198.18.0.2 5000"], 40_000);
    expect(up.code, up.stderr).toBe(0);
    const pid = Number(readFileSync(join(dir, "state", `${name}.pid`), "utf8"));
    process.kill(pid, "SIGKILL");
    const down = await runCli(["lab", "down", name], 20_000);
    expect(down.code).toBe(0);
    expect(down.stdout).toContain(`cleaned up after it: paf-${name}, paf-${name}-peer`);
    const listed = await netnsList();
    expect(listed).not.toContain(`paf-${name}`);
    expect((await sh("pgrep", ["-f", "nc -lk 198.18.0.2 5000"]).catch(() => ({ stdout: "" }))).stdout).toBe("");
    const none = await runCli(["lab", "down", name]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(`no lab named ${name}`);
  });
});
