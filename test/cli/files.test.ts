// File and directory arguments of paf serve, get, bench and certify are checked while the
// arguments are parsed: a missing, unreadable or wrong file is an argument error (exit 2) that
// names the option and the path in words, printed once, before any TAP device or stack comes up.
import { beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBuilt, runCli } from "../helpers/cli.js";
import { opensslCert } from "../helpers/certs.js";

beforeAll(() => ensureBuilt(), 120_000);

const dir = mkdtempSync(join(tmpdir(), "paf-cli-files-"));
const path = (name: string) => join(dir, name);
opensslCert(dir, "a", { cn: "a" });
opensslCert(dir, "b", { cn: "b" });
writeFileSync(path("garbage.pem"), "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
writeFileSync(path("text.txt"), "hello\n");
execFileSync("openssl", ["pkey", "-in", path("a.key"), "-aes256", "-passout", "pass:secret", "-out", path("encrypted.key")], { stdio: "ignore" });

const HOST = ["serve", "--host", "127.0.0.1", "--http", "0", "--https", "8443"];
// Loopback and a closed port: even if a check regressed, nothing would leave the machine.
const URL = "http://127.0.0.1:9/";

describe("file arguments: named, in words, exit 2, before anything starts", () => {
  const cases: Array<[string[], RegExp]> = [
    // --cert is checked first: a missing pair names the certificate, not the key.
    [[...HOST, "--cert", "/nonexistent.pem", "--key", "/nonexistent.key"], /^paf: --cert \/nonexistent\.pem: no such file\n$/],
    [[...HOST, "--cert", path("a.pem"), "--key", "/nonexistent.key"], /^paf: --key \/nonexistent\.key: no such file\n$/],
    [[...HOST, "--cert", dir, "--key", path("a.key")], /^paf: --cert \S+: is a directory, not a file\n$/],
    [[...HOST, "--cert", path("garbage.pem"), "--key", path("a.key")], /^paf: --cert \S+garbage\.pem: not a PEM certificate\n$/],
    [[...HOST, "--cert", path("text.txt"), "--key", path("a.key")], /^paf: --cert \S+text\.txt: not a PEM certificate\n$/],
    [[...HOST, "--cert", path("a.pem"), "--key", path("text.txt")], /^paf: --key \S+text\.txt: not a PEM private key\n$/],
    [[...HOST, "--cert", path("a.pem"), "--key", path("a.pem")], /^paf: --key \S+a\.pem: not a PEM private key\n$/],
    [[...HOST, "--cert", path("a.pem"), "--key", path("encrypted.key")], /^paf: --key \S+encrypted\.key: an encrypted private key/],
    [[...HOST, "--cert", path("a.pem"), "--key", path("b.key")], /^paf: --cert and --key do not match \(\S+a\.pem is not the certificate of \S+b\.key\)\n$/],
    [["serve", "--host", "127.0.0.1", "--root", "/nonexistent"], /^paf: --root \/nonexistent: no such directory\n$/],
    [["serve", "--host", "127.0.0.1", "--root", path("text.txt")], /^paf: --root \S+: not a directory\n$/],
    [["serve", "--host", "127.0.0.1", "--http", "0", "--https", "0"], /^paf: nothing to serve: --http 0 turns HTTP off, and neither --https PORT nor --services is given\n$/],
    [["serve", "--host", "127.0.0.1", "--http", "0"], /^paf: nothing to serve/],
    [["serve", "--host", "127.0.0.1", "--pcap", "/nonexistent/x.pcap"], /^paf: --pcap \/nonexistent\/x\.pcap: no such directory \/nonexistent\n$/],
    [["get", "--cacert", "/nonexistent.pem", URL], /^paf: --cacert \/nonexistent\.pem: no such file\n$/],
    [["get", "--cacert", path("garbage.pem"), URL], /^paf: --cacert \S+: not a PEM certificate\n$/],
    [["get", "-d", "@/nonexistent", URL], /^paf: -d \/nonexistent: no such file\n$/],
    [["get", "-d", `@${dir}`, URL], /^paf: -d \S+: not a regular file\n$/],
    [["get", "-o", "/nonexistent/out", URL], /^paf: -o \/nonexistent\/out: no such directory \/nonexistent\n$/],
    [["get", "-o", dir, URL], /^paf: -o \S+: is a directory, not a file\n$/],
    [["bench", URL, "--json", "/nonexistent/r.json"], /^paf: --json \/nonexistent\/r\.json: no such directory \/nonexistent\n$/],
    [["bench", URL, "--plot", "/nonexistent/r.svg"], /^paf: --plot \/nonexistent\/r\.svg: no such directory \/nonexistent\n$/],
    [["certify", "--host", "127.0.0.1", "--acme-domain", "a.test", "--acme-ca", path("text.txt")], /^paf: --acme-ca \S+: not a PEM certificate\n$/],
  ];
  for (const [args, msg] of cases) {
    it(`paf ${args.join(" ").replaceAll(dir, "DIR")}`, async () => {
      const r = await runCli(args);
      expect(r.stderr).toMatch(msg);
      expect(r.code).toBe(2);
    });
  }

  // The TAP would be opened in a namespace that does not exist: had the files not been checked
  // first, that would be the error (and nothing is created anywhere either way).
  for (const [what, extra, msg] of [
    ["a missing --key", ["--https", "8443", "--cert", path("a.pem"), "--key", "/nonexistent.key"], /--key \/nonexistent\.key: no such file/],
    ["a missing --root", ["--root", "/nonexistent"], /--root \/nonexistent: no such directory/],
    ["a missing --app", ["--app", "/nonexistent/app.mjs"], /--app: cannot load \/nonexistent\/app\.mjs/],
  ] as const) {
    it(`${what} is reported before the TAP is opened`, async () => {
      const r = await runCli(["serve", "--tap", "pafnotap0", "--tap-netns", "paf-no-such-netns", "--ipv4", "198.18.0.2/24", ...extra]);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr).not.toMatch(/netns|namespace/);
      expect(r.code).toBe(2);
    });
  }
});
