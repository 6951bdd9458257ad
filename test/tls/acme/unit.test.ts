// ACME building blocks without a server: JWS (RFC 7515 / RFC 8555 §6.2) for the three account key
// types, the JWK thumbprint (RFC 7638 §3.1's example), the CSR (RFC 2986) with its SANs, the
// HTTP-01 responder (RFC 8555 §8.3), Retry-After parsing and the renewal threshold.
import { describe, expect, it } from "vitest";
import { createPublicKey, verify, type KeyObject } from "node:crypto";
import { execFileSync } from "node:child_process";
import http from "node:http";
import { mkdtempSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateKey, jwkThumbprint, jwsAlg, keyAuthorization, publicJwk, signJws } from "../../../tls/acme/jws.js";
import { certificateInfo, createCsr, csrNames } from "../../../tls/acme/csr.js";
import { Http01Responder } from "../../../tls/acme/challenge.js";
import { retryAfterMs, AcmeProblem } from "../../../tls/acme/client.js";
import { accountKey, renewDue, writeSecret } from "../../../tls/acme/provision.js";
import { opensslCert } from "../../helpers/certs.js";

function verifyJws(jws: { protected: string; payload: string; signature: string }, pub: KeyObject, alg: string): boolean {
  const input = Buffer.from(`${jws.protected}.${jws.payload}`);
  const sig = Buffer.from(jws.signature, "base64url");
  if (alg === "ES256") return verify("sha256", input, { key: pub, dsaEncoding: "ieee-p1363" }, sig);
  if (alg === "EdDSA") return verify(null, input, pub, sig);
  return verify("sha256", input, pub, sig);
}

