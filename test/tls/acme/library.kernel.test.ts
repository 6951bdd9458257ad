// The ACME client and provisioning flow in-process against a real pebble: the userspace stack on
// a TAP serves the HTTP-01 challenge and carries the ACME requests; account key types; pebble's
// badNonce rejections are retried.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { Stack } from "../../../stack/stack.js";
import { TapNetif } from "../../../stack/netif/tap.js";
import { serve, type ServeHandle } from "../../../http/serve.js";
import { stackListener } from "../../../http/listener.js";
import { httpService } from "../../../http/services.js";
import { Http01Responder, notFound } from "../../../tls/acme/challenge.js";
import { provision, loadStored, RenewalScheduler, type Issued } from "../../../tls/acme/provision.js";
import { stackTransport } from "../../../tls/acme/transport.js";
import { Connector, defaultConnector } from "../../../http/client/resolve.js";
import { AcmeClient, AcmeProblem } from "../../../tls/acme/client.js";
import { generateKeyPairSync } from "node:crypto";
import { ifname, requirePrivileged, useNetns } from "../../helpers/netns.js";
import { startPebble, type Pebble } from "./pebble.js";

const run = requirePrivileged();

describe.skipIf(!run)("ACME against pebble over the userspace stack (library)", () => {
  const ctx = useNetns("acmelib");
  let stack: Stack;
  let web: ServeHandle;
  let pebble: Pebble;
  const responder = new Http01Responder();

  beforeAll(async () => {
    const tap = ifname("acml");
    const netif = TapNetif.open(tap, { netns: ctx.ns.path, up: true });
    stack = Stack.create({ netif, ipv4: { address: "198.18.0.2/24" }, dns: { servers: ["198.18.0.1:8053"] } });
    await ctx.ns.kernelSide(tap, "198.18.0.1/24", undefined);
    web = serve(httpService(responder.wrap(notFound)), stackListener(stack, { port: 80 }));
    pebble = await startPebble(ctx.ns, { nonceReject: 30 });
  });
  afterEach((t) => {
    // On failure, show what pebble and challtestsrv said (validation attempts, DNS answers).
    if (t.task.result?.state === "fail") console.log(`pebble output:\n${pebble?.output().split("\n").slice(-60).join("\n")}`);
  });
  afterAll(async () => {
    pebble?.stop();
    await web?.stop(100);
    await stack?.close();
  });

  it("an Ed25519 account key: pebble (like Boulder) refuses EdDSA, and the error says so", async () => {
    const dir = mkdtempSync(join(tmpdir(), "paf-acme-"));
    const err = (await provision({
      domains: ["ed.paf.test"],
      directoryUrl: pebble.directoryUrl,
      ca: readFileSync(pebble.caPath),
      dir,
      transport: stackTransport(stack),
      responder,
      accountKeyType: "ed25519",
    }).catch((e: Error) => e)) as AcmeProblem;
    expect(err).toBeInstanceOf(AcmeProblem);
    expect(err.type).toBe("urn:ietf:params:acme:error:badPublicKey");
    expect(err.message).toMatch(/^ACME server refused creating the ACME account: .*ed25519.* \(badPublicKey, HTTP 400\)$/);
  });

  it("retries requests pebble refuses with badNonce (30% of them) until they go through", async () => {
    const client = new AcmeClient({
      directoryUrl: pebble.directoryUrl,
      accountKey: generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey,
      transport: stackTransport(stack),
      ca: readFileSync(pebble.caPath),
    });
    try {
      // Each newAccount with the same key is a signed POST answered with the existing account.
      // Up to 200 of them: none refused would happen with probability 0.7^200 (about 1e-31).
      const first = await client.newAccount({ termsOfServiceAgreed: true });
      for (let i = 0; i < 200 && client.stats.badNonceRetries === 0; i++) {
        const again = await client.newAccount({ termsOfServiceAgreed: true });
        expect(again.url).toBe(first.url);
      }
      expect(client.stats.badNonceRetries).toBeGreaterThan(0);
    } finally {
      client.close();
    }
  });

  for (const accountKeyType of ["p256", "rsa"] as const) {
    it(`issues a certificate (account key ${accountKeyType}), surviving badNonce rejections`, async () => {
      const dir = mkdtempSync(join(tmpdir(), "paf-acme-"));
      const domains = [`${accountKeyType}.paf.test`, `www.${accountKeyType}.paf.test`];
      const issued = await provision({
        domains,
        email: "ops@paf.test",
        directoryUrl: pebble.directoryUrl,
        ca: readFileSync(pebble.caPath),
        dir,
        transport: stackTransport(stack),
        responder,
        accountKeyType,
      });
      expect(issued.names.sort()).toEqual(domains.sort());
      // 30% of nonces are refused; whether any of this flow's dozen requests drew one is chance
      // (0.7^12: 1.4%), so the retry itself is checked below, over enough requests to be sure.
      expect(issued.stats!.requests).toBeGreaterThan(5);
      for (const p of [issued.keyPath, issued.certPath, join(dir, "account.key.pem")]) expect(statSync(p).mode & 0o777).toBe(0o600);
      expect(responder.pending).toBe(0);
      // The chain verifies against pebble's root.
      const rootPath = join(dir, "root.pem");
      const { writeFileSync } = await import("node:fs");
      writeFileSync(rootPath, await pebble.rootPem());
      const out = execFileSync("openssl", ["verify", "-CAfile", rootPath, "-untrusted", issued.certPath, issued.certPath], { encoding: "utf8" });
      expect(out).toMatch(/OK/);
      // Stored: a restart finds it for the same names and directory, not for others.
      expect(loadStored(dir, domains, pebble.directoryUrl)?.serial).toBe(issued.serial);
      expect(loadStored(dir, domains, "https://other.test/dir")).toBeUndefined();
      expect(loadStored(dir, [domains[0]!], pebble.directoryUrl)).toBeUndefined();
      // A key that does not belong to the certificate (a crash between the two writes) is refused.
      const { writeSecret } = await import("../../../tls/acme/provision.js");
      const { createCsr } = await import("../../../tls/acme/csr.js");
      writeSecret(issued.keyPath, (await createCsr(["other.test"])).keyPem);
      expect(loadStored(dir, domains, pebble.directoryUrl)).toBeUndefined();
    });
  }

  it("a directory URL with a host name is resolved by the stack's own DNS resolver", async () => {
    await pebble.addA("pebble.test", "198.18.0.1");
    const dir = mkdtempSync(join(tmpdir(), "paf-acme-"));
    const before = (stack.stats() as { dns: Record<string, number> }).dns;
    const issued = await provision({
      domains: ["named.paf.test"],
      directoryUrl: pebble.directoryUrl.replace("198.18.0.1", "pebble.test"),
      ca: readFileSync(pebble.caPath),
      dir,
      transport: stackTransport(stack),
      responder,
    });
    expect(issued.names).toEqual(["named.paf.test"]);
    const after = (stack.stats() as { dns: Record<string, number> }).dns;
    expect(JSON.stringify(after)).not.toBe(JSON.stringify(before)); // the stack's resolver was used
    console.log(`stack dns counters: ${JSON.stringify(after)}`);
  });

  it("the renewal scheduler renews by itself when the threshold exceeds the remaining validity", async () => {
    const dir = mkdtempSync(join(tmpdir(), "paf-acme-"));
    let connects = 0;
    // The test process lives in the root namespace, which cannot reach 198.18.0.1 at all: every
    // ACME connection is a paf flow over the TAP. Count them with a wrapping connector.
    const counting = new Connector();
    for (const p of defaultConnector().list())
      counting.register({
        ...p,
        open: (c, sig) => {
          connects++;
          return p.open(c, sig);
        },
      });
    const transport = { ...stackTransport(stack), connector: counting };
    const got: Issued[] = [];
    const sched = new RenewalScheduler({
      domains: ["renew.paf.test"],
      directoryUrl: pebble.directoryUrl,
      ca: readFileSync(pebble.caPath),
      dir,
      transport,
      responder,
      renewDays: 100_000, // pebble's certificates last 5 years: always due
      checkIntervalMs: 300,
      onCertificate: (i) => got.push(i),
    }).start();
    try {
      const { waitFor } = await import("../../helpers/netns.js");
      await waitFor(() => got.length >= 2, "two scheduled issuances", 30_000, 50);
    } finally {
      // Stopped with a renewal under way (one started here; a tick of the 300 ms interval may
      // have started it already): stop() waits for it, so no challenge token of it is left on
      // the responder the next test shares (it was, in 1 CI run, before stop() waited).
      const third = sched.renewNow().then(
        () => "issued",
        () => "failed",
      );
      await sched.stop();
      expect(responder.pending).toBe(0);
      expect(await Promise.race([third, Promise.resolve("still running")])).not.toBe("still running");
    }
    expect(got[0]!.serial).not.toBe(got[1]!.serial);
    expect(sched.current?.serial).toBe(got.at(-1)!.serial);
    expect(connects).toBeGreaterThanOrEqual(2);
    // And with a threshold below the remaining validity nothing is due.
    expect(new RenewalScheduler({ domains: ["x.test"], dir, transport, responder, renewDays: 30, current: got[1], onCertificate: () => {} }).due()).toBe(false);
  });

  it("a validation that cannot reach the challenge fails with the domain and pebble's detail", async () => {
    const dir = mkdtempSync(join(tmpdir(), "paf-acme-"));
    await web.stop(100); // nothing listens on port 80 any more: the stack answers RST
    try {
      const err = await provision({ domains: ["down.paf.test"], directoryUrl: pebble.directoryUrl, ca: readFileSync(pebble.caPath), dir, transport: stackTransport(stack), responder }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err).toBeInstanceOf(AcmeProblem);
      const p = err as AcmeProblem;
      expect(p.identifier).toBe("down.paf.test");
      expect(p.type).toMatch(/^urn:ietf:params:acme:error:/);
      expect(p.message).toMatch(/^ACME validation failed for down\.paf\.test: .*(refused|connect)/i);
      console.log(`failed validation reported as: ${p.message}`);
      expect(responder.pending).toBe(0);
    } finally {
      web = serve(httpService(responder.wrap(notFound)), stackListener(stack, { port: 80 }));
    }
  });
});
