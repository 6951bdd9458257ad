// `paf serve`: argument errors name the problem; on a real TAP it serves ping and UDP echo and
// stops cleanly on SIGTERM.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI, ensureBuilt, runCli, startCli } from "../helpers/cli.js";
import { Netns, privileged, sh } from "../helpers/netns.js";

beforeAll(() => ensureBuilt(), 120_000);

describe("paf serve --host: the same app on the kernel's sockets (loopback)", () => {
  it("serves HTTP and HTTPS (self-signed, fingerprint printed), an --app module and --root files", async () => {
    const { mkdtempSync, writeFileSync, readdirSync, readFileSync, rmSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "paf-cli-"));
    // The server's own temporary directory: nothing of paf's may be left in it (no key files).
    const tmp = mkdtempSync(join(tmpdir(), "paf-tmpdir-"));
    writeFileSync(
      join(dir, "app.mjs"),
      "export default (req, res) => res.end('custom app ' + req.url + ' over HTTP/' + req.httpVersion + '\\n');\n" +
        // The module's upgrade hook takes Upgrade requests (a toy protocol: one line, then close).
        "export const upgrade = (req, socket) => socket.end('HTTP/1.1 101 Switching Protocols\\r\\nConnection: Upgrade\\r\\nUpgrade: toy\\r\\n\\r\\nupgraded ' + req.url + '\\n');\n",
    );
    writeFileSync(join(dir, "index.html"), "<h1>static paf</h1>\n");
    const port = 20000 + (process.pid % 20000);
    const certOut = join(dir, "served-cert.pem");
    const args = ["serve", "--host", "127.0.0.1", "--http", String(port), "--https", String(port + 1), "--cert-out", certOut, "--app", join(dir, "app.mjs"), "--root", dir];
    const { child, output } = await startCli(args, /^listening/, 15_000, { TMPDIR: tmp });
    try {
      const m = /self-signed certificate sha256 ([0-9A-F:]{95}) spki (sha256\/\/\S+) written to (\S+)/.exec(output());
      expect(m, output()).not.toBeNull();
      expect(m![3]).toBe(certOut);
      // The certificate written for clients holds no key.
      expect(readFileSync(certOut, "utf8")).toMatch(/^-----BEGIN CERTIFICATE-----[\s\S]*-----END CERTIFICATE-----\n$/);
      expect(readFileSync(certOut, "utf8")).not.toMatch(/PRIVATE KEY/);
      const { sh } = await import("../helpers/netns.js");
      expect((await sh("curl", ["-sS", "--max-time", "5", `http://127.0.0.1:${port}/`])).stdout).toBe("<h1>static paf</h1>\n");
      expect((await sh("curl", ["-sS", "--max-time", "5", `http://127.0.0.1:${port}/x`])).stdout).toBe("custom app /x over HTTP/1.1\n");
      const upgraded = await sh("bash", ["-c", `printf 'GET /toy HTTP/1.1\\r\\nHost: p\\r\\nConnection: Upgrade\\r\\nUpgrade: toy\\r\\n\\r\\n' | timeout 5 nc -q 2 127.0.0.1 ${port}`]);
      expect(upgraded.stdout).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n[\s\S]*\r\n\r\nupgraded \/toy\n$/);
      expect((await sh("curl", ["-sS", "--max-time", "5", "--http2", "--cacert", certOut, `https://127.0.0.1:${port + 1}/y`])).stdout).toBe("custom app /y over HTTP/2.0\n");
      // The printed pin is the served key's.
      expect((await sh("curl", ["-sSk", "--http1.1", "--max-time", "5", "--pinnedpubkey", m![2]!, `https://127.0.0.1:${port + 1}/z`])).stdout).toBe("custom app /z over HTTP/1.1\n");
    } finally {
      child.kill("SIGTERM");
    }
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once("exit", r)));
    expect(readdirSync(tmp)).toEqual([]);
    rmSync(tmp, { recursive: true });
    rmSync(dir, { recursive: true });
  });
});

