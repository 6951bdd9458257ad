// Hostile load over a real TAP, the Linux kernel as the client (an attacker on the same link):
// thousands of idle or silent connections, partial HTTP/2 prefaces, trickled requests, an h2
// rapid-reset flood, spoofed fragments that never complete. The stack keeps serving newcomers at
// once, every connection meets a deadline, and everything returns to baseline afterwards.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import v8 from "node:v8";
import vm from "node:vm";
import type { ChildProcess } from "node:child_process";
import { Netns, privileged, waitFor } from "../helpers/netns.js";
import { TapNetif } from "../../stack/netif/tap.js";
import { Stack } from "../../stack/stack.js";
import { serve, type ServeHandle } from "../../http/serve.js";
import { stackListener } from "../../http/listener.js";
import { httpService, httpsService, type Handler } from "../../http/services.js";
import { selfSigned } from "../../tls/selfsigned.js";

const run = privileged();
const HOLD = join(import.meta.dirname, "..", "helpers", "holdconns.py");
const FRAGS = join(import.meta.dirname, "..", "helpers", "fragflood.py");

interface Held {
  established: number;
  failed: number;
  eof?: number;
  reset?: number;
  open?: number;
  /** Youngest and oldest age (s since its handshake) at which the server closed a connection. */
  minAge?: number | null;
  maxAge?: number | null;
  ms?: number;
}

/** holdconns.py in the namespace: `ready` once all are connected, `done` with what the server did. */
function hold(ns: Netns, port: number, count: number, mode: string, holdS: number): { ready: Promise<Held>; done: Promise<Held>; release(): void; child: ChildProcess } {
  const child = ns.spawn("/usr/bin/python3", [HOLD, "198.18.0.2", String(port), String(count), mode, String(holdS)], { timeoutMs: (holdS + 40) * 1000 });
  let out = "";
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  const ready = new Promise<Held>((resolve, reject) => {
    child.stdout!.on("data", (d) => {
      out += d;
      const m = /^ready (.*)$/m.exec(out);
      if (m) resolve(JSON.parse(m[1]!));
    });
    child.on("exit", () => reject(new Error(`holdconns exited before ready: ${out} ${err}`)));
  });
  // 'close', not 'exit': the last line may still be in the pipe when the process has exited.
  const done = new Promise<Held>((resolve, reject) =>
    child.on("close", (code) => {
      const last = out.trim().split("\n").pop() ?? "";
      if (code !== 0 || last.startsWith("ready")) return reject(new Error(`holdconns ${mode} exited ${code}: ${out} ${err}`));
      resolve(JSON.parse(last));
    }),
  );
  ready.catch(() => {});
  done.catch(() => {});
  return { ready, done, release: () => child.stdin!.end(), child };
}

