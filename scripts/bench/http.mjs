// HTTP figures, the same app side by side: `paf serve --tap` (userspace stack over TAP) vs
// `paf serve --host` (Node on kernel TCP over veth between two namespaces): wrk HTTP/1.1
// keep-alive req/s and latency, h2load h2-over-TLS req/s, TLS handshakes/s (one request per
// new connection), paf bench's own latency percentiles (HTTP/1.1 keep-alive, 16 clients), and
// bulk HTTP: curl downloading GET /bytes/N and uploading a POST /sha256 (streamed, chunked).
import { spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, V8_FLAGS, netns, vethPair, nsRun, sleep, track, serveHandle, wrkRps, wrkRequests } from "./lib.mjs";

const CLI = join(ROOT, "dist", "cli", "main.js");

// Both servers load alloc.mjs's meter, idle until the allocation phase signals it (SIGUSR2).
const METER = ["--import", join(ROOT, "scripts", "bench", "alloc.mjs")];

function startServe(args, nsName) {
  const node = [process.execPath, ...V8_FLAGS, ...METER, CLI, "serve", ...args];
  const cmd = nsName ? ["ip", ["netns", "exec", nsName, ...node]] : [node[0], node.slice(1)];
  return serveHandle(track(spawn(cmd[0], cmd[1], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PAF_ALLOC_SIGNAL: "1" } })));
}

/**
 * JS heap the server allocates per HTTP/1.1 keep-alive request: its meter on (SIGUSR2), a 2 s wrk
 * run of its own (the timed runs are not metered), the meter read (SIGUSR2 again).
 */
async function allocPerRequest(clientNs, base, server) {
  const before = server.output().length;
  server.child.kill("SIGUSR2");
  const out = await nsRun(clientNs, "wrk", ["-t2", "-c64", "-d2s", `http://${base}/`]);
  server.child.kill("SIGUSR2");
  const requests = wrkRequests(out);
  for (let i = 0; i < 50; i++) {
    const m = /paf-alloc (\{.*\})/.exec(server.output().slice(before));
    if (m) return requests > 0 ? JSON.parse(m[1]).heap / requests : undefined;
    await sleep(20);
  }
  throw new Error(`${base}: the server printed no allocation figure`);
}

const PAF_BENCH_SECONDS = 3;
/** The open-loop latency rows' offered load, req/s: about half what either side serves here. */
const RATE = 5_000;
/** Bytes of the bulk HTTP download and upload. */
const BULK_BYTES = Number(process.env.PAF_BENCH_HTTP_BYTES ?? 1_000_000_000);

/** A streamed POST of BULK_BYTES to /sha256 with curl from the client namespace: Gbit/s. */
async function upload(clientNs, base) {
  const post = await nsRun(
    clientNs,
    "bash",
    ["-c", `head -c ${BULK_BYTES} /dev/zero | curl -sS -o /dev/null --max-time 120 -X POST -T - -w '%{speed_upload} %{size_upload}' http://${base}/sha256`],
    130_000,
  );
  const [up, sent] = String(post).trim().split(" ").map(Number);
  if (sent < BULK_BYTES) throw new Error(`upload to ${base}: ${sent} of ${BULK_BYTES} bytes`); // chunked: framing counts too
  return (up * 8) / 1e9;
}

/**
 * curl over HTTP/1.1 from the client namespace: a GET of BULK_BYTES, then a streamed POST of as
 * many, then the POST again from a Reno sender (the client namespace's default congestion control
 * switched for it, then back); Gbit/s each. The machine's default, BBR, paces the sender: towards
 * a TAP it arms a pacing timer for nearly every segment it sends, and the sender's CPU, not the
 * receiver, sets the rate (README, "Why a BBR sender is slower towards a TAP").
 */
async function bulk(clientNs, base) {
  const get = await nsRun(clientNs, "curl", ["-sS", "-o", "/dev/null", "--max-time", "120", "-w", "%{speed_download} %{size_download}", `http://${base}/bytes/${BULK_BYTES}`], 130_000);
  const [down, got] = String(get).trim().split(" ").map(Number);
  if (got !== BULK_BYTES) throw new Error(`download from ${base}: ${got} of ${BULK_BYTES} bytes`);
  const upGbps = await upload(clientNs, base);
  const cc = String(await nsRun(clientNs, "sysctl", ["-n", "net.ipv4.tcp_congestion_control"])).trim();
  await nsRun(clientNs, "sysctl", ["-q", "-w", "net.ipv4.tcp_congestion_control=reno"]);
  let upRenoGbps;
  try {
    upRenoGbps = await upload(clientNs, base);
  } finally {
    await nsRun(clientNs, "sysctl", ["-q", "-w", `net.ipv4.tcp_congestion_control=${cc}`]);
  }
  return { downGbps: (down * 8) / 1e9, upGbps, upRenoGbps };
}

