// One measurement of the tenants benchmark, in a fresh process (so heaps and timers of one run
// never colour the next): prints one JSON line.
//
//   node scripts/bench/tenants-run.mjs load   N SECONDS LOOPS [paf|kernel] [node|raw]   aggregate req/s, p99
//   node --expose-gc scripts/bench/tenants-run.mjs idle N                   heap per idle stack, creation time
//
// load: N tenants, each its own VirtualSwitch with a server stack (198.18.0.2, HTTP on port 80)
// and a client stack (198.18.0.1) on the same addresses as every other tenant; LOOPS request
// loops (node:http keep-alive through PafAgent), loop i on tenant i mod N. "kernel": the same load
// on N node:http servers on 127.0.0.1 (kernel loopback TCP), the reference.
// "raw" clients: each loop one keep-alive connection (stack.net.connect / net.connect) that
// writes a fixed GET and reads the response to its Content-Length, as wrk does: no per-request
// ClientRequest, IncomingMessage or parser, so the figure is the servers' (and the stacks'),
// not node:http's client's. The servers are node:http in every case.
import http from "node:http";
import net from "node:net";
import { PerformanceObserver, constants } from "node:perf_hooks";
import * as paf from "../../dist/index.js";
import { profilePhase } from "./inspect.mjs";

const { Stack, VirtualSwitch, serve, stackListener, httpService, PafAgent, Ctx, K, Scheduler } = paf;

// As the paf command does and the README advises for processes of many tenants (paf and kernel
// runs alike); PAF_V8_PRETENURING=1 keeps V8's default, for comparison.
if (process.env.PAF_V8_PRETENURING !== "1") paf.disableAllocationSitePretenuring();

const [mode, nArg, secArg, loopsArg, kind = "paf", client = "node"] = process.argv.slice(2);
const N = Number(nArg);

const app = (_req, res) => {
  res.setHeader("content-type", "text/plain");
  res.end("hello tenant\n");
};

function percentile(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] : 0;
}

async function load() {
  const seconds = Number(secArg);
  const loops = Number(loopsArg);
  const scheduler = Scheduler ? new Scheduler() : undefined;
  const targets = [];
  const closers = [];
  const stacks = [];
  for (let i = 0; i < N; i++) {
    if (kind === "kernel") {
      const srv = http.createServer({ keepAliveTimeout: 60_000 }, app);
      await new Promise((r) => srv.listen(0, "127.0.0.1", r));
      targets.push({ host: "127.0.0.1", port: srv.address().port, agent: new http.Agent({ keepAlive: true }), net });
      closers.push(() => new Promise((r) => srv.close(r)));
      srv.closeIdleConnections?.();
      continue;
    }
    const sw = new VirtualSwitch();
    const so = scheduler ? { scheduler } : {};
    const server = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" }, ...so });
    const client = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.1/24" }, ...so });
    const web = serve(httpService(app), stackListener(server, { port: 80 }));
    stacks.push(server, client);
    targets.push({ host: "198.18.0.2", port: 80, agent: new PafAgent({ ctx: Ctx.empty.with(K.stack, client) }), net: client.net });
    closers.push(async () => {
      await web.stop(100);
      await Promise.all([server.close(), client.close()]);
    });
  }
  const lat = [];
  let done = 0;
  let errors = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  const one = (t) =>
    new Promise((resolve) => {
      const s = performance.now();
      const req = http.request({ host: t.host, port: t.port, path: "/", agent: t.agent }, (res) => {
        res.resume();
        res.on("end", () => {
          lat.push(performance.now() - s);
          done++;
          resolve();
        });
      });
      req.on("error", () => {
        errors++;
        resolve();
      });
      req.end();
    });
  const loop = async (i) => {
    const t = targets[i % N];
    while (performance.now() < end) await one(t);
  };
  const counted = {
    ok: (ms) => {
      lat.push(ms);
      done++;
    },
    failed: () => errors++,
  };
  const rawLoop = (i) => rawClient(targets[i % N], end, counted);
  // Warm up: one connection and one request per loaded tenant.
  if (client === "raw") await Promise.all(Array.from({ length: Math.min(loops, N) }, (_, i) => rawClient(targets[i], 0, { ok() {}, failed() {} })));
  else await Promise.all(Array.from({ length: Math.min(loops, N) }, (_, i) => one(targets[i])));
  lat.length = 0;
  done = 0;
  // PAF_PROFILE=FILE: a CPU profile of the measured phase only; PAF_HEAPPROF=FILE: what it promoted.
  const prof = await profilePhase({ cpu: process.env.PAF_PROFILE, heap: process.env.PAF_HEAPPROF });
  const gcs = gcCounter();
  const c0 = process.cpuUsage();
  const m0 = performance.now();
  await Promise.all(Array.from({ length: loops }, (_, i) => (client === "raw" ? rawLoop(i) : loop(i))));
  const elapsed = (performance.now() - m0) / 1000;
  const cpu = process.cpuUsage(c0);
  const gc = gcs.stop();
  await prof?.();
  lat.sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      mode,
      kind,
      tenants: N,
      loops,
      seconds: elapsed,
      requests: done,
      errors,
      rps: done / elapsed,
      cpuUsPerRequest: (cpu.user + cpu.system) / done,
      cpuShare: (cpu.user + cpu.system) / 1e6 / elapsed,
      p50: percentile(lat, 50),
      p99: percentile(lat, 99),
      ...gc,
    }),
  );
  if (process.env.PAF_STATS) {
    const sum = {};
    for (const st of stacks) for (const [layer, c] of Object.entries(st.stats())) for (const [k, v] of Object.entries(c)) sum[`${layer}.${k}`] = (sum[`${layer}.${k}`] ?? 0) + v;
    console.error(JSON.stringify(sum));
  }
  for (const t of targets) t.agent.destroy();
  await Promise.all(closers.map((c) => c()));
}

