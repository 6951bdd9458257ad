/**
 * JSON Web Signatures for ACME (RFC 8555 §6.2, RFC 7515 flattened JSON serialization) and JWK
 * thumbprints (RFC 7638), with node:crypto only. Account keys: ECDSA P-256 (ES256, the default),
 * Ed25519 (EdDSA, RFC 8037) and RSA (RS256).
 */
import { createHash, createPrivateKey, generateKeyPairSync, sign, type KeyObject } from "node:crypto";

export type AccountKeyType = "p256" | "ed25519" | "rsa";
export const ACCOUNT_KEY_TYPES: readonly AccountKeyType[] = ["p256", "ed25519", "rsa"];

export type JwsAlg = "ES256" | "EdDSA" | "RS256";

/** The public members of a JWK, exactly those RFC 7638 §3.2 hashes. */
export type PublicJwk = { kty: "EC"; crv: string; x: string; y: string } | { kty: "OKP"; crv: string; x: string } | { kty: "RSA"; e: string; n: string };

export interface FlattenedJws {
  protected: string;
  payload: string;
  signature: string;
}

export function b64url(data: Buffer | Uint8Array | string): string {
  return Buffer.from(data).toString("base64url");
}

/** A fresh account (or certificate) key. RSA keys are 2048 bits unless `rsaBits` says otherwise. */
export function generateKey(type: AccountKeyType = "p256", rsaBits = 2048): KeyObject {
  switch (type) {
    case "p256":
      return generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    case "ed25519":
      return generateKeyPairSync("ed25519").privateKey;
    case "rsa":
      return generateKeyPairSync("rsa", { modulusLength: rsaBits }).privateKey;
  }
}

/** Read a PEM (PKCS#8 or traditional) private key. */
export function loadKey(pem: string | Buffer): KeyObject {
  return createPrivateKey(pem);
}

export function keyToPem(key: KeyObject): string {
  return key.export({ type: "pkcs8", format: "pem" }).toString();
}

/** The JWS algorithm for a key (RFC 7518 §3.1, RFC 8037 §3.1). */
export function jwsAlg(key: KeyObject): JwsAlg {
  const t = key.asymmetricKeyType;
  if (t === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve !== "prime256v1" && curve !== "P-256") throw new TypeError(`ACME account keys on curve ${curve} are not supported (use P-256)`);
    return "ES256";
  }
  if (t === "ed25519") return "EdDSA";
  if (t === "rsa") return "RS256";
  throw new TypeError(`unsupported account key type ${t} (use ECDSA P-256, Ed25519 or RSA)`);
}

/** The public JWK with only the required members (no private parts, no "alg"/"use"). */
export function publicJwk(key: KeyObject): PublicJwk {
  const j = key.export({ format: "jwk" }) as Record<string, string>;
  if (j.kty === "EC") return { kty: "EC", crv: j.crv!, x: j.x!, y: j.y! };
  if (j.kty === "OKP") return { kty: "OKP", crv: j.crv!, x: j.x! };
  if (j.kty === "RSA") return { kty: "RSA", e: j.e!, n: j.n! };
  throw new TypeError(`unsupported key type ${j.kty}`);
}

/** RFC 7638 §3: SHA-256 over the required members, lexicographically ordered, no whitespace. */
export function jwkThumbprint(jwk: PublicJwk | Record<string, string>): string {
  const j = jwk as Record<string, string>;
  const members = j.kty === "EC" ? ["crv", "kty", "x", "y"] : j.kty === "OKP" ? ["crv", "kty", "x"] : j.kty === "RSA" ? ["e", "kty", "n"] : undefined;
  if (!members) throw new TypeError(`unsupported JWK kty ${j.kty}`);
  const canonical = "{" + members.map((m) => `${JSON.stringify(m)}:${JSON.stringify(j[m])}`).join(",") + "}";
  return b64url(createHash("sha256").update(canonical).digest());
}

/** RFC 8555 §8.1: token "." base64url(thumbprint of the account key). */
export function keyAuthorization(token: string, accountKey: KeyObject): string {
  return `${token}.${jwkThumbprint(publicJwk(accountKey))}`;
}

export interface ProtectedHeader {
  url: string;
  nonce?: string;
  /** The account URL once the account exists (§6.2); otherwise the JWK is embedded. */
  kid?: string;
}

/**
 * Sign an ACME request body. `payload` undefined means POST-as-GET (§6.3: the empty string, not
 * base64url of anything). ES256 signatures are the raw r||s pair (RFC 7518 §3.4), not DER.
 */
export function signJws(key: KeyObject, header: ProtectedHeader, payload: unknown): FlattenedJws {
  const alg = jwsAlg(key);
  const prot: Record<string, unknown> = { alg, ...(header.kid ? { kid: header.kid } : { jwk: publicJwk(key) }), ...(header.nonce !== undefined ? { nonce: header.nonce } : {}), url: header.url };
  const protectedB64 = b64url(JSON.stringify(prot));
  const payloadB64 = payload === undefined ? "" : b64url(JSON.stringify(payload));
  const input = Buffer.from(`${protectedB64}.${payloadB64}`);
  const sig = alg === "ES256" ? sign("sha256", input, { key, dsaEncoding: "ieee-p1363" }) : alg === "EdDSA" ? sign(null, input, key) : sign("sha256", input, key);
  return { protected: protectedB64, payload: payloadB64, signature: b64url(sig) };
}
