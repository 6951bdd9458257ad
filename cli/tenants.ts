/**
 * `paf serve --tenants FILE`: many tenants in one process, each its own stack on its own TAP
 * (addresses, app or static root, limits), all on one scheduler. One `tenant NAME listening ...`
 * line per tenant, then `listening N tenants`; `GET /stats` on a tenant's HTTP port answers that
 * tenant's stack.stats() (its `tenant` section: connections, bytes held, CPU, drops by limit).
 */
import { readFileSync } from "node:fs";
import { dirname, resolve as resolvePath } from "node:path";
import { UsageError, parse } from "./args.js";
import { checkTapName, openTapStack, parseStackOptions } from "./tapstack.js";
import { directoryOption } from "./files.js";
import { loadHandler } from "./serve.js";
import { Scheduler } from "../stack/core/scheduler.js";
import type { Stack, StackLimits, StackOptions } from "../stack/stack.js";
import { resolveTenantOptions } from "../stack/ingress.js";
import { resolveTcpOptions } from "../stack/tcp/options.js";
import { formatMac } from "../stack/wire/addr.js";
import { serve as serveHttp, type ServeHandle } from "../http/serve.js";
import { stackListener } from "../http/listener.js";
import { httpService, type Handler } from "../http/services.js";
import { demoApp } from "../http/app.js";

export const TENANTS_USAGE = `usage: paf serve --tenants FILE

FILE is JSON: { "tenants": [ TENANT, ... ], "limits": LIMITS }, LIMITS being the defaults of
every tenant (each tenant's own "limits" override them, group by group). A TENANT:
  "name"            unique, letters, digits, - and _ (required)
  "tap"             the TAP device it owns, created if absent (required)
  "netns"           create/attach the TAP in this network namespace (ip netns)
  "ipv4", "ipv6"    its addresses with prefix ("198.18.0.2/24", "2001:db8::2/64"); at least one
  "gateway"         default gateway(s), a string or a list
  "mac", "mtu"      as --mac, --mtu
  "http"            HTTP port (default 80)
  "app"             a module exporting a Node request handler (as --app); paths are relative to FILE
  "root"            static files served in front of the app (as --root)
  "limits"          Stack limits: { "tenant": { packetsPerSec, bytesPerSec, burstMs,
                    sourceSharePct, maxSources, cpuPerTurnUs, cpuPercent }, "tcp": { maxConnections,
                    maxConnectionsPerHost, newConnectionsPerSec, maxBufferedBytes, ... }, ... }
  "maxConnections"  HTTP connections served at once (default 10000)
  "stats"           answer GET /stats with the tenant's counters (default true)`;

export interface TenantConfig {
  name: string;
  tap: string;
  netns: string | undefined;
  stack: Omit<StackOptions, "netif" | "scheduler">;
  http: number;
  app: string | undefined;
  root: string | undefined;
  maxConnections: number;
  stats: boolean;
}

const FIELDS = ["name", "tap", "netns", "ipv4", "ipv6", "gateway", "mac", "mtu", "http", "app", "root", "limits", "maxConnections", "stats"];
const LIMIT_GROUPS = ["arp", "ipv4", "icmpv4", "udp", "ipv6", "ndp", "icmpv6", "tcp", "tenant"];

/** Read and check FILE; every error names the tenant and the field (exit 2, before any TAP opens). */
export function parseTenantsFile(file: string): TenantConfig[] {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new UsageError(`--tenants: cannot read ${file}: ${(e as Error).message}`);
  }
  const top = doc as { tenants?: unknown; limits?: unknown };
  if (!top || typeof top !== "object" || !Array.isArray(top.tenants) || top.tenants.length === 0) throw new UsageError(`--tenants: ${file} must hold { "tenants": [ ... ] } with at least one tenant`);
  for (const k of Object.keys(top)) if (k !== "tenants" && k !== "limits") throw new UsageError(`--tenants: unknown top-level field "${k}" (expected tenants, limits)`);
  const defaults = checkLimits("limits", top.limits);
  const base = dirname(resolvePath(file));
  const names = new Set<string>();
  const taps = new Set<string>();
  return top.tenants.map((raw: unknown, i: number) => {
    const where = `tenants[${i}]`;
    if (!raw || typeof raw !== "object") throw new UsageError(`--tenants: ${where} is not an object`);
    const t = raw as Record<string, unknown>;
    for (const k of Object.keys(t)) if (!FIELDS.includes(k)) throw new UsageError(`--tenants: ${where}: unknown field "${k}" (expected ${FIELDS.join(", ")})`);
    const str = (k: string): string | undefined => {
      const v = t[k];
      if (v !== undefined && typeof v !== "string") throw new UsageError(`--tenants: ${where}.${k} must be a string`);
      return v as string | undefined;
    };
    const name = str("name");
    if (!name || !/^[A-Za-z0-9_-]{1,64}$/.test(name)) throw new UsageError(`--tenants: ${where}.name is required: 1-64 letters, digits, - or _`);
    if (names.has(name)) throw new UsageError(`--tenants: tenant name "${name}" is used twice`);
    names.add(name);
    const at = `tenant "${name}"`;
    const tap = str("tap");
    if (!tap) throw new UsageError(`--tenants: ${at}: "tap" is required`);
    try {
      checkTapName(tap);
    } catch (e) {
      throw new UsageError(`--tenants: ${at}: ${(e as Error).message}`);
    }
    if (taps.has(tap)) throw new UsageError(`--tenants: ${at}: TAP ${tap} is another tenant's`);
    taps.add(tap);
    const gateway = t.gateway === undefined ? undefined : Array.isArray(t.gateway) ? t.gateway.map(String) : [String(t.gateway)];
    const mtu = t.mtu === undefined ? undefined : String(t.mtu);
    if (!t.ipv4 && !t.ipv6) throw new UsageError(`--tenants: ${at}: give at least one address ("ipv4" or "ipv6")`);
    let stack: Omit<StackOptions, "netif">;
    try {
      stack = parseStackOptions({ ipv4: str("ipv4"), ipv6: str("ipv6"), gateway, mac: str("mac"), mtu });
    } catch (e) {
      throw new UsageError(`--tenants: ${at}: ${(e as Error).message}`);
    }
    const own = checkLimits(`${at}: limits`, t.limits);
    const limits: StackLimits = { ...defaults };
    for (const [g, v] of Object.entries(own)) (limits as Record<string, unknown>)[g] = { ...((defaults as Record<string, object>)[g] ?? {}), ...(v as object) };
    checkLimitValues(at, limits);
    const int = (k: string, dflt: number, min: number, max: number): number => {
      const v = t[k] ?? dflt;
      if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw new UsageError(`--tenants: ${at}: "${k}" must be a whole number from ${min} to ${max}`);
      return v;
    };
    const app = str("app");
    const root = str("root");
    if (t.stats !== undefined && typeof t.stats !== "boolean") throw new UsageError(`--tenants: ${at}: "stats" must be true or false`);
    return {
      name,
      tap,
      netns: str("netns"),
      stack: { ...stack, limits },
      http: int("http", 80, 1, 65535),
      app: app === undefined ? undefined : resolvePath(base, app),
      root: root === undefined ? undefined : directoryOption(`--tenants: ${at}: root`, resolvePath(base, root)),
      maxConnections: int("maxConnections", 10_000, 1, 1 << 24),
      stats: t.stats !== false,
    };
  });
}