const GET = Buffer.from("GET / HTTP/1.1\r\nHost: tenant\r\n\r\n");
const CRLF2 = Buffer.from("\r\n\r\n");

/**
 * One wrk-like loop: a keep-alive connection, one GET at a time until `end` (at least one), each
 * response read to the end of its head and Content-Length bytes of body; its latency to `rec.ok`.
 */
function rawClient(t, end, rec) {
  return new Promise((resolve) => {
    const sock = t.net.connect(t.port, t.host);
    let buf = Buffer.alloc(0);
    let sent = 0;
    const send = () => {
      sent = performance.now();
      sock.write(GET);
    };
    let done = false;
    const finish = () => {
      done = true;
      sock.destroy();
      resolve();
    };
    sock.on("connect", send);
    sock.on("error", () => {
      if (!done) rec.failed();
      finish();
    });
    // Closed by the server (no error) with a request outstanding: a failure, and the loop ends.
    sock.on("close", () => {
      if (!done) rec.failed();
      finish();
    });
    sock.on("data", (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      for (;;) {
        const h = buf.indexOf(CRLF2);
        if (h < 0) return;
        const m = /content-length:\s*(\d+)/i.exec(buf.toString("latin1", 0, h));
        const total = h + 4 + (m ? Number(m[1]) : 0);
        if (buf.length < total) return;
        buf = buf.subarray(total);
        rec.ok(performance.now() - sent);
        if (performance.now() >= end) return finish();
        send();
      }
    });
  });
}

/**
 * Young- and old-generation collections while measuring, and their pauses (ms): a run whose
 * scavenges take several ms each is promoting what should die young.
 */
function gcCounter() {
  const c = { scavenges: 0, scavengeMs: 0, majorGCs: 0, majorGCMs: 0 };
  const count = (entries) => {
    for (const e of entries) {
      if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) {
        c.scavenges++;
        c.scavengeMs += e.duration;
      } else if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        c.majorGCs++;
        c.majorGCMs += e.duration;
      }
    }
  };
  const obs = new PerformanceObserver((list) => count(list.getEntries()));
  obs.observe({ entryTypes: ["gc"] });
  return {
    stop() {
      count(obs.takeRecords());
      obs.disconnect();
      return c;
    },
  };
}

async function idle() {
  const scheduler = Scheduler ? new Scheduler() : undefined;
  const so = scheduler ? { scheduler } : {};
  // Warm the code paths first (JIT, lazy module state), then measure N more.
  const warm = [];
  for (let i = 0; i < 20; i++) warm.push(Stack.create({ netif: new VirtualSwitch().port(), ipv4: { address: "198.18.0.2/24" }, ...so }));
  globalThis.gc();
  const h0 = process.memoryUsage().heapUsed;
  const stacks = new Array(N);
  const t0 = performance.now();
  for (let i = 0; i < N; i++) stacks[i] = Stack.create({ netif: new VirtualSwitch().port(), ipv4: { address: "198.18.0.2/24" }, ...so });
  const createMs = (performance.now() - t0) / N;
  await new Promise((r) => setTimeout(r, 50));
  globalThis.gc();
  const heapPerStack = (process.memoryUsage().heapUsed - h0) / N;
  console.log(JSON.stringify({ mode, tenants: N, heapPerStackBytes: heapPerStack, createMs }));
  await Promise.all([...warm, ...stacks].map((s) => s.close()));
}

await (mode === "idle" ? idle() : load());
process.exit(0);
