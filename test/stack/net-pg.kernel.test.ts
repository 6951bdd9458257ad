// A database client nobody here wrote, over the userspace stack: node-postgres (pg) takes a
// `stream` factory and does what it does with a net.Socket (new Socket(), connect(port, host),
// setNoDelay, setKeepAlive, 'connect', data, end). A real PostgreSQL server runs in a namespace
// behind a TAP; the same queries run through `new stack.net.Socket()` and, side by side, through
// the kernel (pg over the server's Unix socket), and must give the same answers: parameters, a
// large result, a large parameter, errors that leave the connection usable, LISTEN/NOTIFY across
// the two, a pool of concurrent connections, IPv6, and a clean end seen by the server.
// Needs root, /dev/net/tun and PostgreSQL (scripts/deps.sh test installs it).
import { createHash } from "node:crypto";
import { chmodSync, chownSync, appendFileSync, mkdtempSync, rmSync, readdirSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ifname, requirePrivileged, useNetns, waitForOutput } from "../helpers/netns.js";
import { TapNetif } from "../../stack/netif/tap.js";
import { Stack } from "../../stack/stack.js";

const run = requirePrivileged();

/** The server's binaries (Debian puts them under a versioned directory). */
function pgBin(): string {
  const root = "/usr/lib/postgresql";
  const v = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a))[0] : undefined;
  if (!v) throw new Error("PostgreSQL is not installed (scripts/deps.sh test installs the 'postgresql' package)");
  return join(root, v, "bin");
}

const md5 = (s: string) => createHash("md5").update(s).digest("hex");
/** The large parameter: "paf" this many times (8 MB). */
const REPEAT = 2_796_202;

