/**
 * `paf serve`: bring a userspace stack up on a TAP device and run services on it.
 */
import { parse, listOption, UsageError } from "./args.js";
import type { Stack, StackOptions } from "../stack/stack.js";
import { ipFamily } from "../stack/wire/addr.js";
import { startServices, SERVICES, type ServiceName } from "./services.js";
import { writeFileSync } from "node:fs";
import { resolve as resolvePath } from "node:path";
import { pathToFileURL } from "node:url";
import { serve as serveHttp, type ServeHandle } from "../http/serve.js";
import { hostListener, stackListener, type Listener } from "../http/listener.js";
import { httpService, httpsService, type Handler } from "../http/services.js";
import { demoApp, demoWebSocket } from "../http/app.js";
import { redirectToHttps } from "../http/redirect.js";
import type { UpgradeHandler } from "../http/upgrade.js";
import { staticFiles } from "../http/static.js";
import { selfSigned } from "../tls/selfsigned.js";
import { ACME_OPTIONS, ACME_USAGE, AcmeRuntime, CERTIFY_USAGE, parseAcmeArgs, type AcmeConfig } from "./certify.js";
import { hostTransport, stackTransport } from "../tls/acme/transport.js";
import { checkTapName, openTapStack, parseStackOptions } from "./tapstack.js";
import { tuneMalloc } from "../stack/netif/tap.js";
import { certificateAndKey, directoryOption, outputFileOption } from "./files.js";

export const SERVE_USAGE = `usage: paf serve (--tap NAME (--ipv4 CIDR | --dhcp) [--ipv6 CIDR] | --host ADDR) [--gateway IP]... [--dns IP]...
       paf serve --tenants FILE   (many tenants, each its own stack and TAP: paf serve --tenants x --help)
                 [--http PORT] [--https PORT [--cert FILE --key FILE | --cert-out FILE] [--redirect-https]]
                 [--app MODULE] [--root DIR] [--mac MAC] [--slaac] [--tap-netns NAME] [--pcap FILE] [--services LIST]
                 [--acme-domain NAME... [--acme-email EMAIL] [--acme-directory URL] [--acme-ca FILE]
                  [--acme-dir DIR] [--acme-renew-days N]]

  --tap NAME        TAP device to own (created if absent, attached if it exists)
  --host ADDR       no userspace stack: serve the same app on the kernel's sockets bound to ADDR
  --http PORT       HTTP/1.x and h2c on PORT (default 80; 0 disables)
  --https PORT      HTTPS with ALPN (h2, http/1.1) on PORT
  --cert/--key FILE certificate chain and key (PEM); without them a self-signed one is made in
                    memory (its key is never written anywhere; its fingerprints are printed)
  --cert-out FILE   write the self-signed certificate (not its key) to FILE, for clients to trust
  --redirect-https  answer every request on --http with a 308 to the same URL on --https (ACME
                    challenges excepted); the default with --acme-domain (--no-redirect-https: off)
  --app MODULE      serve a module exporting a Node request handler (default export or "handler")
                    and optionally an "upgrade" hook (req, socket, head) for WebSocket and others;
                    without --app the demo app answers, with a WebSocket echo at /ws
  --root DIR        serve static files from DIR (the app, or the demo app, answers the rest)
  --tap-netns NAME  create/attach the TAP inside network namespace NAME (ip netns)
  --ipv4 CIDR       our IPv4 address and prefix, e.g. 198.18.0.2/24
  --dhcp            take the IPv4 address, default router and DNS servers from a DHCP server
                    (RFC 2131; renewed, and given up when the lease runs out); the listening
                    line shows the leased address
  --ipv6 CIDR       a static IPv6 address, e.g. 2001:db8::2/64 (link-local is always configured)
  --slaac           take IPv6 addresses from router advertisements
  --gateway IP      default gateway (repeat for IPv4 and IPv6)
  --dns IP          DNS server for the stack's own resolver (repeatable; ACME names resolve there)
  --mac MAC         our MAC address (default: random, locally administered)
  --mtu N           L3 MTU (default 1500)
  --pcap FILE       record every frame to FILE (pcap, readable by Wireshark/tcpdump)
  --no-offload      no TAP offloads: the kernel checksums and segments every frame (by default it
                    hands over TSO super-frames of up to 64 KB both ways, captures show those,
                    and takes a run of UDP datagrams to one peer as one write, Linux 6.2+)
  --services LIST   comma-separated: ${SERVICES.join(", ")} (echo: UDP+TCP 7, discard: TCP 9,
                    chargen: TCP 19)

With --acme-domain and --https, HTTPS starts at once with a self-signed placeholder while the
certificate is obtained (challenge answered on --http, requests over the same stack), then
switches to it without dropping connections; it is renewed in time, and at once on SIGHUP.
${ACME_USAGE}`;

