/**
 * An ACME v2 client (RFC 8555): directory, nonces, accounts, orders, authorizations, HTTP-01
 * challenges, finalization and certificate download. It speaks HTTPS over an injected transport
 * (see transport.ts), signs with jws.ts, and turns every problem document the server sends into
 * an AcmeProblem carrying the server's type, detail, status and the identifier concerned.
 */
import type { KeyObject } from "node:crypto";
import { b64url, signJws } from "./jws.js";
import { HttpsOverTransport, type AcmeTransport, type HttpResponse } from "./transport.js";

export interface Directory {
  newNonce: string;
  newAccount: string;
  newOrder: string;
  revokeCert?: string;
  keyChange?: string;
  meta?: { termsOfService?: string; website?: string; externalAccountRequired?: boolean };
}

export interface Identifier {
  type: "dns" | string;
  value: string;
}

export interface ProblemDocument {
  type?: string;
  detail?: string;
  status?: number;
  identifier?: Identifier;
  subproblems?: ProblemDocument[];
}

export interface Challenge {
  type: string;
  url: string;
  status: "pending" | "processing" | "valid" | "invalid";
  token?: string;
  error?: ProblemDocument;
}

export interface Authorization {
  identifier: Identifier;
  status: "pending" | "valid" | "invalid" | "deactivated" | "expired" | "revoked";
  challenges: Challenge[];
  wildcard?: boolean;
}

export interface Order {
  status: "pending" | "ready" | "processing" | "valid" | "invalid";
  identifiers: Identifier[];
  authorizations: string[];
  finalize: string;
  certificate?: string;
  error?: ProblemDocument;
  expires?: string;
}

/** A problem the ACME server reported (RFC 8555 §6.7, RFC 7807). */
export class AcmeProblem extends Error {
  readonly type: string;
  readonly detail: string;
  readonly status: number | undefined;
  readonly identifier: string | undefined;
  readonly subproblems: ProblemDocument[];
  constructor(doc: ProblemDocument, context: string, identifier?: string) {
    const id = identifier ?? doc.identifier?.value;
    const type = doc.type ?? "about:blank";
    const detail = doc.detail ?? "(no detail)";
    super(`${context}${id ? ` for ${id}` : ""}: ${detail} (${type.replace(/^urn:ietf:params:acme:error:/, "")}${doc.status ? `, HTTP ${doc.status}` : ""})`);
    this.name = "AcmeProblem";
    this.type = type;
    this.detail = detail;
    this.status = doc.status;
    this.identifier = id;
    this.subproblems = doc.subproblems ?? [];
  }
}

export const BAD_NONCE = "urn:ietf:params:acme:error:badNonce";

