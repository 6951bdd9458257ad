/**
 * A self-signed certificate for `paf serve --https` without --cert/--key: an ECDSA P-256 key and
 * a certificate for the given names, made with the openssl command (Node has no X.509 writer),
 * written 0600 into a fresh temporary directory. Returns PEMs, the paths and the SHA-256
 * fingerprint to print.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, chmodSync } from "node:fs";
import { X509Certificate } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isIP } from "node:net";

export interface SelfSigned {
  key: Buffer;
  cert: Buffer;
  keyPath: string;
  certPath: string;
  fingerprint256: string;
}

export function selfSigned(names: string[], days = 30): SelfSigned {
  const dir = mkdtempSync(join(tmpdir(), "paf-cert-"));
  const keyPath = join(dir, "key.pem");
  const certPath = join(dir, "cert.pem");
  const san = names.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(",");
  try {
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", keyPath, "-out", certPath, "-days", String(days), "-subj", `/CN=${names[0] ?? "paf"}`, "-addext", `subjectAltName=${san}`], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (e) {
    const err = e as Error & { code?: string; stderr?: Buffer };
    if (err.code === "ENOENT") throw new Error("generating a self-signed certificate needs the openssl command (apt-get install openssl), or pass --cert and --key");
    throw new Error(`openssl failed to make a certificate: ${err.stderr?.toString() ?? err.message}`);
  }
  chmodSync(keyPath, 0o600);
  const cert = readFileSync(certPath);
  return { key: readFileSync(keyPath), cert, keyPath, certPath, fingerprint256: new X509Certificate(cert).fingerprint256 };
}
