/**
 * Flow resolution from a context (after mimic): protocols are registered under a name, each says
 * which context keys it needs and how to open a flow from them. `Connector.open(ctx)` tries the
 * protocols whose keys are all present, lowest priority number first, and returns the first flow
 * that opens, or one error that lists why each one failed. When the context carries a TLS
 * configuration, TLS is layered over whichever flow resolved (SNI, ALPN, CA, pinning, client
 * certificate).
 *
 * Shipped protocols: "unix" (a Unix domain socket path), "paf-tcp" (the userspace stack's TCP,
 * names resolved with the stack's own DNS resolver), "host-tcp" (the kernel's TCP via node:net,
 * names resolved by the system resolver). Names with both AAAA and A answers are connected with
 * happy eyeballs (RFC 8305). Nothing here imports `stack/`: a stack is anything of the
 * `ConnectorStack` shape.
 */
import net from "node:net";
import tls from "node:tls";
import dns from "node:dns";
import { createHash } from "node:crypto";
import type { Duplex } from "node:stream";
import { type Ctx, Key } from "./context.js";
import { ClientError } from "./errors.js";
import { socketLike } from "../listener.js";
import { happyEyeballs, type Address } from "./happy.js";

/** A connecting flow: a Duplex that emits 'connect' once established, or 'error'. */
export type ConnectingFlow = Duplex & { connecting?: boolean; setNoDelay?(b?: boolean): unknown };

/** What the client needs of a paf Stack (structural: http/ does not import stack/). */
export interface ConnectorStack {
  tcp: { connectFlow(opts: { host: string; port: number; noDelay?: boolean }): ConnectingFlow };
  /** The stack's DNS resolver, when it has one (`Stack.create({ dns: { servers } })`). */
  dns?: { resolve4(name: string): Promise<Array<{ address: string }>>; resolve6(name: string): Promise<Array<{ address: string }>> };
}

export interface TlsConfig {
  /** SNI and the name checked in the certificate. Default: the host, unless it is an IP address. */
  servername?: string;
  /** ALPN protocols offered, in preference order, e.g. ["h2", "http/1.1"]. */
  alpn?: string[];
  /** Trusted CA certificates (PEM); default Node's bundled roots. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Accept only these public keys: base64 SHA-256 of the certificate's SPKI ("sha256/..." accepted too). */
  pins?: string[];
  /** Client certificate and key (mutual TLS). */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Verify the certificate chain and name. Default true (pins alone also verify). */
  rejectUnauthorized?: boolean;
  minVersion?: tls.SecureVersion;
}

/**
 * Name resolution: addresses of a name, any family. A result may carry `later`, the addresses
 * of a family still being resolved (RFC 8305 §3): connecting starts without waiting for them.
 */
export type Lookup = (name: string) => Promise<Resolution>;
export type Resolution = Address[] & { later?: Promise<Address[]> };

/** RFC 8305 §3: after the A answer, wait this long for the AAAA answer before connecting. */
export const RESOLUTION_DELAY_MS = 50;

/** The keys the shipped protocols read. */
export const K = {
  /** Host name or literal IP address to connect to. */
  host: new Key<string>("host"),
  port: new Key<number>("port"),
  /** A Unix domain socket path. */
  unix: new Key<string>("unix"),
  /** A userspace stack to connect through. */
  stack: new Key<ConnectorStack>("stack"),
  /** Connect over the host kernel's sockets (present by default in `defaultContext()`). */
  host_tcp: new Key<true>("host-tcp"),
  tls: new Key<TlsConfig>("tls"),
  /** Custom name resolution (used instead of the stack's or the system's resolver). */
  lookup: new Key<Lookup>("lookup"),
  /** Give up on a connection attempt after this long (ms). Default 10000. */
  connectTimeout: new Key<number>("connect-timeout"),
  /** RFC 8305 connection attempt delay (ms). Default 250. */
  attemptDelay: new Key<number>("attempt-delay"),
};

export interface Protocol {
  readonly name: string;
  /** Lower is tried first. */
  readonly priority: number;
  readonly needs: ReadonlyArray<Key<unknown>>;
  /** Open a flow; reject (or honour `signal`) on failure. */
  open(ctx: Ctx, signal: AbortSignal): Promise<Duplex>;
}

