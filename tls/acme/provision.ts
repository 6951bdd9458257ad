/**
 * Provisioning: account (key kept in a directory and reused), order, HTTP-01 challenges answered
 * by an Http01Responder mounted on the server's own HTTP port, finalization with a fresh key and
 * CSR, download of the chain, files written 0600. And renewal: a scheduler that renews when fewer
 * than N days remain and hands the new certificate to a callback (the server's setCertificate).
 * Nothing secret (keys, key authorizations) is ever logged.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { AcmeClient, type AcmeClientOptions } from "./client.js";
import { generateKey, keyAuthorization, keyToPem, loadKey, type AccountKeyType } from "./jws.js";
import { certificateInfo, createCsr, type CertKeyType } from "./csr.js";
import type { Http01Responder } from "./challenge.js";
import type { AcmeTransport } from "./transport.js";

/** Let's Encrypt's directories. Staging is the default: its certificates are not trusted by browsers, and its rate limits are generous. */
export const LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory";
export const LETSENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory";
/** Renew when fewer than this many days of validity remain. */
export const DEFAULT_RENEW_DAYS = 30;
/** How often the renewal scheduler looks at the certificate (twice a day, like certbot). */
export const DEFAULT_CHECK_INTERVAL_MS = 12 * 3600 * 1000;

const DAY_MS = 86_400_000;

export interface ProvisionOptions {
  /** DNS names for the certificate (the first one names its files). */
  domains: string[];
  email?: string | undefined;
  /** Default: LETSENCRYPT_STAGING. */
  directoryUrl?: string | undefined;
  /** Trusted roots for the ACME server's own TLS certificate (private CAs such as pebble). */
  ca?: string | Buffer | undefined;
  /** Where the account key and the certificates live (created 0700). */
  dir: string;
  transport: AcmeTransport;
  /** The responder the HTTP server on port 80 has mounted in front of its app. */
  responder: Http01Responder;
  /** Type of a new account key (an existing one is reused whatever its type). Default p256. */
  accountKeyType?: AccountKeyType;
  certKeyType?: CertKeyType;
  log?: (msg: string) => void;
  /** Client tuning (poll timeouts, badNonce retries, injected time). */
  client?: Partial<Omit<AcmeClientOptions, "directoryUrl" | "accountKey" | "transport" | "ca">>;
}

export interface Issued {
  key: Buffer;
  /** The chain, leaf first (PEM). */
  cert: Buffer;
  keyPath: string;
  certPath: string;
  notBefore: Date;
  notAfter: Date;
  names: string[];
  serial: string;
  /** Requests sent and badNonce retries while issuing (absent for a certificate loaded from disk). */
  stats?: { requests: number; badNonceRetries: number; polls: number };
}

/** The directory a certificate for `domains` is kept in: <dir>/<first domain>/. */
export function certDir(dir: string, domains: string[]): string {
  return join(dir, domains[0]!.replace(/^\*\./, "_wildcard.").replace(/[^A-Za-z0-9._-]/g, "_"));
}

/** Write a file 0600 atomically (a temporary file renamed over the old one). */
export function writeSecret(path: string, data: string | Buffer): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode: 0o600 });
  chmodSync(tmp, 0o600); // the umask cannot widen it, but an existing tmp file keeps its mode
  renameSync(tmp, path);
}

/** The account key at <dir>/account.key.pem, made (and written 0600) if absent. */
export function accountKey(dir: string, type: AccountKeyType = "p256"): ReturnType<typeof loadKey> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, "account.key.pem");
  if (existsSync(path)) return loadKey(readFileSync(path));
  const key = generateKey(type);
  writeSecret(path, keyToPem(key));
  return key;
}

/** True when fewer than `renewDays` days remain before `notAfter`. */
export function renewDue(notAfter: Date, now: number, renewDays: number): boolean {
  return notAfter.getTime() - now < renewDays * DAY_MS;
}

/**
 * A certificate already stored for exactly these domains and this directory URL, or undefined.
 * (A staging certificate is never reused for production, nor one for other names.)
 */
export function loadStored(dir: string, domains: string[], directoryUrl: string = LETSENCRYPT_STAGING): Issued | undefined {
  const d = certDir(dir, domains);
  const keyPath = join(d, "privkey.pem");
  const certPath = join(d, "fullchain.pem");
  const metaPath = join(d, "meta.json");
  if (!existsSync(keyPath) || !existsSync(certPath) || !existsSync(metaPath)) return undefined;
  try {
    const meta = JSON.parse(readFileSync(metaPath, "utf8")) as { directoryUrl?: string; domains?: string[] };
    if (meta.directoryUrl !== directoryUrl) return undefined;
    const cert = readFileSync(certPath);
    const info = certificateInfo(cert);
    const want = [...domains].map((n) => n.toLowerCase()).sort();
    const have = info.names.map((n) => n.toLowerCase()).sort();
    if (want.join(",") !== have.join(",")) return undefined;
    const key = readFileSync(keyPath);
    if (!new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))) return undefined;
    return { key, cert, keyPath, certPath, ...info };
  } catch {
    return undefined;
  }
}