describe("paf serve: bad arguments", () => {
  const cases: Array<[string[], RegExp]> = [
    [["serve"], /--tap NAME or --host ADDR is required/],
    [["serve", "--tap", "t0", "--host", "127.0.0.1"], /exclude each other/],
    [["serve", "--host", "nohost"], /--host: "nohost" is not an IP address/],
    [["serve", "--host", "127.0.0.1", "--https", "99999"], /--https expects a port number/],
    [["serve", "--host", "127.0.0.1", "--cert", "c.pem"], /--cert and --key go together/],
    [["serve", "--host", "127.0.0.1", "--app", "/nonexistent/app.mjs"], /--app: cannot load/],
    [["serve", "--host", "127.0.0.1", "--redirect-https"], /--redirect-https needs --https PORT/],
    [["serve", "--host", "127.0.0.1", "--https", "8443", "--http", "0", "--redirect-https"], /--redirect-https needs --https PORT and HTTP on/],
    [["serve", "--host", "127.0.0.1", "--https", "8443", "--redirect-https", "--no-redirect-https"], /exclude each other/],
    [["serve", "--tap", "t0"], /give at least one address/],
    [["serve", "--tap", "this-name-is-too-long", "--ipv4", "198.18.0.2/24"], /not a valid interface name/],
    [["serve", "--tap", "t0", "--ipv4", "198.18.0.300/24"], /--ipv4: invalid IPv4 address/],
    [["serve", "--tap", "t0", "--ipv4", "198.18.0.2"], /needs a prefix length/],
    [["serve", "--tap", "t0", "--ipv4", "198.18.0.2/24", "--gateway", "nope"], /--gateway: "nope" is not an IP address/],
    [["serve", "--tap", "t0", "--ipv4", "198.18.0.2/24", "--mac", "01:00:00:00:00:01"], /--mac: .*multicast/],
    [["serve", "--tap", "t0", "--ipv4", "198.18.0.2/24", "--services", "echo,telnet"], /--services: unknown value "telnet" \(expected one of: echo, discard, chargen\)/],
    [["serve", "--tap", "t0", "--ipv4", "198.18.0.2/24", "--mtu", "100"], /--mtu must be/],
    [["serve", "--tap", "t0", "--ipv4", "198.18.0.2/24", "--bogus"], /Unknown option '--bogus'/],
    [["serve", "--tap", "t0", "--ipv4", "198.18.0.2/24", "--dns", "resolver.example"], /--dns: "resolver.example" is not an IP address/],
    [["serve", "--host", "127.0.0.1", "--dns", "198.18.0.1"], /--dns is for the userspace stack/],
    [["get"], /expected exactly one URL/],
    [["get", "ftp://198.18.0.1/"], /unsupported scheme ftp:/],
    [["get", "--tap", "t0", "http://198.18.0.1/"], /--tap needs --ipv4/],
    [["get", "--ipv4", "198.18.0.2/24", "http://198.18.0.1/"], /need --tap/],
    [["get", "--http2", "--http1.1", "http://198.18.0.1/"], /exclude each other/],
    [["get", "-H", "novalue", "http://198.18.0.1/"], /-H expects "Name: value"/],
    [["get", "--cacert", "/nonexistent.pem", "http://198.18.0.1/"], /--cacert \/nonexistent.pem: no such file/],
    [["get", "--tap", "t0", "--ipv4", "198.18.0.2/24", "--dns", "x", "http://198.18.0.1/"], /--dns: "x" is not an IP address/],
    [["frobnicate"], /unknown command "frobnicate"/],
  ];
  for (const [args, msg] of cases) {
    it(`rejects: paf ${args.join(" ")}`, async () => {
      const r = await runCli(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(msg);
    });
  }
});

const run = privileged();

describe.skipIf(!run)("paf serve on a TAP in a namespace", () => {
  let ns: Netns;
  beforeAll(async () => {
    ns = await Netns.create("cli");
  });
  afterAll(async () => ns?.destroy());

  it("prints one listening line, answers ping, ping6 and UDP echo, and exits 0 on SIGTERM", async () => {
    const tap = "pafc" + (process.pid % 100000);
    const { child, line } = await startCli(["serve", "--tap", tap, "--tap-netns", ns.name, "--ipv4", "198.18.0.2/24", "--ipv6", "2001:db8::2/64", "--services", "echo,discard,chargen"], /^listening/);
    expect(line).toMatch(new RegExp(`^listening on ${tap} mac [0-9a-f:]{17} 198\\.18\\.0\\.2 fe80::\\S+ 2001:db8::2 http 80 services echo,discard,chargen$`));
    await ns.kernelSide(tap);
    expect((await ns.exec("ping", ["-c", "2", "-i", "0.2", "-W", "2", "198.18.0.2"])).stdout).toMatch(/2 received/);
    expect((await ns.exec("ping", ["-6", "-c", "2", "-i", "0.2", "-W", "2", "2001:db8::2"])).stdout).toMatch(/2 received/);
    const echo = await sh("bash", ["-c", `echo hi-from-kernel | ip netns exec ${ns.name} timeout 5 socat -t 1 - UDP4:198.18.0.2:7`]);
    expect(echo.stdout.trim()).toBe("hi-from-kernel");
    // TCP echo, discard and chargen with the kernel's TCP (socat / nc as clients).
    const tcpEcho = await sh("bash", [
      "-c",
      `head -c 3000000 /dev/urandom > /tmp/paf-echo-$$ && ip netns exec ${ns.name} timeout 20 socat -t 5 - TCP6:[2001:db8::2]:7 < /tmp/paf-echo-$$ | sha256sum && sha256sum < /tmp/paf-echo-$$; rm -f /tmp/paf-echo-$$`,
    ]);
    const [got, want] = tcpEcho.stdout.trim().split("\n");
    expect(got).toBe(want);
    const discard = await sh("bash", ["-c", `head -c 5000000 /dev/zero | ip netns exec ${ns.name} timeout 20 socat -u - TCP4:198.18.0.2:9 && echo discarded`]);
    expect(discard.stdout.trim()).toBe("discarded");
    const cg = await sh("bash", ["-c", `ip netns exec ${ns.name} timeout 20 socat -u TCP4:198.18.0.2:19 - | head -c 1000000 | wc -c`]);
    expect(cg.stdout.trim()).toBe("1000000");
    // Offloads are on by default: the kernel side of the TAP may hand over TSO super-frames.
    expect((await ns.exec("ethtool", ["-k", tap])).stdout).toMatch(/^tcp-segmentation-offload: on/m);
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });

  it("--no-offload: the kernel segments and checksums every frame, and a 5 MB upload still arrives", async () => {
    const tap = "pafo" + (process.pid % 100000);
    const { child } = await startCli(["serve", "--tap", tap, "--tap-netns", ns.name, "--ipv4", "198.18.0.3/24", "--no-offload", "--services", "discard"], /^listening/);
    await ns.ip("link", "set", tap, "up");
    await ns.ip("addr", "add", "198.18.0.4/31", "dev", tap);
    await ns.ip("route", "add", "198.18.0.3/32", "dev", tap);
    expect((await ns.exec("ethtool", ["-k", tap])).stdout).toMatch(/^tcp-segmentation-offload: off/m);
    const discard = await sh("bash", ["-c", `head -c 5000000 /dev/zero | ip netns exec ${ns.name} timeout 20 socat -u - TCP4:198.18.0.3:9 && echo discarded`]);
    expect(discard.stdout.trim()).toBe("discarded");
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });

  it("--redirect-https: every HTTP request (h2c too) gets a 308 to the same URL on HTTPS; curl -L posts again there", async () => {
    const tap = "pafr" + (process.pid % 100000);
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "paf-redir-"));
    const cert = join(dir, "cert.pem");
    const { child } = await startCli(["serve", "--tap", tap, "--tap-netns", ns.name, "--ipv4", "198.18.2.2/24", "--https", "8443", "--cert-out", cert, "--redirect-https"], /^listening/);
    try {
      await ns.kernelSide(tap, "198.18.2.1/24", undefined);
      const v = await ns.exec("curl", ["-sS", "-v", "--max-time", "5", "http://198.18.2.2/bytes/3?x=1&y"]);
      expect(v.stderr).toMatch(/^< HTTP\/1\.1 308 Permanent Redirect\r?$/m);
      expect(v.stderr).toMatch(/^< location: https:\/\/198\.18\.2\.2:8443\/bytes\/3\?x=1&y\r?$/m);
      const h2c = await ns.exec("curl", ["-sS", "-v", "--max-time", "5", "--http2-prior-knowledge", "-H", "Host: www.paf.test:80", "http://198.18.2.2/a"]);
      expect(h2c.stderr).toMatch(/^< HTTP\/2 308\s*$/m);
      expect(h2c.stderr).toMatch(/^< location: https:\/\/www\.paf\.test:8443\/a\r?$/m);
      // Followed, the POST goes to HTTPS with its body (a 301 would let curl turn it into a GET).
      const post = await ns.exec("curl", ["-sS", "-L", "--max-time", "5", "--cacert", cert, "-d", "hello", "http://198.18.2.2/sha256"]);
      expect(post.stdout.trim()).toBe("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
      // No WebSocket on the HTTP port: the handshake is redirected like any request.
      const ws = await ns.exec("curl", [
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
        "-H",
        "Connection: Upgrade",
        "-H",
        "Upgrade: websocket",
        "-H",
        "Sec-WebSocket-Version: 13",
        "-H",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "http://198.18.2.2/ws",
      ]);
      expect(ws.stdout).toBe("308");
    } finally {
      child.kill("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reports a TAP name clash as an error, not a crash", async () => {
    const tap = "pafd" + (process.pid % 100000);
    const first = await startCli(["serve", "--tap", tap, "--tap-netns", ns.name, "--ipv4", "198.18.1.2/24"], /^listening/);
    const second = await runCli(["serve", "--tap", tap, "--tap-netns", ns.name, "--ipv4", "198.18.1.3/24"]);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/EBUSY.*in use/);
    first.child.kill("SIGTERM");
  });
});

describe("paf CMD --help", () => {
  for (const cmd of ["serve", "get", "bench", "certify"]) {
    it(`paf ${cmd} --help prints the usage on stdout and exits 0`, async () => {
      const r = await runCli([cmd, "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^usage: paf ${cmd} `));
      expect(r.stderr).toBe("");
    });
  }
});

describe("the paf command as an executable", () => {
  it("starts Node with the V8 flag of its first line (old generation limit at 64 MB at least; README 'Tuning V8')", () => {
    // Run as `paf` is run (the file itself, through its #! line), with a probe preloaded that
    // reports the flags this Node was started with.
    const dir = mkdtempSync(join(tmpdir(), "paf-shebang-"));
    try {
      const probe = join(dir, "probe.cjs");
      writeFileSync(probe, `process.on("exit", () => process.stderr.write("execArgv=" + JSON.stringify(process.execArgv) + "\\n"));`);
      const r = spawnSync(CLI, ["get", "--help"], { encoding: "utf8", env: { ...process.env, NODE_OPTIONS: `--require ${probe}` }, timeout: 10_000 });
      expect(r.error, "dist/cli/main.js must be executable (make build sets its mode)").toBeUndefined();
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/^usage: paf get /);
      const argv = JSON.parse(/execArgv=(.*)/.exec(r.stderr)?.[1] ?? "null") as string[] | null;
      expect(argv).toContain("--initial-old-space-size=64");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