describe("JWS for ACME requests (RFC 8555 §6.2)", () => {
  for (const [type, alg, sigLen] of [
    ["p256", "ES256", 64],
    ["ed25519", "EdDSA", 64],
    ["rsa", "RS256", 256],
  ] as const) {
    it(`${type}: ${alg} signatures verify with node:crypto, jwk before the account exists, kid after`, () => {
      const key = generateKey(type);
      expect(jwsAlg(key)).toBe(alg);
      const jws = signJws(key, { url: "https://ca.test/new-acct", nonce: "n1" }, { termsOfServiceAgreed: true });
      const prot = JSON.parse(Buffer.from(jws.protected, "base64url").toString());
      expect(prot).toEqual({ alg, jwk: publicJwk(key), nonce: "n1", url: "https://ca.test/new-acct" });
      // The JWK carries no private member.
      expect(Object.keys(prot.jwk).sort()).toEqual(type === "rsa" ? ["e", "kty", "n"] : type === "p256" ? ["crv", "kty", "x", "y"] : ["crv", "kty", "x"]);
      expect(JSON.parse(Buffer.from(jws.payload, "base64url").toString())).toEqual({ termsOfServiceAgreed: true });
      expect(Buffer.from(jws.signature, "base64url").length).toBe(sigLen); // ES256: raw r||s, not DER
      const pub = createPublicKey({ key: prot.jwk, format: "jwk" });
      expect(verifyJws(jws, pub, alg)).toBe(true);
      // Tampering breaks it.
      expect(verifyJws({ ...jws, payload: jws.payload + "x" }, pub, alg)).toBe(false);
      // After newAccount: kid instead of jwk; POST-as-GET has an empty payload (§6.3).
      const get = signJws(key, { url: "https://ca.test/order/1", nonce: "n2", kid: "https://ca.test/acct/7" }, undefined);
      expect(JSON.parse(Buffer.from(get.protected, "base64url").toString())).toEqual({ alg, kid: "https://ca.test/acct/7", nonce: "n2", url: "https://ca.test/order/1" });
      expect(get.payload).toBe("");
      expect(verifyJws(get, createPublicKey(key), alg)).toBe(true);
    });
  }

  it("JWK thumbprint of RFC 7638 §3.1's example RSA key", () => {
    const jwk = {
      kty: "RSA",
      n: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
      e: "AQAB",
      alg: "RS256",
      kid: "2011-04-29",
    };
    expect(jwkThumbprint(jwk)).toBe("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    // Importing the same key and exporting its public JWK gives the same thumbprint.
    const pub = createPublicKey({ key: { kty: "RSA", n: jwk.n, e: jwk.e }, format: "jwk" });
    expect(jwkThumbprint(publicJwk(pub))).toBe("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
  });

  it("key authorization is token.thumbprint (§8.1)", () => {
    const key = generateKey("p256");
    expect(keyAuthorization("tok-123", key)).toBe(`tok-123.${jwkThumbprint(publicJwk(key))}`);
  });
});

describe("CSR (PKCS#10) with subjectAltName", () => {
  for (const kt of ["p256", "rsa"] as const) {
    it(`${kt}: parses back with its SANs, its signature verifies (openssl), and the key matches`, async () => {
      const csr = await createCsr(["a.example.test", "b.example.test"], kt);
      expect(csrNames(csr.der)).toEqual(["a.example.test", "b.example.test"]);
      expect(csrNames(csr.pem)).toEqual(["a.example.test", "b.example.test"]);
      const dir = mkdtempSync(join(tmpdir(), "paf-csr-"));
      writeFileSync(join(dir, "req.pem"), csr.pem);
      writeFileSync(join(dir, "key.pem"), csr.keyPem);
      const text = execFileSync("openssl", ["req", "-in", join(dir, "req.pem"), "-noout", "-verify", "-text"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
      expect(text).toMatch(/DNS:a\.example\.test, DNS:b\.example\.test/);
      expect(text).toMatch(/CN\s*=\s*a\.example\.test/);
      const pubFromKey = execFileSync("openssl", ["pkey", "-in", join(dir, "key.pem"), "-pubout"], { encoding: "utf8" });
      const pubFromReq = execFileSync("openssl", ["req", "-in", join(dir, "req.pem"), "-noout", "-pubkey"], { encoding: "utf8" });
      expect(pubFromReq).toBe(pubFromKey);
    });
  }

  it("certificateInfo reads names and expiry of a chain's leaf", () => {
    const dir = mkdtempSync(join(tmpdir(), "paf-crt-"));
    const leaf = opensslCert(dir, "x", { cn: "x.test", san: "DNS:x.test,DNS:y.test", days: 10 }).cert.toString();
    const pem = leaf + leaf;
    const info = certificateInfo(pem);
    expect(info.names).toEqual(["x.test", "y.test"]);
    const days = (info.notAfter.getTime() - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(9.9);
    expect(days).toBeLessThan(10.1);
    expect(renewDue(info.notAfter, Date.now(), 30)).toBe(true);
    expect(renewDue(info.notAfter, Date.now(), 5)).toBe(false);
  });
});

describe("HTTP-01 responder (§8.3)", () => {
  it("answers registered tokens with the key authorization, passes everything else to the app", async () => {
    const r = new Http01Responder();
    const server = http.createServer(r.wrap((req, res) => res.end(`app ${req.url}`)));
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    const port = (server.address() as { port: number }).port;
    const get = async (path: string) => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: res.status, body: await res.text(), type: res.headers.get("content-type") };
    };
    try {
      r.set("tok1", "tok1.thumb");
      expect(await get("/.well-known/acme-challenge/tok1")).toEqual({ status: 200, body: "tok1.thumb", type: "application/octet-stream" });
      expect((await get("/.well-known/acme-challenge/other")).body).toBe("app /.well-known/acme-challenge/other");
      expect((await get("/index.html")).body).toBe("app /index.html");
      r.delete("tok1");
      expect((await get("/.well-known/acme-challenge/tok1")).body).toBe("app /.well-known/acme-challenge/tok1");
      expect(r.stats).toEqual({ answered: 1, unknown: 2 });
    } finally {
      server.close();
    }
  });
});

describe("client details", () => {
  it("Retry-After in seconds or as an HTTP-date (RFC 9110 §10.2.3)", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(retryAfterMs("3", now)).toBe(3000);
    expect(retryAfterMs("Thu, 01 Jan 2026 00:00:05 GMT", now)).toBe(5000);
    expect(retryAfterMs(undefined, now)).toBeUndefined();
    expect(retryAfterMs("soon", now)).toBeUndefined();
  });

  it("problem documents become errors naming the identifier, the detail and the type", () => {
    const e = new AcmeProblem({ type: "urn:ietf:params:acme:error:connection", detail: "Connection refused", status: 400 }, "ACME validation failed", "a.test");
    expect(e.message).toBe("ACME validation failed for a.test: Connection refused (connection, HTTP 400)");
    expect([e.type, e.detail, e.status, e.identifier]).toEqual(["urn:ietf:params:acme:error:connection", "Connection refused", 400, "a.test"]);
  });

  it("the account key is written 0600 and reused", () => {
    const dir = join(mkdtempSync(join(tmpdir(), "paf-acct-")), "acme");
    const k1 = accountKey(dir, "ed25519");
    expect(statSync(join(dir, "account.key.pem")).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const k2 = accountKey(dir, "p256");
    expect(jwkThumbprint(publicJwk(k2))).toBe(jwkThumbprint(publicJwk(k1)));
    writeSecret(join(dir, "x.pem"), "secret");
    expect(statSync(join(dir, "x.pem")).mode & 0o777).toBe(0o600);
  });
});