describe.skipIf(!run)("pg (node-postgres) over stack.net against PostgreSQL in a namespace", () => {
  const ctx = useNetns("pg");
  let stack: Stack;
  let dir: string;
  let server: ChildProcess;
  const clients: pg.Client[] = [];

  /** A pg client over the userspace stack (or, with `kernel`, over the server's Unix socket). */
  async function connect(how: "paf" | "paf6" | "kernel"): Promise<pg.Client> {
    const c =
      how === "kernel"
        ? new pg.Client({ host: dir, port: 5432, user: "postgres", database: "postgres" })
        : new pg.Client({ host: how === "paf" ? "198.18.0.1" : "2001:db8::1", port: 5432, user: "postgres", database: "postgres", stream: () => new stack.net.Socket() });
    clients.push(c);
    await c.connect();
    return c;
  }

  beforeAll(async () => {
    const ns = ctx.ns;
    const bin = pgBin();
    dir = mkdtempSync(join(tmpdir(), "paf-pg-"));
    chmodSync(dir, 0o700);
    const uid = Number(execFileSync("id", ["-u", "postgres"]).toString());
    const gid = Number(execFileSync("id", ["-g", "postgres"]).toString());
    chownSync(dir, uid, gid);
    const data = join(dir, "data");
    execFileSync("runuser", ["-u", "postgres", "--", join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"], { stdio: "pipe", timeout: 60_000 });
    appendFileSync(join(data, "pg_hba.conf"), "host all all 198.18.0.0/15 trust\nhost all all 2001:db8::/32 trust\n");

    const netif = TapNetif.open(ifname("pg"), { netns: ns.path, up: true });
    await ns.kernelSide(netif.name);
    stack = Stack.create({ netif, ipv4: { address: "198.18.0.2/24" }, ipv6: { address: "2001:db8::2/64", dad: false } });
    await stack.ready();

    // setpriv execs (runuser would fork and not pass our signal on): the child is postgres itself.
    server = ns.spawn(
      "setpriv",
      [
        "--reuid",
        String(uid),
        "--regid",
        String(gid),
        "--clear-groups",
        join(bin, "postgres"),
        "-D",
        data,
        "-k",
        dir,
        "-p",
        "5432",
        "-c",
        "listen_addresses=198.18.0.1,2001:db8::1",
        "-c",
        "fsync=off",
        "-c",
        "log_connections=on",
        "-c",
        "log_disconnections=on",
      ],
      { timeoutMs: 300_000 },
    );
    await waitForOutput(server, /database system is ready to accept connections/, 30_000);
  }, 90_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
    // SIGINT: PostgreSQL's fast shutdown.
    if (server && server.exitCode === null) {
      const exited = new Promise((r) => server.once("exit", r));
      server.kill("SIGINT");
      await exited;
    }
    await stack?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  /** The same work on any client; what it returns must be equal on both paths. */
  async function workload(c: pg.Client): Promise<unknown[]> {
    const out: unknown[] = [];
    out.push((await c.query("select version() ~ 'PostgreSQL' as ok")).rows[0]);
    await c.query("create temporary table t (id int primary key, name text)");
    await c.query("begin");
    for (let i = 0; i < 500; i++) await c.query("insert into t values ($1, $2)", [i, `name-${i}`]);
    await c.query("commit");
    out.push((await c.query("select count(*)::int as n, sum(id)::int as s, max(name) as m from t")).rows[0]);
    // A large result: about 5 MB from the server, row by row in order.
    const big = await c.query("select g, md5(g::text) as h from generate_series(1, 100000) g");
    out.push(big.rowCount);
    out.push(big.rows.every((r: { g: number; h: string }, i: number) => r.g === i + 1) && big.rows[99_999].h === md5("100000"));
    // A large parameter: 8 MB to the server.
    const text = "paf".repeat(REPEAT);
    out.push((await c.query("select length($1::text)::int as n, md5($1::text) as h", [text])).rows[0]);
    // An error leaves the connection usable.
    const err = await c.query("select 1/0").then(
      () => undefined,
      (e: Error & { code?: string }) => e.code,
    );
    out.push(err);
    out.push((await c.query("select 41 + 1 as x")).rows[0]);
    return out;
  }

  it("the same queries give the same answers over the stack as over the kernel", async () => {
    const viaPaf = await workload(await connect("paf"));
    const viaKernel = await workload(await connect("kernel"));
    expect(viaPaf).toEqual(viaKernel);
    expect(viaPaf[0]).toEqual({ ok: true });
    expect(viaPaf[1]).toEqual({ n: 500, s: (499 * 500) / 2, m: "name-99" });
    expect(viaPaf[2]).toBe(100_000);
    expect(viaPaf[3]).toBe(true);
    expect(viaPaf[4]).toEqual({ n: REPEAT * 3, h: md5("paf".repeat(REPEAT)) });
    expect(viaPaf[5]).toBe("22012");
    expect(viaPaf[6]).toEqual({ x: 42 });
  }, 120_000);

  it("the server sees the stack's address; LISTEN over the stack hears a NOTIFY sent over the kernel", async () => {
    const listener = await connect("paf");
    const who = await listener.query("select host(inet_client_addr()) as a, inet_client_port() as p");
    expect(who.rows[0].a).toBe("198.18.0.2");
    await listener.query("listen paf_events");
    const heard = new Promise<pg.Notification>((r) => listener.once("notification", r));
    const sender = await connect("kernel");
    await sender.query("select pg_notify('paf_events', 'hello from the kernel side')");
    const n = await heard;
    expect(n.channel).toBe("paf_events");
    expect(n.payload).toBe("hello from the kernel side");
  }, 60_000);

  it("IPv6: a client over 2001:db8::2", async () => {
    const c = await connect("paf6");
    const who = await c.query("select host(inet_client_addr()) as a");
    expect(who.rows[0].a).toBe("2001:db8::2");
  }, 60_000);

  it("a pool of 8 connections over the stack runs 64 concurrent queries, each answered right", async () => {
    const pool = new pg.Pool({ host: "198.18.0.1", port: 5432, user: "postgres", database: "postgres", max: 8, stream: () => new stack.net.Socket() });
    try {
      const got = await Promise.all(Array.from({ length: 64 }, (_, i) => pool.query("select $1::int * 2 as v, pg_backend_pid() as pid from pg_sleep(0.01)", [i])));
      expect(got.map((r) => r.rows[0].v)).toEqual(Array.from({ length: 64 }, (_, i) => i * 2));
      expect(new Set(got.map((r) => r.rows[0].pid)).size).toBeGreaterThan(1);
      expect(pool.totalCount).toBeLessThanOrEqual(8);
    } finally {
      await pool.end();
    }
  }, 60_000);

  it("client.end() closes the flow cleanly: the server's session for it ends", async () => {
    const c = await connect("paf");
    const pid = (await c.query("select pg_backend_pid() as pid")).rows[0].pid as number;
    const watcher = await connect("kernel");
    await c.end();
    const end = Date.now() + 10_000;
    let left = 1;
    while (Date.now() < end) {
      left = (await watcher.query("select count(*)::int as n from pg_stat_activity where pid = $1", [pid])).rows[0].n;
      if (left === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(left).toBe(0);
  }, 60_000);
});