export interface Resolved {
  flow: Duplex;
  /** The peer of the underlying transport (TCP address and port; undefined for Unix sockets). */
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  /** The name of the protocol that opened the flow ("paf-tcp", "unix", or a registered one). */
  protocol: string;
  /** Set when TLS was layered over the flow. */
  tls?: { alpn: string | false; version: string | null; socket: tls.TLSSocket };
}

export class Connector {
  private readonly protocols = new Map<string, Protocol>();

  /** Register (or replace) a protocol under its name. */
  register(p: Protocol): this {
    this.protocols.set(p.name, p);
    return this;
  }

  unregister(name: string): this {
    this.protocols.delete(name);
    return this;
  }

  list(): Protocol[] {
    return [...this.protocols.values()].sort((a, b) => a.priority - b.priority);
  }

  /**
   * Open a flow as the context says, then TLS over it if the context has a TLS configuration.
   * Errors are ClientErrors naming the stage: "resolve" (no protocol's keys are present, or a
   * name did not resolve), "connect" (every candidate failed; `causes` says why each), "tls".
   */
  async open(ctx: Ctx, opts: { signal?: AbortSignal } = {}): Promise<Resolved> {
    const signal = opts.signal ?? new AbortController().signal;
    const candidates = this.list().filter((p) => p.needs.every((k) => ctx.has(k)));
    if (candidates.length === 0) {
      throw new ClientError(
        "resolve",
        `no protocol can be used with this context (keys: ${ctx.keys().join(", ") || "none"}; protocols: ${this.list()
          .map((p) => `${p.name} needs ${p.needs.map((k) => k.name).join("+")}`)
          .join("; ")})`,
      );
    }
    const causes: Array<{ protocol: string; error: Error }> = [];
    for (const p of candidates) {
      if (signal.aborted) throw new ClientError("connect", "aborted", { cause: signal.reason });
      try {
        const flow = socketLike(await p.open(ctx, signal)) as Duplex & { remoteAddress?: string; remotePort?: number };
        const peer = { remoteAddress: flow.remoteAddress, remotePort: flow.remotePort };
        const cfg = ctx.get(K.tls);
        if (!cfg) return { flow, protocol: p.name, ...peer };
        const socket = await startTls(flow, cfg, ctx.get(K.host), signal);
        return { flow: socket, protocol: p.name, ...peer, tls: { alpn: socket.alpnProtocol ?? false, version: socket.getProtocol(), socket } };
      } catch (e) {
        if (e instanceof ClientError && e.stage !== "connect") throw e; // resolve/tls errors are final
        causes.push({ protocol: p.name, error: e as Error });
      }
    }
    const why = causes
      .map((c) => {
        const code = (c.error as { code?: string }).code;
        return `${c.protocol}: ${code && !c.error.message.includes(code) ? code + " " : ""}${c.error.message}`;
      })
      .join("; ");
    throw new ClientError("connect", `could not connect (${why})`, { causes, code: (causes[0]?.error as { code?: string })?.code });
  }
}

/** Wait for a connecting flow to be established, honouring the signal and a timeout. */
export function whenConnected<T extends ConnectingFlow>(flow: T, signal: AbortSignal, timeoutMs: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const done = (err?: Error) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      flow.off("connect", onConnect);
      flow.off("error", onError);
      if (err) {
        flow.destroy();
        reject(err);
      } else resolve(flow);
    };
    const onConnect = () => done();
    const onError = (e: Error) => done(e);
    const onAbort = () => done(Object.assign(new Error(`connect to ${what} aborted`), { code: "ABORT_ERR" }));
    if (signal.aborted) return onAbort();
    if (flow.connecting === false) return resolve(flow);
    flow.once("connect", onConnect);
    flow.once("error", onError);
    signal.addEventListener("abort", onAbort, { once: true });
    timer = setTimeout(() => done(Object.assign(new Error(`connect ETIMEDOUT ${what} (after ${timeoutMs} ms)`), { code: "ETIMEDOUT" })), timeoutMs);
    timer.unref?.();
  });
}

