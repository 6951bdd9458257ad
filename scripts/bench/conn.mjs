// Connection setup: new TCP connections accepted per second. The kernel (udpbench tcpconnect,
// 64 handshakes in flight) connects, the server accepts and closes at once, the client closes
// after the server's FIN; paf's stack on a TAP next to Node's net.Server on kernel TCP over veth,
// the same accept-and-close application on both.
import { spawn } from "node:child_process";
import { Stack } from "../../dist/stack/stack.js";
import { TapNetif } from "../../dist/stack/netif/tap.js";
import { V8_FLAGS, netns, vethPair, nsRun, sh, udpbench, sleep } from "./lib.mjs";

const SECS = 3;
const CONC = 64;

/**
 * paf on a TAP `tap` in a new namespace (tagged `tag`), accepting and closing at once on
 * 198.18.0.2:80 in this process, the kernel side 198.18.0.1: its namespace and stack.
 */
export async function pafAccepting(tag, tap) {
  const ns = await netns(tag);
  const stack = Stack.create({ netif: TapNetif.open(tap, { netns: `/var/run/netns/${ns}`, up: true, offload: true }), ipv4: { address: "198.18.0.2/24" } });
  stack.tcp.listen({ port: 80 }, (f) => f.on("error", () => {}).end());
  await sh("ip", ["-n", ns, "addr", "add", "198.18.0.1/24", "dev", tap]);
  await sleep(200);
  return { ns, stack };
}

/** `udpbench tcpconnect` from namespace `ns` to `host`:80 for `secs` with `conc` handshakes in flight. */
export function tcpconnect(ns, host, secs = SECS, conc = CONC) {
  return nsRun(ns, udpbench(), ["tcpconnect", host, "80", String(secs), String(conc)]);
}

export async function benchConn() {
  // paf on a TAP, accepting in this process.
  const { ns, stack } = await pafAccepting("c", "pafbc");
  const p = await tcpconnect(ns, "198.18.0.2");
  await stack.close();
  // Node's net.Server on the kernel's TCP, across a veth pair.
  const { A, B } = await vethPair("c");
  const server = spawn(
    "ip",
    ["netns", "exec", B, process.execPath, ...V8_FLAGS, "-e", `require("node:net").createServer((s) => s.on("error", () => {}).end()).listen(80, "198.18.1.2", () => console.log("ready"))`],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  await new Promise((resolve, reject) => {
    server.stdout.once("data", resolve);
    server.once("exit", (code) => reject(new Error(`kernel-side server exited ${code}`)));
  });
  const k = await tcpconnect(A, "198.18.1.2").finally(() => server.kill());
  return [{ name: `New TCP connections accepted/s (accept and close, ${CONC} handshakes in flight)`, paf: p.cps, kernel: k.cps }];
}