export interface ServeConfig {
  tap: string | undefined;
  host: string | undefined;
  http: number;
  https: number;
  cert: string | undefined;
  key: string | undefined;
  /** Where to write the self-signed certificate (public part only). */
  certOut: string | undefined;
  /** Answer HTTP with redirects to HTTPS (ACME challenges excepted). */
  redirectHttps: boolean;
  /** The contents of --cert and --key, checked to be PEM and to match. */
  tls: { cert: Buffer; key: Buffer } | undefined;
  app: string | undefined;
  root: string | undefined;
  tapNetns: string | undefined;
  stack: Omit<StackOptions, "netif">;
  pcap: string | undefined;
  /** TAP offloads (checksums, TSO super-frames); --no-offload turns them off. */
  offload: boolean;
  services: ServiceName[];
  /** --acme-*: obtain the HTTPS certificate from an ACME CA. */
  acme: AcmeConfig | undefined;
}

export function parseServeArgs(argv: string[], command: "serve" | "certify" = "serve"): ServeConfig {
  const { values } = parse(argv, {
    tap: { type: "string" },
    host: { type: "string" },
    http: { type: "string" },
    https: { type: "string" },
    cert: { type: "string" },
    key: { type: "string" },
    "cert-out": { type: "string" },
    "redirect-https": { type: "boolean" },
    "no-redirect-https": { type: "boolean" },
    app: { type: "string" },
    root: { type: "string" },
    "tap-netns": { type: "string" },
    "no-offload": { type: "boolean" },
    ipv4: { type: "string" },
    dhcp: { type: "boolean" },
    ipv6: { type: "string" },
    slaac: { type: "boolean" },
    gateway: { type: "string", multiple: true },
    dns: { type: "string", multiple: true },
    mac: { type: "string" },
    mtu: { type: "string" },
    pcap: { type: "string" },
    services: { type: "string" },
    help: { type: "boolean", short: "h" },
    ...ACME_OPTIONS,
  });
  if (values.help) throw new UsageError(command === "certify" ? CERTIFY_USAGE : SERVE_USAGE);
  if (!values.tap && !values.host) throw new UsageError("--tap NAME or --host ADDR is required (the TAP device paf owns, or the host address to serve on)");
  if (values.tap && values.host) throw new UsageError("--tap and --host exclude each other (userspace stack or the kernel's sockets)");
  if (values.host && ipFamily(values.host) === 0) throw new UsageError(`--host: "${values.host}" is not an IP address`);
  if (values.tap) checkTapName(values.tap);
  if (values.tap && !values.ipv4 && !values.dhcp && !values.ipv6 && !values.slaac) throw new UsageError("give at least one address: --ipv4 CIDR, --dhcp, --ipv6 CIDR or --slaac");
  if (values.dhcp && values.host) throw new UsageError("--dhcp is for the userspace stack (--tap)");
  const port = (name: string, v: string | undefined, dflt: number): number => {
    if (v === undefined) return dflt;
    if (!/^\d{1,5}$/.test(v) || Number(v) > 65535) throw new UsageError(`--${name} expects a port number 0-65535, got "${v}"`);
    return Number(v);
  };
  if ((values.cert === undefined) !== (values.key === undefined)) throw new UsageError("--cert and --key go together");
  if (values.host && values.services) throw new UsageError("--services needs --tap (the classic services run on the userspace stack)");
  if (values.cert && values.https === undefined) throw new UsageError("--cert/--key need --https PORT");
  if (values["cert-out"] !== undefined && (values.cert || values.https === undefined)) throw new UsageError("--cert-out is for the self-signed certificate: it needs --https PORT and no --cert/--key");
  const acme = parseAcmeArgs(values);
  if (command === "certify") {
    if (!acme) throw new UsageError("paf certify needs --acme-domain NAME (the name to get a certificate for)");
    for (const o of ["https", "cert", "key", "app", "root", "services", "redirect-https"] as const)
      if (values[o] !== undefined) throw new UsageError(`--${o} is for paf serve; paf certify only obtains the certificate and writes its files`);
  } else if (acme) {
    if (values.https === undefined) throw new UsageError("--acme-domain needs --https PORT (the ACME certificate is served there)");
    if (values.cert) throw new UsageError("--acme-domain and --cert/--key exclude each other (the certificate comes from the ACME CA)");
  }
  if (acme && values.http === "0") throw new UsageError("--acme-domain needs HTTP for the HTTP-01 challenge: --http must not be 0");
  if (values["redirect-https"] && values["no-redirect-https"]) throw new UsageError("--redirect-https and --no-redirect-https exclude each other");
  if (values["redirect-https"] && (values.https === undefined || Number(values.https) === 0 || Number(values.http) === 0))
    throw new UsageError("--redirect-https needs --https PORT and HTTP on (--http not 0): it sends HTTP requests to HTTPS");
  if (values.dns?.length && values.host) throw new UsageError("--dns is for the userspace stack (--tap); --host uses the system resolver");
  const stack = parseStackOptions(values);
  const http = port("http", values.http, 80);
  const https = port("https", values.https, 0);
  const services = listOption("services", values.services, SERVICES);
  if (command === "serve" && !http && !https && !services.length) throw new UsageError("nothing to serve: --http 0 turns HTTP off, and neither --https PORT nor --services is given");
  // Files are checked here, before the TAP and the stack come up.
  return {
    tap: values.tap,
    host: values.host,
    http,
    https,
    cert: values.cert,
    key: values.key,
    certOut: values["cert-out"] === undefined ? undefined : outputFileOption("--cert-out", values["cert-out"]),
    // Where paf obtains the certificate, the site is meant to be HTTPS: redirect unless told not to.
    redirectHttps: command === "serve" && (values["redirect-https"] === true || (acme !== undefined && !values["no-redirect-https"])),
    tls: values.cert && values.key ? certificateAndKey(values.cert, values.key) : undefined,
    app: values.app,
    root: values.root === undefined ? undefined : directoryOption("--root", values.root),
    tapNetns: values["tap-netns"],
    offload: !values["no-offload"],
    stack,
    pcap: values.pcap === undefined ? undefined : outputFileOption("--pcap", values.pcap),
    services,
    acme,
  };
}

