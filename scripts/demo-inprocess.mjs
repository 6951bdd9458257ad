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
for (const [host, size] of [
  ["198.18.0.2", 56],
  ["2001:db8::2", 56],
  ["198.18.0.2", 4000],
]) {
  const r = await client.ping(host, { size });
  console.log(`ping ${host} size ${size}: reply from ${r.from} in ${r.rtt.toFixed(2)} ms`);
}
for (const [t, host] of [
  ["udp4", "198.18.0.2"],
  ["udp6", "2001:db8::2"],
]) {
  const c = client.udp.createSocket(t);
  const got = new Promise((res) => c.once("message", (m) => res(m.toString())));
  c.send(`hello paf over ${t}`, 7, host);
  console.log(`udp echo ${host}:7 -> ${await got}`);
  c.close();
}
// HTTP/1.1, h2c and HTTPS (ALPN h2) from the demo app on the server stack, fetched by paf's own
// client whose connections resolve (from its context) to TCP flows on the client stack.
const { serve } = await import("../dist/http/serve.js");
const { stackListener } = await import("../dist/http/listener.js");
const { httpService, httpsService } = await import("../dist/http/services.js");
const { demoApp } = await import("../dist/http/app.js");
const { selfSigned } = await import("../dist/tls/selfsigned.js");
const { Client, Ctx, K } = await import("../dist/http/client/index.js");
const app = demoApp({ stats: () => server.stats() });
const cert = await selfSigned(["paf.test", "198.18.0.2", "2001:db8::2"]);
console.log(`== self-signed certificate (in memory) sha256 ${cert.fingerprint256}`);
const web = serve(httpService(app), stackListener(server, { port: 80 }));
const tls = serve(httpsService(app, { key: cert.key, cert: cert.cert }), stackListener(server, { port: 443 }));
const c = new Client({ ctx: Ctx.empty.with(K.stack, client).with(K.tls, { ca: cert.cert }) });
for (const [url, opts] of [
  ["http://198.18.0.2/", {}],
  ["http://198.18.0.2/", { http2: "prior-knowledge" }],
  ["https://198.18.0.2/", {}],
  ["https://[2001:db8::2]/", {}],
  ["https://198.18.0.2/bytes/10000000", {}],
]) {
  const t0 = performance.now();
  const r = await c.request(url, opts);
  const body = await r.bytes();
  const tlsInfo = r.connection?.tls ? `, ${r.connection.tls.version} ALPN ${r.connection.tls.alpn}` : "";
  console.log(`${url} -> ${r.protocol} ${r.status}${tlsInfo}, ${body.length} bytes in ${(performance.now() - t0).toFixed(1)} ms${body.length < 200 ? `: ${body.toString().trim()}` : ""}`);
}
c.close();
await web.stop(500);
await tls.stop(500);
await client.close();
await server.close();
console.log("== demo done (in-process; run as root for the TAP version, with curl from the kernel)");
