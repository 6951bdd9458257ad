// make demo without root: two userspace stacks on the in-process virtual switch, no kernel.
import { Stack } from "../dist/stack/stack.js";
import { VirtualSwitch } from "../dist/stack/netif/vswitch.js";

const sw = new VirtualSwitch();
const server = Stack.create({ netif: sw.port("server"), ipv4: { address: "198.18.0.2/24" }, ipv6: { address: "2001:db8::2/64" } });
const client = Stack.create({ netif: sw.port("client"), ipv4: { address: "198.18.0.1/24" }, ipv6: { address: "2001:db8::1/64" } });
await Promise.all([server.ready(), client.ready()]);
console.log(`== server stack: ${server.addresses().join(" ")}`);
console.log(`== client stack: ${client.addresses().join(" ")}`);
for (const t of ["udp4", "udp6"]) {
  const s = server.udp.createSocket(t);
  s.on("message", (m, r) => s.send(m, r.port, r.address));
  s.bind(7);
}
for (const [host, size] of [["198.18.0.2", 56], ["2001:db8::2", 56], ["198.18.0.2", 4000]]) {
  const r = await client.ping(host, { size });
  console.log(`ping ${host} size ${size}: reply from ${r.from} in ${r.rtt.toFixed(2)} ms`);
}
for (const [t, host] of [["udp4", "198.18.0.2"], ["udp6", "2001:db8::2"]]) {
  const c = client.udp.createSocket(t);
  const got = new Promise((res) => c.once("message", (m) => res(m.toString())));
  c.send(`hello paf over ${t}`, 7, host);
  console.log(`udp echo ${host}:7 -> ${await got}`);
  c.close();
}
// HTTP/1.1 and h2c from the demo app on the server stack, fetched by Node's own clients whose
// connections are paf flows on the client stack.
const { serve } = await import("../dist/http/serve.js");
const { stackListener } = await import("../dist/http/listener.js");
const { httpService } = await import("../dist/http/services.js");
const { demoApp } = await import("../dist/http/app.js");
const http = await import("node:http");
const http2 = await import("node:http2");
const h = serve(httpService(demoApp({ stats: () => server.stats() })), stackListener(server, { port: 80 }));
const agent = new http.Agent();
agent.createConnection = () => client.tcp.connectFlow({ host: "198.18.0.2", port: 80 });
const body1 = await new Promise((res, rej) => http.get({ host: "198.18.0.2", path: "/", agent }, (r) => { let b = ""; r.on("data", (d) => (b += d)); r.on("end", () => res(b)); }).on("error", rej));
console.log(`http://198.18.0.2/ (HTTP/1.1) -> ${body1.trim()}`);
const session = http2.connect("http://198.18.0.2", { createConnection: () => client.tcp.connectFlow({ host: "198.18.0.2", port: 80 }) });
const body2 = await new Promise((res, rej) => { const s = session.request({ ":path": "/" }); let b = ""; s.on("data", (d) => (b += d)); s.on("end", () => res(b)); s.on("error", rej); s.end(); });
console.log(`http://198.18.0.2/ (h2c) -> ${body2.trim()}`);
session.close();
agent.destroy();
await h.stop(500);
await client.close();
await server.close();
console.log("== demo done (in-process; run as root for the TAP + HTTPS version)");
