/**
 * A self-signed certificate for `paf serve --https` without --cert/--key (and for tests): an
 * ECDSA P-256 key and a certificate for the given names, made in memory with @peculiar/x509 over
 * Node's WebCrypto. Nothing is written to disk: the private key never leaves the process, so no
 * key file can be left behind. The certificate (public) can be written where clients read it.
 */
import { X509Certificate, createHash, webcrypto } from "node:crypto";
import { isIP } from "node:net";
import * as x509 from "@peculiar/x509";
import { pemEncode } from "./pem.js";

export interface SelfSigned {
  /** The private key, PKCS#8 PEM (in memory only). */
  key: Buffer;
  /** The certificate, PEM. */
  cert: Buffer;
  /** SHA-256 of the certificate, colon-separated hex (what browsers and openssl show). */
  fingerprint256: string;
  /** SHA-256 of the SubjectPublicKeyInfo, base64: `curl --pinnedpubkey sha256//<this>`, Chromium's SPKI list. */
  spkiSha256: string;
}

export interface SelfSignedOptions {
  /** Validity in days from now. Default 30. */
  days?: number;
}

const crypto = webcrypto;
const ECDSA = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

/** A fresh key and a certificate naming `names` (DNS names and IP literals) in its subjectAltName. */
export async function selfSigned(names: string[], opts: SelfSignedOptions = {}): Promise<SelfSigned> {
  if (names.length === 0) throw new TypeError("a self-signed certificate needs at least one name");
  const days = opts.days ?? 30;
  const keys = (await crypto.subtle.generateKey(ECDSA, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const serial = Buffer.from(crypto.getRandomValues(new Uint8Array(16)));
  serial[0]! &= 0x7f; // a positive INTEGER (RFC 5280 §4.1.2.2)
  const c = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial.toString("hex"),
      name: `CN=${names[0]!.length <= 64 ? names[0] : "paf"}`,
      notBefore: new Date(now - 60_000), // a minute of slack for clocks a little behind
      notAfter: new Date(now + days * 86_400_000),
      keys: keys as never,
      signingAlgorithm: ECDSA,
      extensions: [
        // Self-issued and trusted as its own anchor (curl --cacert, Node's `ca`): a CA, as
        // `openssl req -x509` makes them, so OpenSSL accepts it at the top of the chain.
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension(names.map((n) => (isIP(n) ? { type: "ip" as const, value: n } : { type: "dns" as const, value: n }))),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as never, false, crypto as never),
      ],
    },
    crypto as never,
  );
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  const spki = Buffer.from(await crypto.subtle.exportKey("spki", keys.publicKey));
  const cert = Buffer.from(c.toString("pem") + "\n");
  return {
    key: Buffer.from(pemEncode("PRIVATE KEY", pkcs8)),
    cert,
    fingerprint256: new X509Certificate(cert).fingerprint256,
    spkiSha256: createHash("sha256").update(spki).digest("base64"),
  };
}