/**
 * `paf bench` from the client namespace (kernel TCP): HTTP/1.1 keep-alive, `load` its clients and
 * pacing, PAF_BENCH_SECONDS measured after a 1 s warm-up. A run where requests failed still gives
 * its latencies; the failures are printed.
 */
async function pafBench(clientNs, url, load) {
  const json = join(tmpdir(), `paf-bench-${process.pid}-${Math.random().toString(36).slice(2)}.json`);
  const args = [...V8_FLAGS, CLI, "bench", url, ...load, "--warmup", "1", "--duration", String(PAF_BENCH_SECONDS), "--requests", "1000000", "--timeout", "5000", "--json", json];
  let failure;
  await nsRun(clientNs, process.execPath, args, (PAF_BENCH_SECONDS + 31) * 1000).catch((e) => (failure = e));
  let r;
  try {
    r = JSON.parse(readFileSync(json, "utf8"));
  } catch {
    throw failure ?? new Error(`paf bench ${url} wrote no JSON`);
  } finally {
    rmSync(json, { force: true });
  }
  if (r.failed) console.error(`paf bench ${url}: ${r.failed} of ${r.requests} requests failed ${JSON.stringify(r.errors)}`);
  return r;
}

async function measure(clientNs, base, latencyOnly, server) {
  // paf bench's rows are the steady state, as wrk's second run: each run's first second is its
  // warm-up (--warmup: the same connections, counted apart), on the server as on the client (the
  // cold start of the server shows in the wrk warm-up row). The first 3 s on a fresh server had
  // the worse p99 on both sides (5.9 and 5.2 ms, then 5.0 / 4.7 and 4.2 / 4.2 in the runs after).
  const pb = await pafBench(clientNs, `http://${base}/`, ["--clients", "16"]);
  // The same offered load to both: open loop at RATE req/s (latency from when each request was
  // due), where the closed loop above measures each side at the rate it reaches.
  const pr = await pafBench(clientNs, `http://${base}/`, ["--clients", "64", "--rate", String(RATE)]);
  const bench = { p50ms: pb.latencyMs.p50, p99ms: pb.latencyMs.p99, rateP50ms: pr.latencyMs.p50, rateP99ms: pr.latencyMs.p99, rateDone: pr.completed };
  if (latencyOnly) return { bench };
  // wrk twice: the first 3 s on a server that has served only paf bench (its own row: the first
  // half-second after 64 connects is slow on paf, V8 compiling and marking while connections
  // come), then 5 s measured, the same way on both sides.
  const wrkRun = async (secs) => {
    const out = await nsRun(clientNs, "wrk", ["-t2", "-c64", `-d${secs}s`, "--latency", `http://${base}/`]);
    const p99 = /99%\s+([\d.]+)(us|ms|s)/.exec(out);
    return { rps: wrkRps(out), p99ms: p99 ? Number(p99[1]) * (p99[2] === "us" ? 0.001 : p99[2] === "s" ? 1000 : 1) : undefined };
  };
  const cold = await wrkRun(3);
  const { rps, p99ms } = await wrkRun(5);
  const coldP99ms = cold.p99ms;
  // h2 over TLS twice, as wrk: 20,000 requests on a server that has served no TLS yet (its own
  // row: V8 still compiles the TLS, h2 and flow paths meanwhile), then 40,000 measured.
  const h2load = async (n) => {
    const out = await nsRun(clientNs, "h2load", ["-n", String(n), "-c", "16", "-m", "10", `https://${base}/`]);
    return Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)?.[1] ?? 0);
  };
  const h2coldRps = await h2load(20_000);
  const h2rps = await h2load(40_000);
  // 400 handshakes at once, four times: the first burst on its own (the server has served 32 TLS
  // connections so far: its handshake path is still cold), then the median of three more (one
  // burst lasts half a second: a single one is a noisy sample). The client kernel's retransmission
  // timeouts and tail loss probes during the first burst are counted: a server that does not
  // acknowledge a ClientHello within the client's RTO (200 ms at least) gets it again.
  const clientRetrans = async () => {
    const out = String(await nsRun(clientNs, "nstat", ["-az", "TcpExtTCPTimeouts", "TcpExtTCPLossProbes"]));
    const get = (name) => Number(new RegExp(`${name}\\s+(\\d+)`).exec(out)?.[1] ?? 0);
    return { rtos: get("TcpExtTCPTimeouts"), probes: get("TcpExtTCPLossProbes") };
  };
  const burst = async () => {
    const hs = await nsRun(clientNs, "h2load", ["-n", "400", "-c", "400", "-m", "1", `https://${base}/`]);
    return Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(hs)?.[1] ?? 0);
  };
  const r0 = await clientRetrans();
  const hsFirst = await burst();
  const r1 = await clientRetrans();
  const firstRetrans = { rtos: r1.rtos - r0.rtos, probes: r1.probes - r0.probes };
  const bursts = [];
  for (let i = 0; i < 3; i++) bursts.push(await burst());
  const hsps = bursts.sort((a, b) => a - b)[1];
  const { downGbps, upGbps, upRenoGbps } = await bulk(clientNs, base);
  const allocBytes = await allocPerRequest(clientNs, base, server);
  return { rps, p99ms, coldP99ms, h2rps, h2coldRps, hsps, hsFirst, firstRetrans, bench, downGbps, upGbps, upRenoGbps, allocBytes };
}

