/**
 * `paf certify`: obtain (or renew) an ACME certificate and write its files, nothing else. The
 * HTTP-01 challenge is answered on the chosen stack's port 80 (--http), and the ACME requests
 * travel over the same stack (the userspace stack for --tap, the kernel for --host).
 * Also the --acme-* options shared with `paf serve`, and the runtime serve uses to obtain,
 * renew and hot-swap its HTTPS certificate.
 */
import { certificatesOption } from "./files.js";
import { homedir } from "node:os";
import { join, resolve as resolvePath } from "node:path";
import { isIP } from "node:net";
import { intOption, UsageError } from "./args.js";
import type { ServeConfig } from "./serve.js";
import type { Stack } from "../stack/stack.js";
import { serve as serveHttp } from "../http/serve.js";
import { hostListener, stackListener } from "../http/listener.js";
import { httpService } from "../http/services.js";
import { Http01Responder, notFound } from "../tls/acme/challenge.js";
import { DEFAULT_RENEW_DAYS, LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING, RenewalScheduler, loadStored, provision, renewDue, type Issued } from "../tls/acme/provision.js";
import { hostTransport, stackTransport, type AcmeTransport } from "../tls/acme/transport.js";
import { openTapStack } from "./tapstack.js";

/** The --acme-* options (paf serve and paf certify). */
export const ACME_OPTIONS = {
  "acme-domain": { type: "string", multiple: true },
  "acme-email": { type: "string" },
  "acme-directory": { type: "string" },
  "acme-ca": { type: "string" },
  "acme-dir": { type: "string" },
  "acme-renew-days": { type: "string" },
} as const;

export const ACME_USAGE = `  --acme-domain NAME     obtain a certificate for NAME from an ACME CA (repeat for more names);
                         the HTTP-01 challenge is answered on --http (port 80 by default)
  --acme-email EMAIL     contact address for the ACME account
  --acme-directory URL   ACME directory: a URL, "staging" (default: Let's Encrypt staging,
                         ${LETSENCRYPT_STAGING}) or "production"
  --acme-ca FILE         trusted roots (PEM) for the ACME server's own certificate (private CAs)
  --acme-dir DIR         where the account key and certificates are kept (default ~/.paf/acme)
  --acme-renew-days N    renew when fewer than N days remain (default ${DEFAULT_RENEW_DAYS})`;

export const CERTIFY_USAGE = `usage: paf certify (--tap NAME --ipv4 CIDR [--ipv6 CIDR] | --host ADDR) [--gateway IP]...
                   --acme-domain NAME [--acme-domain NAME]... [--acme-email EMAIL]
                   [--acme-directory URL] [--acme-ca FILE] [--acme-dir DIR] [--acme-renew-days N]
                   [--http PORT] [--mac MAC] [--tap-netns NAME] [--mtu N] [--pcap FILE]

Obtains a certificate (unless the stored one has more than --acme-renew-days left), writes
<acme-dir>/<first name>/privkey.pem and fullchain.pem (mode 0600) and exits. The challenge is
served on --http (default 80) of the stack, and the ACME requests go over the same stack.

${ACME_USAGE}`;

export interface AcmeConfig {
  domains: string[];
  email: string | undefined;
  directoryUrl: string;
  ca: Buffer | undefined;
  dir: string;
  renewDays: number;
}

export interface AcmeValues {
  "acme-domain"?: string[] | undefined;
  "acme-email"?: string | undefined;
  "acme-directory"?: string | undefined;
  "acme-ca"?: string | undefined;
  "acme-dir"?: string | undefined;
  "acme-renew-days"?: string | undefined;
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** Validate the --acme-* options; undefined when none is given. */
export function parseAcmeArgs(values: AcmeValues): AcmeConfig | undefined {
  const domains = values["acme-domain"] ?? [];
  if (domains.length === 0) {
    const stray = (Object.keys(ACME_OPTIONS) as Array<keyof AcmeValues>).find((k) => values[k] !== undefined);
    if (stray) throw new UsageError(`--${stray} needs --acme-domain NAME (the name to get a certificate for)`);
    return undefined;
  }
  const seen = new Set<string>();
  for (const raw of domains) {
    const d = raw.toLowerCase().replace(/\.$/, "");
    if (isIP(d)) throw new UsageError(`--acme-domain: "${raw}" is an IP address; ACME HTTP-01 certificates are for DNS names`);
    if (d.startsWith("*.")) throw new UsageError(`--acme-domain: "${raw}" is a wildcard; wildcards need the DNS-01 challenge, paf answers HTTP-01`);
    if (d.length > 253 || !d.includes(".") || !d.split(".").every((l) => LABEL.test(l)))
      throw new UsageError(`--acme-domain: "${raw}" is not a valid DNS name (dot-separated labels of letters, digits and hyphens)`);
    if (seen.has(d)) throw new UsageError(`--acme-domain: "${raw}" is given twice`);
    seen.add(d);
  }
  const email = values["acme-email"];
  if (email !== undefined && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) throw new UsageError(`--acme-email: "${email}" is not an email address`);
  const dirArg = values["acme-directory"] ?? "staging";
  const directoryUrl = dirArg === "staging" ? LETSENCRYPT_STAGING : dirArg === "production" ? LETSENCRYPT_PRODUCTION : dirArg;
  let url: URL;
  try {
    url = new URL(directoryUrl);
  } catch {
    throw new UsageError(`--acme-directory: "${dirArg}" is not a URL (or "staging" / "production")`);
  }
  if (url.protocol !== "https:") throw new UsageError(`--acme-directory: ACME directories are https: URLs, got "${dirArg}"`);
  let ca: Buffer | undefined;
  if (values["acme-ca"] !== undefined) ca = certificatesOption("--acme-ca", values["acme-ca"]);
  return {
    domains: [...seen],
    email,
    directoryUrl,
    ca,
    dir: resolvePath(values["acme-dir"] ?? join(homedir(), ".paf", "acme")),
    renewDays: intOption("acme-renew-days", values["acme-renew-days"], 0, 36500, DEFAULT_RENEW_DAYS),
  };
}

function describe(i: Issued): string {
  return `for ${i.names.join(",")} serial ${i.serial} valid until ${i.notAfter.toISOString()}`;
}

/**
 * What `paf serve` runs: the responder to mount on HTTP, the stored certificate if it is still
 * good, and a scheduler that obtains / renews and hands each certificate to `install`.
 */
export class AcmeRuntime {
  readonly responder = new Http01Responder();
  readonly stored: Issued | undefined;
  private readonly scheduler: RenewalScheduler;