function checkLimits(where: string, v: unknown): StackLimits {
  if (v === undefined) return {};
  if (!v || typeof v !== "object" || Array.isArray(v)) throw new UsageError(`--tenants: ${where} must be an object`);
  for (const [g, x] of Object.entries(v)) {
    if (!LIMIT_GROUPS.includes(g)) throw new UsageError(`--tenants: ${where}: unknown group "${g}" (expected ${LIMIT_GROUPS.join(", ")})`);
    if (!x || typeof x !== "object") throw new UsageError(`--tenants: ${where}.${g} must be an object`);
  }
  return v as StackLimits;
}

/** The tenant and TCP bounds are range-checked here, so a bad one stops everything before a TAP opens. */
function checkLimitValues(at: string, l: StackLimits): void {
  try {
    resolveTenantOptions(l.tenant ?? {});
    resolveTcpOptions(l.tcp ?? {});
  } catch (e) {
    throw new UsageError(`--tenants: ${at}: ${(e as Error).message}`);
  }
}

export async function serveTenants(argv: string[]): Promise<number> {
  const { values } = parse(argv, { tenants: { type: "string" }, help: { type: "boolean", short: "h" } });
  if (values.help) throw new UsageError(TENANTS_USAGE);
  if (!values.tenants) throw new UsageError("--tenants FILE is required");
  const tenants = parseTenantsFile(values.tenants);
  // V8's allocation-site pretenuring is already off (cli/main.ts, before any tenant exists): a
  // thousand tenants' first burst of clients would otherwise teach V8 to put every later
  // request's objects straight into the old generation (stack/core/tuning.ts, README "Tenants").
  // Every app is loaded before any TAP comes up: a bad module is reported with nothing started.
  const stacks = new Map<string, Stack>();
  const handlers = new Map<string, Handler>();
  for (const t of tenants) {
    const stats = () => ({ tenant: t.name, ...stacks.get(t.name)?.stats() });
    const { handler } = await loadHandler({ app: t.app, root: t.root }, t.stats ? stats : undefined);
    const demo = demoApp({ stats });
    // /stats for every tenant, ahead of its own app (unless "stats": false).
    handlers.set(t.name, t.stats && t.app ? (req, res) => (new URL(req.url ?? "/", "http://t").pathname === "/stats" ? demo(req, res) : handler(req, res)) : handler);
  }
  const scheduler = new Scheduler();
  const running: ServeHandle[] = [];
  try {
    for (const t of tenants) {
      const stack = openTapStack({ tap: t.tap, tapNetns: t.netns, stack: { ...t.stack, scheduler } });
      stacks.set(t.name, stack);
      running.push(serveHttp(httpService(handlers.get(t.name)!), stackListener(stack, { port: t.http }), { maxConnections: t.maxConnections }));
    }
    for (const t of tenants) {
      const s = stacks.get(t.name)!;
      await s.ready();
      // Where a per-source limit is enforced: by the kernel (the TAP's eBPF filter) or the stack.
      const perSource = s.tenant.sourcePacketsPerSec;
      const where = perSource ? ` source limit ${perSource}/s ${s.stats().tenant?.["source_limit_in_kernel"] ? "in the kernel" : "in the stack"}` : "";
      const cap = s.tenant.cpuPercent < 100 ? ` cpu cap ${s.tenant.cpuPercent}%` : "";
      console.log(`tenant ${t.name} listening on ${t.tap} mac ${formatMac(s.mac)} ${s.addresses().join(" ")} http ${t.http}${where}${cap}`);
    }
    console.log(`listening ${tenants.length} tenants`);
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
  } finally {
    await Promise.all(running.map((r) => r.stop(2000)));
    await Promise.all([...stacks.values()].map((s) => s.close()));
  }
  return 0;
}