/** Addresses of a host: a literal passes through; names go to `lookup`. Resolve-stage errors. */
async function addressesOf(host: string, lookup: Lookup): Promise<Resolution> {
  const fam = net.isIP(host);
  if (fam) return [{ address: host, family: fam as 4 | 6 }];
  let out: Resolution;
  try {
    out = await lookup(host);
  } catch (e) {
    const err = e as Error & { code?: string };
    throw new ClientError("resolve", `cannot resolve ${host}: ${err.code ?? ""} ${err.message}`.trim(), { cause: err, code: err.code });
  }
  if (out.length === 0 && !out.later) throw new ClientError("resolve", `cannot resolve ${host}: no A or AAAA records`, { code: "ENODATA" });
  return out;
}

/**
 * AAAA and A queried in parallel through a stack's resolver (RFC 8305 §3): an AAAA answer starts
 * connecting at once (the A answer joins later); an A answer waits RESOLUTION_DELAY_MS for the
 * AAAA one, then goes ahead without it (it joins later if it comes). One family failing is fine
 * if the other answers.
 */
export function stackLookup(d: NonNullable<ConnectorStack["dns"]>): Lookup {
  const as =
    (family: 4 | 6) =>
    (rs: Array<{ address: string }>): Address[] =>
      rs.map((r) => ({ address: r.address, family }));
  return (name) =>
    new Promise<Resolution>((resolve, reject) => {
      const p6 = d.resolve6(name).then(as(6));
      const p4 = d.resolve4(name).then(as(4));
      let v4: Address[] | undefined;
      let e4: unknown;
      let e6: unknown;
      let done = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (now: Address[], later?: Promise<Address[]>) => {
        done = true;
        clearTimeout(timer);
        resolve(Object.assign(now, later ? { later } : {}));
      };
      p6.then(
        (a) => {
          if (done) return;
          if (v4) finish([...a, ...v4]);
          else if (e4 !== undefined) finish(a);
          else
            finish(
              a,
              p4.catch(() => []),
            );
        },
        (e) => {
          e6 = e;
          if (done) return;
          if (v4) finish(v4);
          else if (e4 !== undefined) reject(e4);
        },
      );
      p4.then(
        (a) => {
          v4 = a;
          if (done) return;
          if (e6 !== undefined) return finish(a);
          timer = setTimeout(
            () =>
              finish(
                a,
                p6.catch(() => []),
              ),
            RESOLUTION_DELAY_MS,
          );
          timer.unref?.();
        },
        (e) => {
          e4 = e;
          if (!done && e6 !== undefined) reject(e);
        },
      );
    });
}

/** The system resolver (getaddrinfo: /etc/hosts, nsswitch), every address of both families. */
export const systemLookup: Lookup = async (name) => (await dns.promises.lookup(name, { all: true, verbatim: true })).map((a) => ({ address: a.address, family: a.family as 4 | 6 }));

function tcpProtocol(name: string, priority: number, needs: Key<unknown>[], connectOne: (ctx: Ctx, a: Address, port: number) => ConnectingFlow, lookupOf: (ctx: Ctx) => Lookup): Protocol {
  return {
    name,
    priority,
    needs: [K.host, K.port, ...needs],
    async open(ctx, signal) {
      const host = ctx.need(K.host);
      const port = ctx.need(K.port);
      const addrs = await addressesOf(host, ctx.get(K.lookup) ?? lookupOf(ctx));
      const timeout = ctx.get(K.connectTimeout) ?? 10_000;
      return happyEyeballs(addrs, (a, sig) => whenConnected(connectOne(ctx, a, port), sig, timeout, `${a.family === 6 ? `[${a.address}]` : a.address}:${port}`), {
        delayMs: ctx.get(K.attemptDelay) ?? 250,
        signal,
        ...(addrs.later ? { later: addrs.later } : {}),
      });
    },
  };
}

/** TCP over a userspace stack (K.stack), names resolved by the stack's DNS resolver. */
export const stackTcp: Protocol = tcpProtocol(
  "paf-tcp",
  20,
  [K.stack],
  (ctx, a, port) => ctx.need(K.stack).tcp.connectFlow({ host: a.address, port, noDelay: true }),
  (ctx) => {
    const d = ctx.need(K.stack).dns;
    if (!d) return async (name) => Promise.reject(Object.assign(new Error(`the stack has no DNS resolver to look up "${name}" (give it dns servers, e.g. --dns)`), { code: "ENOTFOUND" }));
    return stackLookup(d);
  },
);

