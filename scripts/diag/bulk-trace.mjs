// One bulk TCP transfer between the kernel and a stack on a TAP in a throwaway namespace, with the
// connection traced every 2 ms: what found cwnd growing without end while the send buffer was the
// limit, and the freed-heap trimming behind the slow receive path.
//
//   node scripts/diag/bulk-trace.mjs down [BYTES]   curl GETs BYTES from a raw flow on the stack
//   node scripts/diag/bulk-trace.mjs up [BYTES]     udpbench tcpsend pushes BYTES into the stack
//
// Prints the throughput, the server's CPU time, the TAP's transmit buffer counters, the stack's
// TCP counters, the namespace's nstat, and ~40 samples of the connection (cwnd, bytes in flight,
// the peer's window, send buffer, receive buffer, unread bytes, srtt). Root. Traffic stays inside
// the namespace (198.18.0.1 <-> 198.18.0.2), which is removed at the end, also on failure.
// DIST=dir picks another build of the package (e.g. an older commit's, for an A/B). CC=reno sets
// the namespace's TCP congestion control (the machine's default here is BBR, whose pacing is what
// limits kernel -> stack; a namespace may only pick from net.ipv4.tcp_allowed_congestion_control).
import { execFileSync, spawn } from "node:child_process";
import { join } from "node:path";
import { ROOT, udpbench, writeBytes } from "../bench/lib.mjs";

const [mode = "down", bytesArg] = process.argv.slice(2);
if (mode !== "down" && mode !== "up") throw new Error(`usage: bulk-trace.mjs down|up [BYTES] (got ${mode})`);
const BYTES = Number(bytesArg ?? 3_000_000_000);
if (!Number.isInteger(BYTES) || BYTES <= 0 || BYTES > 100e9) throw new Error(`BYTES: a whole number of bytes up to 100e9 (got ${bytesArg})`);
const paf = await import(join(ROOT, process.env.DIST ?? "dist", "index.js"));

const ns = `paf-trace${process.pid}`;
const sh = (cmd, args) => execFileSync(cmd, args, { encoding: "utf8" });
sh("ip", ["netns", "add", ns]);
try {
  sh("ip", ["-n", ns, "link", "set", "lo", "up"]);
  if (process.env.CC) sh("ip", ["netns", "exec", ns, "sysctl", "-qw", `net.ipv4.tcp_congestion_control=${process.env.CC}`]);
  // TSQ=BYTES: the namespace's tcp_limit_output_bytes (how much of one socket's data may wait in device queues: in a TAP's, until paf reads it).
  if (process.env.TSQ) sh("ip", ["netns", "exec", ns, "sysctl", "-qw", `net.ipv4.tcp_limit_output_bytes=${process.env.TSQ}`]);
  // BATCH=N: frames read per native call (TapNetifOptions.batch; one ACK per batch at most).
  const netif = paf.TapNetif.open("paftrace", { netns: `/var/run/netns/${ns}`, up: true, offload: true, ...(process.env.BATCH ? { batch: Number(process.env.BATCH) } : {}) });
  const stack = paf.Stack.create({ netif, ipv4: { address: "198.18.0.2/24" } });
  sh("ip", ["-n", ns, "addr", "add", "198.18.0.1/24", "dev", "paftrace"]);
  // QDISC=fq|noqueue|...: the TAP's root qdisc in the namespace (what paces a BBR sender: fq, or TCP's own timers).
  if (process.env.QDISC) sh("tc", ["-n", ns, "qdisc", "replace", "dev", "paftrace", "root", ...process.env.QDISC.split(" ")]);
  if (process.env.QDISC_SHOW) console.log(sh("tc", ["-n", ns, "qdisc", "show", "dev", "paftrace"]).trim());
  let tcb;
  stack.tcp.listen({ port: mode === "down" ? 80 : 9 }, (flow) => {
    tcb = flow.tcb;
    flow.on("error", () => {});
    if (mode === "up") return void flow.resume().on("end", () => flow.end());
    flow.once("data", () => {
      flow.write(`HTTP/1.1 200 OK\r\ncontent-length: ${BYTES}\r\nconnection: close\r\n\r\n`);
      writeBytes(flow, BYTES, Buffer.alloc(256 * 1024));
    });
    flow.resume();
  });
  const samples = [];
  const t0 = performance.now();
  const iv = setInterval(() => {
    const t = tcb;
    if (!t) return;
    samples.push([Math.round(performance.now() - t0), Math.round(t.cc.cwnd), (t.sndMax - t.sndUna) >>> 0, t.sndWnd, t.sndBuf, t.rcvBuf, t.unread, t.rtt.srtt.toFixed(2)]);
  }, 2);
  await new Promise((r) => setTimeout(r, 300));
  execFileSync("ip", ["netns", "exec", ns, "nstat", "-n"]);
  const cpu0 = process.cpuUsage();
  const faults0 = process.resourceUsage().minorPageFault;
  const client =
    mode === "down"
      ? ["curl", "-sS", "-o", "/dev/null", "--max-time", "120", "-w", "download %{speed_download} B/s %{size_download} B\\n", "http://198.18.0.2/"]
      : [udpbench(), "tcpsend", "198.18.0.2", "9", String(BYTES)];
  const out = await new Promise((resolve, reject) => {
    const c = spawn("ip", ["netns", "exec", ns, ...client], { stdio: ["ignore", "pipe", "inherit"] });
    let o = "";
    c.stdout.on("data", (d) => (o += d));
    c.on("close", (code) => (code === 0 ? resolve(o) : reject(new Error(`${client[0]} exited ${code}`))));
  });
  clearInterval(iv);
  const cpu = process.cpuUsage(cpu0);
  console.log(out.trim());
  console.log(`server CPU: user ${(cpu.user / 1e6).toFixed(2)} s, system ${(cpu.system / 1e6).toFixed(2)} s`);
  // First touches of memory: 12 us each on this VM, so a heap that grows shows here.
  console.log(`server minor page faults: ${process.resourceUsage().minorPageFault - faults0}`);
  console.log("TAP transmit buffers:", JSON.stringify(netif.txBufferStats()));
  console.log("tcp:", JSON.stringify(stack.stats().tcp));
  console.log(
    sh("ip", ["netns", "exec", ns, "nstat"])
      .split("\n")
      .filter((l) => /Tcp|IpExt(In|Out)Octets/.test(l))
      .join("\n"),
  );
  console.log("ms cwnd inflight peer-window sndBuf rcvBuf unread srtt");
  const step = Math.max(1, Math.floor(samples.length / 40));
  for (let i = 0; i < samples.length; i += step) console.log(samples[i].join(" "));
  await stack.close();
} finally {
  try {
    const pids = sh("ip", ["netns", "pids", ns]).trim();
    if (pids) sh("kill", ["-9", ...pids.split(/\s+/)]);
  } catch {}
  sh("ip", ["netns", "del", ns]);
}
process.exit(0);
