// Node's own TCP (kernel sockets) as the reference for what paf allocates per MB of bulk TCP:
// run in a namespace, it receives or sends one transfer and prints its JSON line.
//
//   node node-tcp.mjs sink ADDR PORT              accepts one connection, discards it: {bytes, heap}
//   node node-tcp.mjs send HOST PORT BYTES        writes BYTES in 64 KiB blocks: {bytes, heap}
//
// heap: JS heap bytes allocated over the transfer (alloc.mjs). Bounded: exits after 60 s.
import net from "node:net";
import { allocMeter } from "./alloc.mjs";
import { writeBytes } from "./lib.mjs";

const [mode, a, b, c] = process.argv.slice(2);
setTimeout(() => {
  console.error("node-tcp: no transfer within 60 s");
  process.exit(1);
}, 60_000).unref();
if (mode === "sink") {
  const server = net.createServer((s) => {
    const m = allocMeter();
    let bytes = 0;
    s.on("data", (d) => (bytes += d.length));
    s.on("end", () => {
      const { heap } = m.stop();
      console.log(JSON.stringify({ bytes, heap }));
      s.end();
      server.close();
    });
  });
  server.listen(Number(b), a, () => console.log("ready"));
} else if (mode === "send") {
  const total = Number(c);
  const s = net.connect(Number(b), a, () => {
    const m = allocMeter();
    s.on("close", () => {
      const { heap } = m.stop();
      console.log(JSON.stringify({ bytes: total, heap }));
    });
    s.resume();
    writeBytes(s, total, Buffer.alloc(1 << 16, 0x61));
  });
} else throw new Error(`usage: node-tcp.mjs sink ADDR PORT | send HOST PORT BYTES (got ${mode})`);
