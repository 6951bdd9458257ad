// Connection setup: new TCP connections accepted per second. The kernel (udpbench tcpconnect,
// 64 handshakes in flight) connects, the server accepts and closes at once, the client closes
// after the server's FIN; paf's stack on a TAP next to Node's net.Server on kernel TCP over veth,
// the same accept-and-close application on both.
import { spawn } from "node:child_process";
import { Stack } from "../../dist/stack/stack.js";
import { TapNetif } from "../../dist/stack/netif/tap.js";
import { netns, vethPair, nsRun, sh, udpbench, sleep } from "./lib.mjs";

const SECS = 3;
const CONC = 64;

export async function benchConn() {
  const bin = udpbench();
  // paf on a TAP, accepting in this process.
  const ns = await netns("c");
  const tap = "pafbc";
  const stack = Stack.create({ netif: TapNetif.open(tap, { netns: `/var/run/netns/${ns}`, up: true, offload: true }), ipv4: { address: "198.18.0.2/24" } });
  stack.tcp.listen({ port: 80 }, (f) => f.on("error", () => {}).end());
  await sh("ip", ["-n", ns, "addr", "add", "198.18.0.1/24", "dev", tap]);
  await sleep(200);
  const p = await nsRun(ns, bin, ["tcpconnect", "198.18.0.2", "80", String(SECS), String(CONC)]);
  await stack.close();
  // Node's net.Server on the kernel's TCP, across a veth pair.
  const { A, B } = await vethPair("c");
  const server = spawn(
    "ip",
    ["netns", "exec", B, process.execPath, "-e", `require("node:net").createServer((s) => s.on("error", () => {}).end()).listen(80, "198.18.1.2", () => console.log("ready"))`],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  await new Promise((resolve, reject) => {
    server.stdout.once("data", resolve);
    server.once("exit", (code) => reject(new Error(`kernel-side server exited ${code}`)));
  });
  const k = await nsRun(A, bin, ["tcpconnect", "198.18.1.2", "80", String(SECS), String(CONC)]).finally(() => server.kill());
  return [{ name: `New TCP connections accepted/s (accept and close, ${CONC} handshakes in flight)`, paf: p.cps, kernel: k.cps }];
}