/** TCP over the host kernel's sockets, names resolved by the system resolver. */
export const hostTcp: Protocol = tcpProtocol(
  "host-tcp",
  30,
  [K.host_tcp],
  (_ctx, a, port) => net.connect({ host: a.address, port, noDelay: true }),
  () => systemLookup,
);

/** A Unix domain socket. */
export const unixSocket: Protocol = {
  name: "unix",
  priority: 10,
  needs: [K.unix],
  open(ctx, signal) {
    const path = ctx.need(K.unix);
    return whenConnected(net.connect({ path }), signal, ctx.get(K.connectTimeout) ?? 10_000, path);
  },
};

/** A connector with the shipped protocols registered. */
export function defaultConnector(): Connector {
  return new Connector().register(unixSocket).register(stackTcp).register(hostTcp);
}

/** base64 SHA-256 of the peer certificate's SubjectPublicKeyInfo (the HPKP / curl --pinnedpubkey form). */
function spkiPin(sock: tls.TLSSocket): string | undefined {
  const x = sock.getPeerX509Certificate();
  return x
    ? createHash("sha256")
        .update(x.publicKey.export({ type: "spki", format: "der" }))
        .digest("base64")
    : undefined;
}

/** TLS over an open flow: SNI, ALPN, CA, pins, client certificate. Errors are stage "tls". */
export function startTls(flow: Duplex, cfg: TlsConfig, host: string | undefined, signal: AbortSignal): Promise<tls.TLSSocket> {
  const servername = cfg.servername ?? (host && !net.isIP(host) ? host : undefined);
  const pins = cfg.pins?.map((p) => p.replace(/^sha256\//, ""));
  const verify = cfg.rejectUnauthorized ?? !pins;
  return new Promise((resolve, reject) => {
    const sock = tls.connect({
      socket: flow,
      servername,
      ALPNProtocols: cfg.alpn,
      ca: cfg.ca,
      cert: cfg.cert,
      key: cfg.key,
      minVersion: cfg.minVersion ?? "TLSv1.2",
      rejectUnauthorized: verify,
      // With pins and no CA, the pin is the trust anchor: the name is still checked below.
      checkServerIdentity: (name, cert) => (servername || host ? tls.checkServerIdentity(servername ?? host ?? name, cert) : undefined),
    });
    // A JS stream under TLS (a paf flow) must not end itself at the peer's FIN: TLS ends it after
    // its close_notify (a kernel socket's native handle is TLS's own). Set after the TLS socket
    // is made, which takes allowHalfOpen from the stream it wraps and must end at EOF.
    if (!(flow instanceof net.Socket)) flow.allowHalfOpen = true;
    const fail = (e: Error & { code?: string }) => {
      signal.removeEventListener("abort", onAbort);
      sock.destroy();
      reject(e instanceof ClientError ? e : new ClientError("tls", `TLS with ${servername ?? host ?? "peer"} failed: ${e.code ? e.code + " " : ""}${e.message}`, { cause: e, code: e.code }));
    };
    const onAbort = () => fail(Object.assign(new Error("aborted"), { code: "ABORT_ERR" }));
    signal.addEventListener("abort", onAbort, { once: true });
    sock.once("error", fail);
    sock.once("secureConnect", () => {
      sock.off("error", fail);
      signal.removeEventListener("abort", onAbort);
      if (pins) {
        const got = spkiPin(sock);
        if (!got || !pins.includes(got))
          return fail(new ClientError("tls", `certificate of ${servername ?? host} does not match the pinned keys (got sha256/${got})`, { code: "ERR_TLS_PIN_MISMATCH" }));
        if (!verify && (servername || host)) {
          const idErr = tls.checkServerIdentity(servername ?? host!, sock.getPeerCertificate());
          if (idErr) return fail(idErr);
        }
      }
      resolve(sock);
    });
  });
}

/**
 * A context for one target: host (a URL's "[v6]" form accepted) and port, with TLS when `tls` is
 * given (its settings over the context's own K.tls), without TLS otherwise.
 */
export function withTarget(base: Ctx, host: string, port: number, tls?: TlsConfig): Ctx {
  const c = base.with(K.host, host.replace(/^\[(.*)\]$/, "$1")).with(K.port, port);
  return tls ? c.with(K.tls, { ...(base.get(K.tls) ?? {}), ...tls }) : c.without(K.tls);
}