  constructor(
    readonly cfg: AcmeConfig,
    transport: AcmeTransport,
    install: (issued: Issued) => void,
  ) {
    const s = loadStored(cfg.dir, cfg.domains, cfg.directoryUrl);
    this.stored = s && !renewDue(s.notAfter, Date.now(), cfg.renewDays) ? s : undefined;
    this.scheduler = new RenewalScheduler({
      domains: cfg.domains,
      email: cfg.email,
      directoryUrl: cfg.directoryUrl,
      ca: cfg.ca,
      dir: cfg.dir,
      transport,
      responder: this.responder,
      renewDays: cfg.renewDays,
      current: this.stored,
      log: (m) => console.log(m),
      onCertificate: (i) => {
        install(i);
        console.log(`acme certificate ${describe(i)} installed${i.stats ? ` (${i.stats.requests} requests, ${i.stats.badNonceRetries} badNonce retries)` : ""}`);
      },
      onError: (e) => console.error(`paf: acme renewal failed (the current certificate stays in use): ${e.message}`),
    });
  }

  /** Obtain the first certificate unless a stored one is good, then check for renewal periodically. */
  async start(): Promise<void> {
    if (this.stored) console.log(`acme certificate ${describe(this.stored)} loaded from ${this.stored.certPath}`);
    else await this.scheduler.renewNow();
    this.scheduler.start();
  }

  /** Renew at once (SIGHUP). Failures are reported and leave the current certificate in place. */
  renewNow(): Promise<void> {
    return this.scheduler.renewNow().then(
      () => undefined,
      (e: Error) => console.error(`paf: acme renewal failed (the current certificate stays in use): ${e.message}`),
    );
  }

  /** Stop renewing (a renewal under way finishes by itself; the process need not wait for it). */
  stop(): void {
    void this.scheduler.stop();
  }
}

export async function certify(argv: string[]): Promise<number> {
  // serve.ts imports this module; importing it back lazily keeps the module graph acyclic at load.
  const { parseServeArgs } = await import("./serve.js");
  const cfg: ServeConfig = parseServeArgs(argv, "certify");
  const acme = cfg.acme!;
  let stack: Stack | undefined;
  if (cfg.tap) {
    stack = openTapStack({ tap: cfg.tap, tapNetns: cfg.tapNetns, pcap: cfg.pcap, stack: cfg.stack, offload: cfg.offload });
  }
  const s = stack;
  try {
    const stored = loadStored(acme.dir, acme.domains, acme.directoryUrl);
    if (stored && !renewDue(stored.notAfter, Date.now(), acme.renewDays)) {
      console.log(`certificate ${describe(stored)} is not due for renewal (more than ${acme.renewDays} days left): ${stored.certPath} ${stored.keyPath}`);
      return 0;
    }
    const responder = new Http01Responder();
    const web = serveHttp(httpService(responder.wrap(notFound)), s ? stackListener(s, { port: cfg.http }) : await hostListener({ host: cfg.host!, port: cfg.http }));
    try {
      if (s) await s.ready();
      console.log(`answering ACME challenges on ${s ? `${cfg.tap} ${s.addresses().join(" ")}` : `host ${cfg.host}`} http ${cfg.http}`);
      const issued = await provision({
        domains: acme.domains,
        email: acme.email,
        directoryUrl: acme.directoryUrl,
        ca: acme.ca,
        dir: acme.dir,
        transport: s ? stackTransport(s) : hostTransport(),
        responder,
        log: (m) => console.log(m),
      });
      console.log(`certificate ${describe(issued)}: ${issued.certPath} ${issued.keyPath}`);
      return 0;
    } finally {
      await web.stop(500);
    }
  } finally {
    await s?.close();
  }
}
