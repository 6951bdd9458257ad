// `paf serve --acme-*` and `paf certify` end to end against pebble: the userspace stack on a TAP
// answers pebble's HTTP-01 validation and carries the ACME requests; curl inside the namespace
// verifies the served chain against pebble's root; renewal (SIGHUP) swaps the certificate while
// a long HTTPS download continues; a validation that fails names the domain and pebble's detail.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, statSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import { CLI, ensureBuilt, runCli, startCli } from "../../helpers/cli.js";
import { ifname, requirePrivileged, sh, useNetns, waitFor } from "../../helpers/netns.js";
import { expectedPatternSha256 } from "../../helpers/pattern.js";
import { startPebble, type Pebble } from "./pebble.js";

beforeAll(() => ensureBuilt(), 120_000);

describe("paf serve / certify: bad ACME arguments", () => {
  const cases: Array<[string[], RegExp]> = [
    [["serve", "--host", "127.0.0.1", "--acme-domain", "a.test"], /--acme-domain needs --https PORT/],
    [["serve", "--host", "127.0.0.1", "--https", "8443", "--acme-email", "x@y.test"], /--acme-email needs --acme-domain NAME/],
    [["serve", "--host", "127.0.0.1", "--https", "8443", "--acme-domain", "198.18.0.2"], /--acme-domain: "198.18.0.2" is an IP address/],
    [["serve", "--host", "127.0.0.1", "--https", "8443", "--acme-domain", "*.a.test"], /--acme-domain: "\*\.a\.test" is a wildcard/],
    [["serve", "--host", "127.0.0.1", "--https", "8443", "--acme-domain", "a_b.test"], /--acme-domain: "a_b.test" is not a valid DNS name/],
    [["serve", "--host", "127.0.0.1", "--https", "8443", "--acme-domain", "a.test", "--acme-domain", "A.test"], /--acme-domain: "A.test" is given twice/],
    [["serve", "--host", "127.0.0.1", "--https", "8443", "--acme-domain", "a.test", "--http", "0"], /--http must not be 0/],
    [["serve", "--host", "127.0.0.1", "--https", "8443", "--acme-domain", "a.test", "--cert", "c", "--key", "k"], /--acme-domain and --cert\/--key exclude each other/],
    [["serve", "--host", "127.0.0.1", "--https", "8443", "--acme-domain", "a.test", "--acme-directory", "http://198.18.0.1/dir"], /--acme-directory: ACME directories are https: URLs/],
    [["serve", "--host", "127.0.0.1", "--https", "8443", "--acme-domain", "a.test", "--acme-directory", "not a url"], /--acme-directory: "not a url" is not a URL/],
    [["serve", "--host", "127.0.0.1", "--https", "8443", "--acme-domain", "a.test", "--acme-ca", "/nonexistent/ca.pem"], /--acme-ca \/nonexistent\/ca.pem: no such file/],
    [["serve", "--host", "127.0.0.1", "--https", "8443", "--acme-domain", "a.test", "--acme-email", "nobody"], /--acme-email: "nobody" is not an email address/],
    [["serve", "--host", "127.0.0.1", "--https", "8443", "--acme-domain", "a.test", "--acme-renew-days", "-3"], /--acme-renew-days/],
    [["certify", "--host", "127.0.0.1"], /paf certify needs --acme-domain NAME/],
    [["certify", "--host", "127.0.0.1", "--acme-domain", "a.test", "--https", "443"], /--https is for paf serve/],
    [["certify", "--host", "127.0.0.1", "--acme-domain", "a.test", "--redirect-https"], /--redirect-https is for paf serve/],
    [["certify", "--acme-domain", "a.test"], /--tap NAME or --host ADDR is required/],
  ];
  for (const [args, msg] of cases) {
    it(`rejects: paf ${args.join(" ")}`, async () => {
      const r = await runCli(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(msg);
    });
  }
});

const run = requirePrivileged();

describe.skipIf(!run)("ACME with pebble in a namespace, paf on a TAP", () => {
  const ctx = useNetns("acmecli");
  let pebble: Pebble;
  const children: ChildProcess[] = [];

  /** A TAP made in the namespace beforehand, kernel side 198.18.0.1, so pebble can bind there. */
  async function tap(): Promise<string> {
    const name = ifname("acmc");
    await ctx.ns.ip("tuntap", "add", "dev", name, "mode", "tap");
    return name;
  }
  let kernelTap: string;

  beforeAll(async () => {
    kernelTap = await tap();
    await ctx.ns.kernelSide(kernelTap, "198.18.0.1/24", undefined);
    pebble = await startPebble(ctx.ns);
  });
  afterEach((t) => {
    // On failure, show what pebble and challtestsrv said (validation attempts, DNS answers).
    if (t.task.result?.state === "fail") console.log(`pebble output:\n${pebble?.output().split("\n").slice(-60).join("\n")}`);
  });
  afterAll(() => {
    for (const c of children) c.kill("SIGKILL");
    pebble?.stop();
  });

  const acmeArgs = (dir: string, ...domains: string[]) => [
    ...domains.flatMap((d) => ["--acme-domain", d]),
    "--acme-email",
    "ops@paf.test",
    "--acme-directory",
    pebble.directoryUrl,
    "--acme-ca",
    pebble.caPath,
    "--acme-dir",
    dir,
  ];
  const serialOf = (hex: string) => hex.toLowerCase().replace(/^0+/, "");

  async function servedSerial(name: string): Promise<string> {
    const r = await sh("bash", ["-c", `ip netns exec ${ctx.ns.name} timeout 10 openssl s_client -connect 198.18.0.2:443 -servername ${name} </dev/null 2>/dev/null | openssl x509 -noout -serial`]);
    return serialOf(r.stdout.trim().replace(/^serial=/, ""));
  }

  it("paf serve --tap --acme-*: HTTPS with pebble's certificate, verified by curl; renewal during a download keeps it intact", async () => {
    const dir = mkdtempSync(join(tmpdir(), "paf-acme-cli-"));
    const rootPath = join(dir, "pebble-root.pem");
    const started = Date.now();
    const srv = await startCli(
      ["serve", "--tap", kernelTap, "--tap-netns", ctx.ns.name, "--ipv4", "198.18.0.2/24", "--https", "443", ...acmeArgs(dir, "paf.test", "www.paf.test")],
      /^acme certificate .* installed/,
      60_000,
    );
    children.push(srv.child);
    try {
      const issuedMs = Date.now() - started;
      const out = srv.output();
      expect(out).toMatch(/self-signed certificate sha256 \S+ spki sha256\/\/\S+ \(placeholder until the ACME certificate is issued\)/);
      expect(out).toMatch(/^listening on .* http 80 https 443$/m);
      const first = srv.line.match(/^acme certificate for paf\.test,www\.paf\.test serial ([0-9a-f]+) valid until \S+ installed \((\d+) requests, (\d+) badNonce retries\)$/);
      expect(first, srv.line).not.toBeNull();
      console.log(`issued in ${issuedMs} ms (process start to certificate installed): ${srv.line}`);
      // Nothing secret in the output: no key material, no key authorization.
      expect(out).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/);
      const keyFiles = [join(dir, "account.key.pem"), join(dir, "paf.test", "privkey.pem"), join(dir, "paf.test", "fullchain.pem")];
      for (const f of keyFiles) expect(statSync(f).mode & 0o777).toBe(0o600);
      writeFileSync(rootPath, await pebble.rootPem());
      const curl = (url: string, ...more: string[]) =>
        ctx.ns.exec("curl", ["-sS", "--max-time", "10", "--cacert", rootPath, "--resolve", "paf.test:443:198.18.0.2", "--resolve", "www.paf.test:443:198.18.0.2", ...more, url]);
      expect((await curl("https://paf.test/", "--http2", "-w", "\\n%{http_version} %{ssl_verify_result}")).stdout).toMatch(/\n2 0$/);
      expect((await curl("https://www.paf.test/", "--http1.1", "-o", "/dev/null", "-w", "%{http_version} %{ssl_verify_result}")).stdout).toBe("1.1 0");
      // With --acme-domain, HTTP redirects to HTTPS (308, path and query kept); pebble's
      // validations above were answered over HTTP all the same. Once the order is done, a
      // challenge URL is 404 on HTTP, not redirected.
      const plain = await ctx.ns.exec("curl", ["-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", "http://198.18.0.2/.well-known/acme-challenge/x"]);
      expect(plain.stdout).toBe("404");
      const moved = await ctx.ns.exec("curl", ["-sS", "-v", "--max-time", "5", "-o", "/dev/null", "--resolve", "paf.test:80:198.18.0.2", "http://paf.test/bytes/3?x=1"]);
      expect(moved.stderr).toMatch(/^< HTTP\/1\.1 308 Permanent Redirect\r?$/m);
      expect(moved.stderr).toMatch(/^< location: https:\/\/paf\.test\/bytes\/3\?x=1\r?$/m);
      expect((await curl("http://paf.test/", "-L", "--resolve", "paf.test:80:198.18.0.2", "-w", "\n%{url_effective}")).stdout).toMatch(/^Hello from paf: .*\n\nhttps:\/\/paf\.test\/$/);
      const serial1 = await servedSerial("paf.test");
      expect(serial1).toBe(serialOf(first![1]!));

      // Renewal while a rate-limited 24 MB download runs over HTTPS (about 8 s at 3 MB/s).
      const n = 24 * 1024 * 1024;
      let downloadDone = 0;
      const download = sh(
        "bash",
        ["-c", `ip netns exec ${ctx.ns.name} curl -sS --max-time 60 --limit-rate 3M --cacert ${rootPath} --resolve paf.test:443:198.18.0.2 https://paf.test/bytes/${n} | sha256sum`],
        70_000,
      ).finally(() => (downloadDone = Date.now()));
      await new Promise((r) => setTimeout(r, 1500));
      const before = srv
        .output()
        .split("\n")
        .filter((l) => / installed/.test(l)).length;
      srv.child.kill("SIGHUP");
      await waitFor(
        () =>
          srv
            .output()
            .split("\n")
            .filter((l) => / installed/.test(l)).length > before,
        "the renewed certificate",
        30_000,
        100,
      );
      const renewedAt = Date.now();
      expect(downloadDone).toBe(0); // the swap happened while the download was running
      const renewedLine = srv
        .output()
        .split("\n")
        .filter((l) => / installed/.test(l))
        .at(-1)!;
      const serial2 = serialOf(renewedLine.match(/serial ([0-9a-f]+)/)![1]!);
      expect(serial2).not.toBe(serial1);
      expect(await servedSerial("paf.test")).toBe(serial2); // new connections get the new certificate
      expect((await curl("https://paf.test/", "-o", "/dev/null", "-w", "%{ssl_verify_result}")).stdout).toBe("0");
      const got = (await download).stdout.trim().split(/\s+/)[0];
      expect(got).toBe(expectedPatternSha256(n)); // the download that began before the swap completed intact
      console.log(`certificate swapped ${renewedAt - started} ms after start; the 24 MB download finished ${downloadDone - renewedAt} ms after the swap`);
      expect(readFileSync(join(dir, "paf.test", "fullchain.pem"), "utf8")).toContain("BEGIN CERTIFICATE");

      // A restart reuses the stored certificate (not due for 30 days): no new order.
      // --no-redirect-https: the app answers on HTTP again.
      const exited = new Promise<number | null>((r) => srv.child.on("exit", (c) => r(c)));
      srv.child.kill("SIGTERM");
      expect(await exited).toBe(0);
      const again = await startCli(
        ["serve", "--tap", kernelTap, "--tap-netns", ctx.ns.name, "--ipv4", "198.18.0.2/24", "--https", "443", "--no-redirect-https", ...acmeArgs(dir, "paf.test", "www.paf.test")],
        /^listening/,
        30_000,
      );
      children.push(again.child);
      await waitFor(() => /loaded from/.test(again.output()), "the stored certificate", 5000);
      expect(again.output()).not.toMatch(/self-signed/);
      expect(await servedSerial("paf.test")).toBe(serial2);
      expect((await ctx.ns.exec("curl", ["-sS", "--max-time", "5", "-w", "%{http_code}", "http://198.18.0.2/"])).stdout).toMatch(/^Hello from paf: .*HTTP\/1\.1\.\n200$/);
      const ex2 = new Promise<number | null>((r) => again.child.on("exit", (c) => r(c)));
      again.child.kill("SIGTERM");
      expect(await ex2).toBe(0);
    } finally {
      srv.child.kill("SIGKILL");
    }
  });

  it("a failed validation (challenge not reachable: HTTP on 8080, pebble checks 80) stops paf serve with the domain and pebble's detail", async () => {
    const dir = mkdtempSync(join(tmpdir(), "paf-acme-cli-"));
    const r = await runCli(["serve", "--tap", kernelTap, "--tap-netns", ctx.ns.name, "--ipv4", "198.18.0.2/24", "--http", "8080", "--https", "443", ...acmeArgs(dir, "unreachable.paf.test")], 60_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^paf: ACME validation failed for unreachable\.paf\.test: .*198\.18\.0\.2:80.*connection refused \(connection, HTTP 400\)$/m);
    console.log(`failure reported as: ${r.stderr.trim()}`);
    expect(existsSync(join(dir, "unreachable.paf.test", "fullchain.pem"))).toBe(false);
  });

  it("paf certify --tap writes the files (0600) and exits; a second run finds them not due", async () => {
    const dir = mkdtempSync(join(tmpdir(), "paf-acme-cli-"));
    const args = ["certify", "--tap", kernelTap, "--tap-netns", ctx.ns.name, "--ipv4", "198.18.0.2/24", ...acmeArgs(dir, "certify.paf.test")];
    const r = await runCli(args, 60_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^certificate for certify\.paf\.test serial [0-9a-f]+ valid until \S+: \S+fullchain\.pem \S+privkey\.pem$/m);
    for (const f of ["account.key.pem", "certify.paf.test/privkey.pem", "certify.paf.test/fullchain.pem"]) expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);
    const rootPath = join(dir, "root.pem");
    writeFileSync(rootPath, await pebble.rootPem());
    const chain = join(dir, "certify.paf.test", "fullchain.pem");
    expect((await sh("openssl", ["verify", "-CAfile", rootPath, "-untrusted", chain, chain])).stdout).toMatch(/OK/);
    const second = await runCli(args, 30_000);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/is not due for renewal/);
  });

  it("paf certify --host inside the namespace: kernel sockets carry the ACME requests and the challenge", async () => {
    const dir = mkdtempSync(join(tmpdir(), "paf-acme-cli-"));
    // challtestsrv now answers with the kernel side's own address (where --host listens).
    await ctx.ns.exec("curl", ["-sSf", "--max-time", "5", "-X", "POST", "-d", '{"ip":"198.18.0.1"}', "http://127.0.0.1:8055/set-default-ipv4"]);
    try {
      const r = await ctx.ns.exec(process.execPath, [CLI, "certify", "--host", "198.18.0.1", ...acmeArgs(dir, "host.paf.test")], 60_000);
      expect(r.stdout).toMatch(/^certificate for host\.paf\.test serial/m);
      expect(statSync(join(dir, "host.paf.test", "privkey.pem")).mode & 0o777).toBe(0o600);
    } finally {
      await ctx.ns.exec("curl", ["-sSf", "--max-time", "5", "-X", "POST", "-d", '{"ip":"198.18.0.2"}', "http://127.0.0.1:8055/set-default-ipv4"]);
    }
  });
});