/**
 * The request handler and upgrade hook: the --app module's (default or "handler" export, and
 * "upgrade"), else the demo app (its GET /stats from `stats`) with its WebSocket echo; --root in
 * front of the handler.
 */
export async function loadHandler(cfg: Pick<ServeConfig, "app" | "root">, stats: (() => unknown) | undefined): Promise<{ handler: Handler; upgrade: UpgradeHandler | undefined }> {
  let handler: Handler = demoApp(stats ? { stats } : {});
  let upgrade: UpgradeHandler | undefined = cfg.app ? undefined : demoWebSocket();
  if (cfg.app) {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(pathToFileURL(resolvePath(cfg.app)).href)) as Record<string, unknown>;
    } catch (e) {
      throw new UsageError(`--app: cannot load ${cfg.app}: ${(e as Error).message}`);
    }
    const h = (mod.default ?? mod.handler) as unknown;
    if (typeof h !== "function") throw new UsageError(`--app: ${cfg.app} exports no request handler (a function as the default export or "handler")`);
    handler = h as Handler;
    if (mod.upgrade !== undefined && typeof mod.upgrade !== "function") throw new UsageError(`--app: ${cfg.app}'s "upgrade" export is not a function (req, socket, head)`);
    upgrade = mod.upgrade as UpgradeHandler | undefined;
  }
  if (cfg.root) handler = staticFiles(cfg.root, handler);
  return { handler, upgrade };
}

