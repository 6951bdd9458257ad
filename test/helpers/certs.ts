// Certificates made by openssl, a tool nobody here wrote (the project's own are made in memory by
// tls/selfsigned.ts): tests that want a certificate from outside, or files on disk for the CLI.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

export interface OpensslCert {
  keyPath: string;
  certPath: string;
  key: Buffer;
  cert: Buffer;
}

/**
 * A self-signed P-256 certificate for `cn` (with `san`, e.g. "DNS:paf.test,IP:198.18.0.2"), valid
 * `days` (default 2): `<name>.key` and `<name>.pem` in `dir`, and their contents.
 */
export function opensslCert(dir: string, name: string, o: { cn: string; san?: string; days?: number }): OpensslCert {
  const keyPath = join(dir, `${name}.key`);
  const certPath = join(dir, `${name}.pem`);
  execFileSync(
    "openssl",
    [
      ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"],
      ...["-keyout", keyPath, "-out", certPath, "-days", String(o.days ?? 2), "-subj", `/CN=${o.cn}`],
      ...(o.san ? ["-addext", `subjectAltName=${o.san}`] : []),
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  return { keyPath, certPath, key: readFileSync(keyPath), cert: readFileSync(certPath) };
}
