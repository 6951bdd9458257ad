// Real HTTP clients against paf over TAP: nghttp (h2 multiplexing, flow control with large
// bodies), h2load (exact request counts over TLS), wrk (HTTP/1.1 keep-alive), openssl s_client
// (SNI certificate selection), live certificate replacement, 20 MB both ways over HTTPS.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { Netns, privileged, sh } from "../helpers/netns.js";
import { opensslCert } from "../helpers/certs.js";
import { TapNetif } from "../../stack/netif/tap.js";
import { Stack } from "../../stack/stack.js";
import { serve } from "../../http/serve.js";
import { stackListener } from "../../http/listener.js";
import { httpService, httpsService } from "../../http/services.js";
import { demoApp } from "../../http/app.js";
import { expectedPatternSha256 } from "../helpers/pattern.js";

const dir = mkdtempSync(join(tmpdir(), "paf-clients-"));
const mkcert = (name: string, cn: string, san: string) => opensslCert(dir, name, { cn, san });
const main = mkcert("main", "paf.test", "DNS:paf.test,IP:198.18.0.2");
const other = mkcert("other", "other.test", "DNS:other.test");
const renewed = mkcert("renewed", "paf.test", "DNS:paf.test,IP:198.18.0.2");
const fp = (pem: Buffer) => new X509Certificate(pem).fingerprint256.replace(/:/g, "");

const run = privileged();

describe.skipIf(!run)("real HTTP clients against paf over TAP", () => {
  let ns: Netns;
  let stack: Stack;
  let tls: ReturnType<typeof httpsService>;
  const TAP = "pafc" + (process.pid % 10000);
  beforeAll(async () => {
    ns = await Netns.create("cli2");
    stack = Stack.create({ netif: TapNetif.open(TAP, { netns: ns.path, up: true }), ipv4: { address: "198.18.0.2/24" } });
    await ns.kernelSide(TAP, "198.18.0.1/24", undefined);
    const app = demoApp();
    serve(httpService(app, { log: () => {} }), stackListener(stack, { port: 80 }));
    tls = httpsService(app, { key: main.key, cert: main.cert, sni: { "other.test": other }, log: () => {} });
    serve(tls, stackListener(stack, { port: 443 }));
    await sh("cp", [join(dir, "main.pem"), `/tmp/paf-main-${process.pid}.pem`]);
  });
  afterAll(async () => {
    try {
      await stack?.close();
    } finally {
      await ns?.destroy();
    }
  });

  it("nghttp: 8 multiplexed streams on one h2c connection, each a 2 MB body (flow control)", async () => {
    const urls = Array.from({ length: 8 }, (_, i) => `http://198.18.0.2/bytes/2000000?stream=${i}`);
    const r = await ns.exec("nghttp", ["-n", "-s", "-w", "16", ...urls], 60_000);
    // -s prints one statistics line per stream: all 8 completed with status 200 on one connection.
    const lines = r.stdout.split("\n").filter((l) => /\/bytes\/2000000/.test(l));
    expect(lines.length).toBe(8);
    expect(lines.every((l) => /\b200\b/.test(l))).toBe(true);
  });

  it("h2load over TLS: exactly 2000 requests on 4 clients x 10 streams, none failed", async () => {
    const r = await ns.exec("h2load", ["-n", "2000", "-c", "4", "-m", "10", "https://198.18.0.2/"], 60_000);
    expect(r.stdout).toMatch(/requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored, 0 timeout/);
    expect(r.stdout).toMatch(/status codes: 2000 2xx/);
    expect(r.stdout).toMatch(/Application protocol: h2/);
  });

  it("wrk: HTTP/1.1 keep-alive for 2 s with 16 connections, no socket errors, no non-2xx", async () => {
    const r = await ns.exec("wrk", ["-t2", "-c16", "-d2s", "http://198.18.0.2/"], 30_000);
    expect(r.stdout).toMatch(/Requests\/sec:\s+\d+/);
    expect(r.stdout).not.toMatch(/Socket errors/);
    expect(r.stdout).not.toMatch(/Non-2xx/);
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)![1]);
    expect(rps).toBeGreaterThan(100);
  });

  it("SNI selects the certificate; an unknown name gets the default one", async () => {
    const get = async (name: string) => {
      const r = await ns.exec("bash", ["-c", `echo | timeout 5 openssl s_client -connect 198.18.0.2:443 -servername ${name} 2>/dev/null | openssl x509 -noout -fingerprint -sha256`]);
      return r.stdout.trim().split("=")[1]!.replace(/:/g, "");
    };
    expect(await get("other.test")).toBe(fp(other.cert));
    expect(await get("paf.test")).toBe(fp(main.cert));
    expect(await get("unknown.test")).toBe(fp(main.cert));
  });

  it("a certificate swapped at run time is served to new connections while an old download continues", async () => {
    const long = ns.exec("bash", ["-c", `curl -sS --max-time 60 -k --limit-rate 5M https://198.18.0.2/bytes/10000000 | sha256sum`], 70_000);
    await new Promise((r) => setTimeout(r, 300));
    tls.setCertificate(renewed.key, renewed.cert);
    const r = await ns.exec("bash", ["-c", `echo | timeout 5 openssl s_client -connect 198.18.0.2:443 -servername paf.test 2>/dev/null | openssl x509 -noout -fingerprint -sha256`]);
    expect(r.stdout.trim().split("=")[1]!.replace(/:/g, "")).toBe(fp(renewed.cert));
    expect((await long).stdout.split(" ")[0]).toBe(expectedPatternSha256(10_000_000));
    tls.setCertificate(main.key, main.cert);
  });

  it("20 MB download and upload over HTTPS (h2), checked by SHA-256", async () => {
    const ca = `--cacert /tmp/paf-main-${process.pid}.pem`;
    const down = await ns.exec("bash", ["-c", `curl -sS --max-time 60 ${ca} --http2 https://198.18.0.2/bytes/20000000 | sha256sum`], 70_000);
    expect(down.stdout.split(" ")[0]).toBe(expectedPatternSha256(20_000_000));
    const up = await sh(
      "bash",
      [
        "-c",
        `head -c 20000000 /dev/urandom > /tmp/paf-up2-$$ && sha256sum < /tmp/paf-up2-$$ | cut -d' ' -f1 && ip netns exec ${ns.name} curl -sS --max-time 60 ${ca} --http2 --data-binary @/tmp/paf-up2-$$ https://198.18.0.2/sha256; rm -f /tmp/paf-up2-$$`,
      ],
      70_000,
    );
    const [want, got] = up.stdout.trim().split("\n");
    expect(got).toBe(want);
  });
});