export async function serve(argv: string[]): Promise<number> {
  if (argv.includes("--tenants")) return (await import("./tenants.js")).serveTenants(argv);
  const cfg = parseServeArgs(argv);
  let stack: Stack | undefined;
  const running: ServeHandle[] = [];
  // GET /stats: the stack's counters, and each server's (connections, deadlines that expired).
  const stats = () => ({ ...stack?.stats(), serve: Object.fromEntries(running.map((r) => [r.listener.description, r.stats()])) });
  // The app is loaded before the TAP comes up: a bad --app is reported with nothing started.
  const { handler, upgrade } = await loadHandler(cfg, stats);
  let services: Awaited<ReturnType<typeof startServices>> = [];
  // A TAP that goes away under us (deleted, say) ends the server with an error, after the same
  // graceful stop as a signal: a supervisor must see a failure, not a clean exit.
  let failed: Error | undefined;
  let stopNow: (() => void) | undefined;
  const fail = (e: Error) => {
    failed ??= e;
    stopNow?.();
  };
  // The same allocator tuning on either path (TapNetif.open applies it; kernel sockets get it here).
  if (!cfg.tap) tuneMalloc();
  if (cfg.tap) {
    const tap = cfg.tap;
    stack = openTapStack({
      tap,
      tapNetns: cfg.tapNetns,
      pcap: cfg.pcap,
      stack: cfg.stack,
      offload: cfg.offload,
      onTapError: (e) => fail(Object.assign(new Error(`TAP ${tap} failed (${e.message}); the server stopped`), { code: "ENODEV" })),
      onShortQueue: (msg) => console.error(msg),
    });
    services = await startServices(stack, cfg.services);
  }
  const s = stack;
  const listen = (port: number): Promise<Listener> => (s ? Promise.resolve(stackListener(s, { port })) : hostListener({ host: cfg.host!, port }));
  const parts: string[] = [];
  // ACME: the certificate goes into the HTTPS service once issued (and on every renewal).
  let tlsService: ReturnType<typeof httpsService> | undefined;
  const acme = cfg.acme ? new AcmeRuntime(cfg.acme, s ? stackTransport(s) : hostTransport(), (i) => tlsService?.setCertificate(i.key, i.cert)) : undefined;
  if (cfg.http) {
    // Redirecting, the HTTP port serves nothing itself (WebSocket handshakes are redirected too).
    const plain = cfg.redirectHttps ? redirectToHttps({ port: cfg.https }) : handler;
    running.push(serveHttp(httpService(acme ? acme.responder.wrap(plain) : plain, cfg.redirectHttps ? {} : { upgrade }), await listen(cfg.http)));
    parts.push(`http ${cfg.http}`);
  }
  if (cfg.https) {
    let key: Buffer;
    let cert: Buffer;
    if (cfg.tls) {
      key = cfg.tls.key;
      cert = cfg.tls.cert;
    } else if (acme?.stored) {
      key = acme.stored.key;
      cert = acme.stored.cert;
    } else {
      const names = [
        "localhost",
        ...(s
          ? s
              .addresses()
              .filter((a) => !a.startsWith("fe80"))
              .map((a) => a.split(" ")[0]!)
          : [cfg.host!]),
      ];
      const ss = await selfSigned(names);
      key = ss.key;
      cert = ss.cert;
      if (cfg.certOut) writeFileSync(cfg.certOut, ss.cert);
      const where = cfg.certOut ? ` written to ${cfg.certOut}` : "";
      console.log(`self-signed certificate sha256 ${ss.fingerprint256} spki sha256//${ss.spkiSha256}${where}${acme ? " (placeholder until the ACME certificate is issued)" : ""}`);
    }
    tlsService = httpsService(handler, { key, cert, upgrade });
    running.push(serveHttp(tlsService, await listen(cfg.https)));
    parts.push(`https ${cfg.https}`);
  }
  if (s) await s.ready();
  const where = s ? `on ${cfg.tap} mac ${formatMacText(s.mac)} ${s.addresses().join(" ")}` : `on host ${cfg.host}`;
  console.log(`listening ${where}${parts.length ? " " + parts.join(" ") : ""}${cfg.services.length ? " services " + cfg.services.join(",") : ""}`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    stopNow = stop;
    if (failed) return stop();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    if (acme) {
      // Without its first certificate the server has no reason to run: stop and report.
      acme.start().catch((e: Error) => fail(e));
      process.on("SIGHUP", () => void acme.renewNow());
    }
  });
  acme?.stop();
  await Promise.all(running.map((r) => r.stop(2000)));
  for (const sv of services) await sv.close();
  await s?.close();
  if (failed) throw failed;
  return 0;
}

function formatMacText(m: Uint8Array): string {
  return [...m].map((b) => b.toString(16).padStart(2, "0")).join(":");
}
