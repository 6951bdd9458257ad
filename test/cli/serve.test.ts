// `paf serve`: argument errors name the problem; on a real TAP it serves ping and UDP echo and
// stops cleanly on SIGTERM.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt, runCli, startCli } from "../helpers/cli.js";
import { Netns, privileged, sh } from "../helpers/netns.js";

beforeAll(() => ensureBuilt(), 120_000);

describe("paf serve --host: the same app on the kernel's sockets (loopback)", () => {
  it("serves HTTP and HTTPS (self-signed, fingerprint printed), an --app module and --root files", async () => {
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "paf-cli-"));
    writeFileSync(join(dir, "app.mjs"), "export default (req, res) => res.end('custom app ' + req.url + ' over HTTP/' + req.httpVersion + '\\n');\n");
    writeFileSync(join(dir, "index.html"), "<h1>static paf</h1>\n");
    const port = 20000 + (process.pid % 20000);
    const { child, output } = await startCli(["serve", "--host", "127.0.0.1", "--http", String(port), "--https", String(port + 1), "--app", join(dir, "app.mjs"), "--root", dir], /^listening/);
    try {
      expect(output()).toMatch(/self-signed certificate \S+cert\.pem sha256 [0-9A-F:]{95}/);
      const { sh } = await import("../helpers/netns.js");
      expect((await sh("curl", ["-sS", "--max-time", "5", `http://127.0.0.1:${port}/`])).stdout).toBe("<h1>static paf</h1>\n");
      expect((await sh("curl", ["-sS", "--max-time", "5", `http://127.0.0.1:${port}/x`])).stdout).toBe("custom app /x over HTTP/1.1\n");
      expect((await sh("curl", ["-sSk", "--max-time", "5", "--http2", `https://127.0.0.1:${port + 1}/y`])).stdout).toBe("custom app /y over HTTP/2.0\n");
    } finally {
      child.kill("SIGTERM");
    }
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
    const tcpEcho = await sh("bash", ["-c", `head -c 3000000 /dev/urandom > /tmp/paf-echo-$$ && ip netns exec ${ns.name} timeout 20 socat -t 5 - TCP6:[2001:db8::2]:7 < /tmp/paf-echo-$$ | sha256sum && sha256sum < /tmp/paf-echo-$$; rm -f /tmp/paf-echo-$$`]);
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