/** latencyOnly: just the paf bench rows (PAF_BENCH_ONLY=latency). */
export async function benchHttp({ latencyOnly = false } = {}) {
  // paf on a TAP
  const t = await netns("h");
  const tap = "pafbh";
  const paf = startServe(["--tap", tap, "--tap-netns", t, "--ipv4", "198.18.0.2/24", "--http", "80", "--https", "443"]);
  await paf.ready;
  await nsRun(t, "ip", ["addr", "add", "198.18.0.1/24", "dev", tap]);
  await nsRun(t, "ip", ["link", "set", tap, "up"]);
  await sleep(300);
  const p = await measure(t, "198.18.0.2", latencyOnly, paf);
  await paf.stop();
  // the same app on kernel TCP, across a veth pair
  const { A, B } = await vethPair("h");
  const host = startServe(["--host", "198.18.1.2", "--http", "80", "--https", "443"], B);
  await host.ready;
  const k = await measure(A, "198.18.1.2", latencyOnly, host);
  await host.stop();
  console.log(`(paf bench --rate ${RATE} for ${PAF_BENCH_SECONDS} s: ${p.bench.rateDone} requests completed on paf, ${k.bench.rateDone} on the kernel, of ${RATE * PAF_BENCH_SECONDS} due)`);
  const latency = [
    { name: "HTTP/1.1 p50 latency, ms (paf bench, 16 clients)", paf: p.bench.p50ms, kernel: k.bench.p50ms, lowerIsBetter: true },
    { name: "HTTP/1.1 p99 latency, ms (paf bench, 16 clients)", paf: p.bench.p99ms, kernel: k.bench.p99ms, lowerIsBetter: true },
    { name: `HTTP/1.1 p50 latency, ms (paf bench --rate ${RATE}: the same offered load, open loop, 64 clients)`, paf: p.bench.rateP50ms, kernel: k.bench.rateP50ms, lowerIsBetter: true },
    { name: `HTTP/1.1 p99 latency, ms (paf bench --rate ${RATE}: the same offered load, open loop, 64 clients)`, paf: p.bench.rateP99ms, kernel: k.bench.rateP99ms, lowerIsBetter: true },
  ];
  if (latencyOnly) return latency;
  console.log(
    `(the client's retransmission timeouts / tail loss probes during the first burst of 400 TLS handshakes: paf ${p.firstRetrans.rtos} / ${p.firstRetrans.probes}, kernel ${k.firstRetrans.rtos} / ${k.firstRetrans.probes})`,
  );
  return [
    { name: "HTTP/1.1 keep-alive req/s (wrk -t2 -c64)", paf: p.rps, kernel: k.rps },
    { name: "HTTP/1.1 p99 latency, ms (wrk, 5 s after a 3 s warm-up)", paf: p.p99ms, kernel: k.p99ms, lowerIsBetter: true },
    { name: "HTTP/1.1 p99 latency, ms (wrk, the 3 s warm-up: 64 new connections)", paf: p.coldP99ms, kernel: k.coldP99ms, lowerIsBetter: true },
    { name: "h2 over TLS req/s (h2load -c16 -m10, the first 20,000 requests: TLS and h2 paths cold)", paf: p.h2coldRps, kernel: k.h2coldRps },
    { name: "h2 over TLS req/s (h2load -c16 -m10, 40,000 after those)", paf: p.h2rps, kernel: k.h2rps },
    { name: "TLS handshakes/s (h2load, 400 connections of 1 request; the first burst)", paf: p.hsFirst, kernel: k.hsFirst },
    { name: "TLS handshakes/s (h2load, 400 connections of 1 request; median of the 3 bursts after it)", paf: p.hsps, kernel: k.hsps },
    { name: `HTTP download, curl GET ${BULK_BYTES / 1e9} GB (Gbit/s)`, paf: p.downGbps, kernel: k.downGbps },
    { name: `HTTP upload, curl POST ${BULK_BYTES / 1e9} GB streamed (Gbit/s)`, paf: p.upGbps, kernel: k.upGbps },
    { name: `HTTP upload, curl POST ${BULK_BYTES / 1e9} GB streamed, Reno sender (Gbit/s)`, paf: p.upRenoGbps, kernel: k.upRenoGbps },
    { name: "JS heap allocated per HTTP/1.1 keep-alive request, bytes (the server, under wrk -t2 -c64)", paf: p.allocBytes, kernel: k.allocBytes, lowerIsBetter: true },
    ...latency,
  ];
}