export interface AcmeClientOptions {
  directoryUrl: string;
  accountKey: KeyObject;
  transport: AcmeTransport;
  /** Trusted roots for the ACME server's certificate (a private CA such as pebble). */
  ca?: string | Buffer | undefined;
  /** Retries of a request the server refused with badNonce (§6.5). Default 10. */
  badNonceRetries?: number;
  /** Give up polling an authorization or order after this long (ms). Default 120000. */
  pollTimeoutMs?: number;
  /** Poll interval when the server sends no Retry-After (ms). Default 1000. */
  pollIntervalMs?: number;
  /** Upper bound on a Retry-After the client honours while polling (ms). Default 30000. */
  maxRetryAfterMs?: number;
  /** Injected time: now() in ms and sleep(ms). Defaults: the real clock. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** Parse Retry-After (seconds or an HTTP-date, RFC 9110 §10.2.3) into ms from `now`. */
export function retryAfterMs(value: string | string[] | undefined, now: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

export class AcmeClient {
  /** Requests sent, and how many were retried after a badNonce refusal. */
  readonly stats = { requests: 0, badNonceRetries: 0, polls: 0 };
  private readonly http: HttpsOverTransport;
  private readonly nonces: string[] = [];
  private dir: Directory | undefined;
  private kid: string | undefined;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly opts: AcmeClientOptions) {
    this.http = new HttpsOverTransport(opts.transport, { ca: opts.ca });
    this.now = opts.now ?? Date.now;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  get accountUrl(): string | undefined {
    return this.kid;
  }

  async directory(): Promise<Directory> {
    if (this.dir) return this.dir;
    const res = await this.send("GET", this.opts.directoryUrl);
    const d = this.json<Directory>(res, "reading the ACME directory");
    if (res.status !== 200 || !d.newNonce || !d.newAccount || !d.newOrder) throw new Error(`${this.opts.directoryUrl} is not an ACME directory (HTTP ${res.status})`);
    this.dir = d;
    return d;
  }

  /** Create the account, or find the existing one for this key (§7.3, §7.3.1). */
  async newAccount(opts: { email?: string | undefined; termsOfServiceAgreed?: boolean } = {}): Promise<{ url: string; status: string; created: boolean }> {
    const d = await this.directory();
    const payload: Record<string, unknown> = { termsOfServiceAgreed: opts.termsOfServiceAgreed ?? true };
    if (opts.email) payload.contact = [`mailto:${opts.email}`];
    const res = await this.post(d.newAccount, payload, "creating the ACME account", false);
    const url = header(res, "location");
    if (!url) throw new Error("the ACME server sent no account URL (Location) for newAccount");
    this.kid = url;
    const acct = this.json<{ status?: string }>(res, "creating the ACME account");
    return { url, status: acct.status ?? "valid", created: res.status === 201 };
  }

  /** §7.4: an order for these DNS names. */
  async newOrder(domains: string[]): Promise<{ url: string; order: Order }> {
    const d = await this.directory();
    const res = await this.post(d.newOrder, { identifiers: domains.map((value) => ({ type: "dns", value })) }, "creating the order");
    const url = header(res, "location");
    if (!url) throw new Error("the ACME server sent no order URL (Location)");
    return { url, order: this.json<Order>(res, "creating the order") };
  }

  async getAuthorization(url: string): Promise<Authorization> {
    return this.json<Authorization>(await this.post(url, undefined, "reading an authorization"), "reading an authorization");
  }

  async getOrder(url: string): Promise<Order> {
    return this.json<Order>(await this.post(url, undefined, "reading the order"), "reading the order");
  }

  /** §7.5.1: tell the server the challenge response is in place. */
  async respondToChallenge(url: string, identifier: string): Promise<Challenge> {
    return this.json<Challenge>(await this.post(url, {}, "answering the challenge", true, identifier), "answering the challenge");
  }

  /** Poll an authorization until it is valid; invalid becomes the challenge's problem document. */
  async waitForAuthorization(url: string): Promise<Authorization> {
    return this.poll(url, "authorization", (a: Authorization) => {
      if (a.status === "valid") return a;
      if (a.status === "pending") return undefined;
      const failed = a.challenges.find((c) => c.error) ?? a.challenges.find((c) => c.status === "invalid");
      const doc = failed?.error ?? { type: "urn:ietf:params:acme:error:unauthorized", detail: `authorization is ${a.status}` };
      throw new AcmeProblem(doc, `ACME validation failed`, a.identifier.value);
    });
  }

  /** Poll an order until it reaches one of `want` ("ready", "valid"); "invalid" throws its error. */
  async waitForOrder(url: string, want: Order["status"][]): Promise<Order> {
    return this.poll(url, "order", (o: Order) => {
      if (want.includes(o.status)) return o;
      if (o.status === "invalid") throw new AcmeProblem(o.error ?? { detail: "the order became invalid" }, "ACME order failed", o.identifiers.map((i) => i.value).join(", "));
      return undefined;
    });
  }

  /** §7.4: finalize with a DER CSR; returns the order once it is valid. */
  async finalize(orderUrl: string, order: Order, csrDer: Uint8Array): Promise<Order> {
    const res = await this.post(order.finalize, { csr: b64url(csrDer) }, "finalizing the order", true, order.identifiers.map((i) => i.value).join(", "));
    const o = this.json<Order>(res, "finalizing the order");
    if (o.status === "valid") return o;
    return this.waitForOrder(orderUrl, ["valid"]);
  }

  /** §7.4.2: the certificate chain, PEM, leaf first. */
  async downloadCertificate(url: string): Promise<string> {
    const res = await this.post(url, undefined, "downloading the certificate", true, undefined, { accept: "application/pem-certificate-chain" });
    const pem = res.body.toString("utf8");
    if (!pem.includes("-----BEGIN CERTIFICATE-----")) throw new Error(`the certificate download from ${url} returned no PEM certificate`);
    return pem;
  }

  /** Release the connections to the server. */
  close(): void {
    this.http.close();
  }

  private async poll<T extends { status: string }>(url: string, what: string, done: (v: T) => T | undefined): Promise<T> {
    const deadline = this.now() + (this.opts.pollTimeoutMs ?? 120_000);
    for (;;) {
      const res = await this.post(url, undefined, `reading the ${what}`);
      const v = this.json<T>(res, `reading the ${what}`);
      const r = done(v);
      if (r) return r;
      this.stats.polls++;
      const wait = Math.min(retryAfterMs(res.headers["retry-after"], this.now()) ?? this.opts.pollIntervalMs ?? 1000, this.opts.maxRetryAfterMs ?? 30_000);
      if (this.now() + wait > deadline) throw new Error(`ACME ${what} at ${url} still ${v.status} after ${this.opts.pollTimeoutMs ?? 120_000} ms`);
      await this.sleep(wait);
    }
  }

  private async send(method: "GET" | "HEAD" | "POST", url: string, body?: string, headers?: Record<string, string>): Promise<HttpResponse> {
    this.stats.requests++;
    const res = await this.http.request(method, url, body, headers);
    const nonce = header(res, "replay-nonce");
    if (nonce) this.nonces.push(nonce);
    return res;
  }

  private async nonce(): Promise<string> {
    const n = this.nonces.pop();
    if (n) return n;
    const d = await this.directory();
    const got = this.nonces.pop();
    if (got) return got;
    const res = await this.send("HEAD", d.newNonce);
    const fresh = this.nonces.pop();
    if (!fresh) throw new Error(`the ACME server sent no Replay-Nonce from newNonce (HTTP ${res.status})`);
    return fresh;
  }

  /**
   * A signed POST (§6.2). `payload` undefined is POST-as-GET. A badNonce refusal is retried with a
   * fresh nonce (§6.5: the error response carries one); any other problem document is thrown.
   */
  private async post(url: string, payload: unknown, context: string, useKid = true, identifier?: string, headers: Record<string, string> = {}): Promise<HttpResponse> {
    if (useKid && !this.kid) throw new Error(`${context}: no ACME account yet (call newAccount first)`);
    const retries = this.opts.badNonceRetries ?? 10;
    for (let attempt = 0; ; attempt++) {
      const jws = signJws(this.opts.accountKey, { url, nonce: await this.nonce(), ...(useKid ? { kid: this.kid! } : {}) }, payload);
      const res = await this.send("POST", url, JSON.stringify(jws), { "content-type": "application/jose+json", ...headers });
      if (res.status < 400) return res;
      const doc = problem(res);
      if (doc.type === BAD_NONCE && attempt < retries) {
        this.stats.badNonceRetries++;
        continue;
      }
      throw new AcmeProblem(doc, `ACME server refused ${context}`, identifier);
    }
  }

  private json<T>(res: HttpResponse, context: string): T {
    try {
      return JSON.parse(res.body.toString("utf8")) as T;
    } catch {
      throw new Error(`${context}: the ACME server's answer (HTTP ${res.status}) is not JSON`);
    }
  }
}

function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function problem(res: HttpResponse): ProblemDocument {
  try {
    const d = JSON.parse(res.body.toString("utf8")) as ProblemDocument;
    return { ...d, status: d.status ?? res.status };
  } catch {
    return { type: "about:blank", detail: `HTTP ${res.status} ${res.body.toString("utf8").slice(0, 200)}`, status: res.status };
  }
}