function heapUsed(): number {
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

const { key, cert } = await selfSigned(["198.18.0.2"]);

describe.skipIf(!run)("hostile load over TAP, the kernel as client", () => {
  let ns: Netns;
  let stack: Stack;
  const servers: ServeHandle[] = [];
  const TAP = "pafh" + (process.pid % 10000);
  const app: Handler = (_req, res) => res.end("ok\n");
  const quiet = { log: () => {} };
  // Long deadlines on 80/443 (the attack stays while newcomers are served); short ones on
  // 8080/8443 (the deadlines themselves are under test).
  const SHORT = { headersTimeoutMs: 3000, keepAliveTimeoutMs: 4000 };
  const curl = (args: string[]) => ns.exec("curl", ["-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", ...args]).then((r) => r.stdout);
  const tcp = () => stack.stats().tcp!;

  beforeAll(async () => {
    ns = await Netns.create("hostile");
    // TIME-WAIT of 2 s (2 x MSL): the server closes first, so its TIME-WAITs would otherwise hold
    // the count of connections up for a minute after each attack.
    stack = Stack.create({
      netif: TapNetif.open(TAP, { netns: ns.path, up: true, offload: true }),
      ipv4: { address: "198.18.0.2/24" },
      ipv6: { address: "2001:db8::2/64" },
      limits: { tcp: { mslMs: 1000 } },
    });
    await ns.kernelSide(TAP);
    await stack.ready();
    servers.push(serve(httpService(app, { ...quiet, headersTimeoutMs: 60_000 }), stackListener(stack, { port: 80 })));
    servers.push(serve(httpsService(app, { key, cert, ...quiet, headersTimeoutMs: 60_000 }), stackListener(stack, { port: 443 })));
    servers.push(serve(httpService(app, { ...quiet, ...SHORT }), stackListener(stack, { port: 8080 })));
    servers.push(serve(httpsService(app, { key, cert, ...quiet, ...SHORT }), stackListener(stack, { port: 8443 })));
    servers.push(serve(httpService(app, { ...quiet, headersTimeoutMs: 60_000 }), stackListener(stack, { port: 8081 }), { maxConnections: 100 }));
    // Warm up (ARP, TLS code paths) before baselines are taken.
    expect(await curl(["http://198.18.0.2/"])).toMatch(/^200/);
    expect(await curl(["-k", "https://198.18.0.2/"])).toMatch(/^200/);
  }, 60_000);
  afterAll(async () => {
    try {
      for (const s of servers) await s.stop(200);
      await stack?.close();
    } finally {
      await ns?.destroy();
    }
  });

  /** Wait until the stack holds no connection and no buffered byte. */
  const backToBaseline = (what: string, ms = 15_000) => waitFor(() => tcp()["connections"] === 0 && tcp()["buffered_bytes"] === 0 && tcp()["orphans"] === 0, what, ms, 100);

  it.each([
    ["1,100 connections that sent one byte", 1100, "byte"],
    ["4,200 silent connections", 4200, "silent"],
  ])(
    "%s: a new HTTP and a new HTTPS request are served at once",
    async (_name, n, mode) => {
      const h = hold(ns, 80, n, mode, 40);
      const r = await h.ready;
      expect(r.established).toBe(n);
      await waitFor(() => tcp()["connections"]! >= n, "the server to hold them", 10_000, 50).catch((e) => {
        throw new Error(`${e.message}: ${JSON.stringify(r)} ${JSON.stringify(tcp())}`);
      });
      const http = await curl(["http://198.18.0.2/"]);
      const https = await curl(["-k", "https://198.18.0.2/"]);
      expect(http).toMatch(/^200 /);
      expect(https).toMatch(/^200 /);
      expect(Number(http.split(" ")[1])).toBeLessThan(0.5);
      expect(Number(https.split(" ")[1])).toBeLessThan(0.5);
      expect(tcp()["buffered_bytes"]).toBeLessThanOrEqual(n);
      h.release();
      const d = await h.done;
      expect(d.open).toBe(n); // none was closed under the client while held
      await backToBaseline("the attack's connections to close");
    },
    90_000,
  );

  it("10,000 silent connections are cut by the head deadline (FIN), and memory returns to baseline", async () => {
    const heap0 = heapUsed();
    const h = hold(ns, 8080, 10_000, "silent", 40);
    const r = await h.ready;
    const d = await h.done;
    expect(r.established).toBe(10_000);
    expect(d.eof).toBe(10_000);
    expect(d.reset).toBe(0);
    // (Ages are from when the client saw its handshake complete; under this load it sees that
    // late, so only the upper bound says something.) When the machine is busy (other test files
    // run beside this one) paf reads the TAP late and the kernel drops what overflows its queue
    // (26,942 frames in one run with two busy loops beside it, `ip -s link`: TX dropped): a
    // handshake's last ACK lost that way is recovered by our SYN-ACK retransmissions 1, 2 and 4 s
    // later, and the head deadline runs from the accept, so the bound allows those 7 s.
    expect(d.maxAge!).toBeLessThan(SHORT.headersTimeoutMs / 1000 + 7 + 1.5);
    const st = servers[2]!.stats();
    expect(st["head_timeouts"]).toBeGreaterThanOrEqual(10_000);
    await backToBaseline("10,000 closes to finish", 30_000);
    expect(servers[2]!.stats().open).toBe(0);
    // The JavaScript heap the stack and the servers use (RSS is V8's to give back, or keep).
    expect(heapUsed() - heap0).toBeLessThan(4 << 20);
  }, 120_000);

  it("partial and idle HTTP/2 prefaces, idle keep-alive, trickled requests and silent TLS are all closed in time, cleanly (FIN)", async () => {
    const before = servers[2]!.stats();
    const runs = {
      h2partial: hold(ns, 8080, 20, "h2partial", 30),
      h2preface: hold(ns, 8080, 20, "h2preface", 30),
      keepalive: hold(ns, 8080, 20, "keepalive", 30),
      trickle: hold(ns, 8080, 20, "trickle", 30),
      tls: hold(ns, 8443, 20, "silent", 30),
    };
    const got = Object.fromEntries(await Promise.all(Object.entries(runs).map(async ([k, v]) => [k, await v.done] as const)));
    const { headersTimeoutMs: H, keepAliveTimeoutMs: K } = SHORT;
    // When each should close: the head deadline from accept; keep-alive: idle; trickle: idle,
    // then the head deadline from the end of the idle period (bytes had come meanwhile).
    const want: Record<string, number> = { h2partial: H, h2preface: H, keepalive: K, trickle: K + H, tls: H };
    for (const [k, v] of Object.entries(got)) {
      expect(v.eof, `${k}: ${JSON.stringify(v)}`).toBe(20);
      expect(v.reset, k).toBe(0);
      expect(v.maxAge!, k).toBeLessThan(want[k]! / 1000 + 2);
      expect(v.minAge!, k).toBeGreaterThan(want[k]! / 1000 - 0.5);
    }
    const after = servers[2]!.stats();
    expect(after["head_timeouts"]! - before["head_timeouts"]!).toBe(60);
    expect(after["idle_timeouts"]! - before["idle_timeouts"]!).toBeGreaterThanOrEqual(20);
    expect(servers[3]!.stats()["head_timeouts"]).toBeGreaterThanOrEqual(20);
    await backToBaseline("their connections to close");
  }, 60_000);

  it("at maxConnections, the connection that has waited longest without a request makes room for a newcomer", async () => {
    const h = hold(ns, 8081, 150, "silent", 30);
    expect((await h.ready).established).toBe(150);
    await waitFor(() => servers[4]!.stats()["evicted"] === 50, "50 evictions", 5000, 50);
    expect(await curl(["http://198.18.0.2:8081/"])).toMatch(/^200 /);
    expect(servers[4]!.stats()).toMatchObject({ evicted: 51, rejected: 0 });
    h.release();
    const d = await h.done;
    expect(d.eof).toBe(51); // closed with FIN, the oldest first
    expect(d.open).toBe(99);
    await backToBaseline("their connections to close");
  }, 40_000);

  it("an h2 rapid-reset flood: after the GOAWAY the connection closes and its unread data is released", async () => {
    const script = `
      const http2 = require("node:http2");
      const s = http2.connect("http://198.18.0.2:80");
      s.on("error", () => {});
      let goaway = false;
      s.on("goaway", () => (goaway = true));
      s.on("connect", () => {
        let i = 0;
        const burst = () => {
          for (let k = 0; k < 200 && i < 20000 && !s.destroyed && !s.closed; k++, i++) {
            try { const r = s.request({ ":path": "/" }); r.on("error", () => {}); r.close(http2.constants.NGHTTP2_CANCEL); } catch { return; }
          }
          if (i < 20000 && !s.destroyed && !s.closed) setImmediate(burst);
        };
        burst();
      });
      s.on("close", () => { console.log(JSON.stringify({ goaway })); process.exit(0); });
      setTimeout(() => { console.log(JSON.stringify({ goaway, open: true })); process.exit(0); }, 15000);`;
    const r = JSON.parse((await ns.exec(process.execPath, ["-e", script], 30_000)).stdout.trim().split("\n").pop()!);
    expect(r).toEqual({ goaway: true });
    // node:http2 stops reading after its GOAWAY and never closes: the idle deadline (5 s) does.
    await backToBaseline("the flooded connection to be released", 9000).catch((e) => {
      throw new Error(`${e.message}: ${JSON.stringify(tcp())} ${JSON.stringify(stack.tcp.layer.connections().map((t) => [t.state, t.unread, t.sendQ.length, t.orphaned]))}`);
    });
  }, 40_000);

  it("data sent after the server closed is answered with RST, not buffered", async () => {
    const py = `
import socket, time
s = socket.create_connection(("198.18.0.2", 80), timeout=5)
s.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
got = b""
while True:
    d = s.recv(65536)
    if not d: break
    got += d
time.sleep(0.2)
try:
    s.sendall(b"x" * 10000)
    time.sleep(0.5)
    s.sendall(b"y")
    print("no reset")
except ConnectionResetError:
    print("reset")
except BrokenPipeError:
    print("reset")
`;
    const before = tcp()["aborts_on_data"] ?? 0;
    expect((await ns.exec("/usr/bin/python3", ["-c", py], 15_000)).stdout.trim()).toBe("reset");
    expect(tcp()["aborts_on_data"]).toBe(before + 1);
    await backToBaseline("the reset connection to be gone");
  }, 30_000);

  it.each([
    { n: 64, dst: "198.18.0.2" },
    { n: 1000, dst: "198.18.0.2" },
    { n: 1000, dst: "2001:db8::2" },
  ])(
    "$n spoofed first fragments to $dst that never complete do not stop a fragmented ping from a real host",
    async ({ n, dst }) => {
      const mac = [...stack.mac].map((b) => b.toString(16).padStart(2, "0")).join(":");
      await ns.exec("/usr/bin/python3", [FRAGS, TAP, mac, dst, String(n)], 30_000);
      const out = await ns.exec("ping", [...(dst.includes(":") ? ["-6"] : []), "-c", "1", "-W", "3", "-s", "4000", dst], 10_000);
      expect(out.stdout).toMatch(/1 received/);
    },
    40_000,
  );

  it("after the attacks every counter is back to baseline", async () => {
    await backToBaseline("baseline");
    const t = tcp();
    expect(t).toMatchObject({ connections: 0, orphans: 0, buffered_bytes: 0, remote_hosts: 0, memory_pressure_pct: 0 });
    for (const s of servers) expect(s.stats().open).toBe(0);
    expect(await curl(["http://198.18.0.2/"])).toMatch(/^200/);
  }, 30_000);
});