/** Obtain a certificate for `opts.domains` now (RFC 8555 §7.1 flow) and store it. */
export async function provision(opts: ProvisionOptions): Promise<Issued> {
  const log = opts.log ?? (() => {});
  const directoryUrl = opts.directoryUrl ?? LETSENCRYPT_STAGING;
  const key = accountKey(opts.dir, opts.accountKeyType);
  const client = new AcmeClient({ ...opts.client, directoryUrl, accountKey: key, transport: opts.transport, ca: opts.ca });
  const tokens: string[] = [];
  try {
    const acct = await client.newAccount({ email: opts.email, termsOfServiceAgreed: true });
    log(`acme: ${acct.created ? "created" : "using"} account ${acct.url}`);
    const { url: orderUrl, order } = await client.newOrder(opts.domains);
    // §7.5: each pending authorization gets its HTTP-01 response in place, then the server is told.
    const waits: Promise<unknown>[] = [];
    for (const authzUrl of order.authorizations) {
      const authz = await client.getAuthorization(authzUrl);
      const name = authz.identifier.value;
      if (authz.status === "valid") continue;
      if (authz.status !== "pending") throw new Error(`ACME authorization for ${name} is ${authz.status}`);
      const ch = authz.challenges.find((c) => c.type === "http-01");
      if (!ch?.token) throw new Error(`the ACME server offers no http-01 challenge for ${name} (offered: ${authz.challenges.map((c) => c.type).join(", ")})`);
      opts.responder.set(ch.token, keyAuthorization(ch.token, key));
      tokens.push(ch.token);
      await client.respondToChallenge(ch.url, name);
      log(`acme: http-01 challenge for ${name} in place, waiting for validation`);
      waits.push(client.waitForAuthorization(authzUrl));
    }
    // Wait for all; the first failure is the one reported (with its domain and the server's detail).
    const results = await Promise.allSettled(waits);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    let ready = await client.waitForOrder(orderUrl, ["ready", "valid"]);
    const csr = await createCsr(opts.domains, opts.certKeyType);
    if (ready.status === "ready") ready = await client.finalize(orderUrl, ready, csr.der);
    if (!ready.certificate) throw new Error("the ACME order is valid but names no certificate URL");
    const chain = await client.downloadCertificate(ready.certificate);
    const info = certificateInfo(chain);
    const d = certDir(opts.dir, opts.domains);
    mkdirSync(d, { recursive: true, mode: 0o700 });
    const keyPath = join(d, "privkey.pem");
    const certPath = join(d, "fullchain.pem");
    // Each file is replaced atomically; a crash between the key and the certificate leaves a pair
    // that loadStored rejects (it checks that the key belongs to the certificate), so nothing
    // mismatched is ever served.
    writeSecret(join(d, "meta.json"), JSON.stringify({ directoryUrl, domains: opts.domains, account: acct.url }, null, 2) + "\n");
    writeSecret(keyPath, csr.keyPem);
    writeSecret(certPath, chain);
    log(`acme: certificate for ${info.names.join(", ")} issued, valid until ${info.notAfter.toISOString()}, written to ${certPath}`);
    return { key: Buffer.from(csr.keyPem), cert: Buffer.from(chain), keyPath, certPath, ...info, stats: { ...client.stats } };
  } finally {
    for (const t of tokens) opts.responder.delete(t);
    client.close();
  }
}

export interface RenewalOptions extends ProvisionOptions {
  /** Renew when fewer than this many days remain. Default DEFAULT_RENEW_DAYS (30). */
  renewDays?: number;
  /** How often to look. Default DEFAULT_CHECK_INTERVAL_MS (12 h). */
  checkIntervalMs?: number;
  /** The certificate in use now (loaded from disk or just issued). */
  current?: Issued | undefined;
  /** Called with every new certificate (swap it into the server here). */
  onCertificate: (issued: Issued) => void;
  /** Called when a scheduled renewal fails (the old certificate stays in use; the next check retries). */
  onError?: (err: Error) => void;
  now?: () => number;
}

/**
 * Renewal: every checkIntervalMs, renew if the current certificate is due (or missing).
 * renewNow() renews at once (one renewal at a time: a second call joins the first).
 */
export class RenewalScheduler {
  private timer: NodeJS.Timeout | undefined;
  private inflight: Promise<Issued> | undefined;
  private cur: Issued | undefined;
  private readonly now: () => number;
  constructor(private readonly opts: RenewalOptions) {
    this.cur = opts.current;
    this.now = opts.now ?? Date.now;
  }

  get current(): Issued | undefined {
    return this.cur;
  }

  /** Whether the current certificate should be renewed now. */
  due(): boolean {
    return !this.cur || renewDue(this.cur.notAfter, this.now(), this.opts.renewDays ?? DEFAULT_RENEW_DAYS);
  }

  renewNow(): Promise<Issued> {
    if (this.inflight) return this.inflight;
    const p = provision(this.opts).then((issued) => {
      this.cur = issued;
      this.opts.onCertificate(issued);
      return issued;
    });
    this.inflight = p;
    const clear = () => {
      if (this.inflight === p) this.inflight = undefined;
    };
    p.then(clear, clear);
    return p;
  }

  /** Start the periodic checks. */
  start(): this {
    this.stop();
    const interval = Math.min(this.opts.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS, 2 ** 31 - 1);
    this.timer = setInterval(() => {
      if (!this.due() || this.inflight) return;
      this.renewNow().catch((e: Error) => this.opts.onError?.(e));
    }, interval);
    this.timer.unref();
    return this;
  }

  /**
   * Stop the periodic checks. A renewal already under way is not cut short (its certificate, if
   * issued, still reaches onCertificate); the promise resolves once it has settled, its
   * challenge tokens withdrawn from the responder, so nothing of this scheduler runs after it.
   */
  stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const p = this.inflight;
    return p
      ? p.then(
          () => undefined,
          () => undefined,
        )
      : Promise.resolve();
  }
}
