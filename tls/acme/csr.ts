/**
 * The certificate's key and its PKCS#10 request (RFC 2986) with the DNS names as subjectAltName
 * (RFC 5280 §4.2.1.6), and reading back what a PEM certificate says (names, validity), with
 * @peculiar/x509 over Node's WebCrypto (passed explicitly: no global provider is set).
 */
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { pemEncode } from "../pem.js";

export type CertKeyType = "p256" | "rsa";
export const CERT_KEY_TYPES: readonly CertKeyType[] = ["p256", "rsa"];

export interface Csr {
  /** The certificate's private key, PKCS#8 PEM. */
  keyPem: string;
  /** The request, DER (what ACME's finalize wants, base64url-encoded). */
  der: Uint8Array;
  pem: string;
}

const crypto = webcrypto;
/** subjectAltName (RFC 5280 §4.2.1.6). */
const OID_SAN = "2.5.29.17";

/** A fresh key and a CSR for `domains` (the first one also as CN when it fits the 64-character limit). */
export async function createCsr(domains: string[], keyType: CertKeyType = "p256"): Promise<Csr> {
  if (domains.length === 0) throw new TypeError("a certificate request needs at least one domain");
  const alg =
    keyType === "p256"
      ? { gen: { name: "ECDSA", namedCurve: "P-256" }, sign: { name: "ECDSA", hash: "SHA-256" } }
      : { gen: { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, sign: { name: "RSASSA-PKCS1-v1_5" } };
  const keys = (await crypto.subtle.generateKey(alg.gen, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const first = domains[0]!;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    {
      ...(first.length <= 64 ? { name: `CN=${first}` } : {}),
      keys: keys as never,
      signingAlgorithm: alg.sign,
      extensions: [new x509.SubjectAlternativeNameExtension(domains.map((value) => ({ type: "dns" as const, value })))],
    },
    crypto as never,
  );
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  const keyPem = pemEncode("PRIVATE KEY", pkcs8);
  return { keyPem, der: new Uint8Array(csr.rawData), pem: csr.toString("pem") };
}

/** The DNS names a CSR asks for (its subjectAltName extension). */
export function csrNames(csrPemOrDer: string | Uint8Array): string[] {
  const csr = new x509.Pkcs10CertificateRequest(typeof csrPemOrDer === "string" ? csrPemOrDer : Buffer.from(csrPemOrDer));
  const ext = csr.getExtension(OID_SAN);
  if (!ext) return [];
  return new x509.SubjectAlternativeNameExtension(ext.rawData).names.items.filter((n) => n.type === "dns").map((n) => n.value);
}

export interface CertInfo {
  notBefore: Date;
  notAfter: Date;
  /** subjectAltName DNS names of the leaf. */
  names: string[];
  serial: string;
  issuer: string;
}

/** What the leaf (first certificate) of a PEM chain says. */
export function certificateInfo(chainPem: string | Buffer): CertInfo {
  const pem = chainPem.toString();
  const first = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/);
  if (!first) throw new Error("no PEM certificate found");
  const c = new x509.X509Certificate(first[0]);
  const san = c.getExtension(x509.SubjectAlternativeNameExtension);
  return { notBefore: c.notBefore, notAfter: c.notAfter, names: san ? san.names.items.filter((n) => n.type === "dns").map((n) => n.value) : [], serial: c.serialNumber, issuer: c.issuer };
}
