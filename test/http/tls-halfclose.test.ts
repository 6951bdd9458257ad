// A peer that ends its side of a TLS connection (close_notify, then FIN) after its requests gets a
// clean close from the HTTPS service: the server's TLS socket answers with its own close_notify
// and FIN, and no error. A flow under TLS must therefore not end its writable side by itself when
// the peer's FIN arrives (node:stream's default for a Duplex without allowHalfOpen): TLS owns the
// flow and writes its close_notify after the EOF; with the flow already ended that write failed
// ("write after end"), which node:http2 took as a socket error and destroyed the session with it,
// where a kernel socket under TLS (no JS stream in between) closes cleanly.
import { afterAll, describe, expect, it } from "vitest";
import tls from "node:tls";
import http2 from "node:http2";
import { VirtualSwitch } from "../../stack/netif/vswitch.js";
import { Stack } from "../../stack/stack.js";
import { serve } from "../../http/serve.js";
import { stackListener } from "../../http/listener.js";
import { httpService, httpsService } from "../../http/services.js";
import { demoApp } from "../../http/app.js";
import { selfSigned } from "../../tls/selfsigned.js";

const cert = await selfSigned(["198.18.0.2"]);

describe("TLS over flows: the peer ends first", () => {
  const sw = new VirtualSwitch();
  const server = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" } });
  const client = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.1/24" } });
  const service = httpsService(demoApp(), { key: cert.key, cert: cert.cert, log: () => {} });
  const errors: string[] = [];
  service.server.on("secureConnection", (s: tls.TLSSocket) => s.on("error", (e: Error) => errors.push(e.message)));
  const running = serve(service, stackListener(server, { port: 443 }));
  const plain = serve(httpService(demoApp(), { log: () => {} }), stackListener(server, { port: 80 }));

  afterAll(async () => {
    await running.stop(200);
    await plain.stop(200);
    await Promise.all([server.close(), client.close()]);
  });

  /** TLS from the client stack, ALPN `proto`; the TLS socket and the flow under it. */
  function connect(proto: string): Promise<{ s: tls.TLSSocket; flow: ReturnType<typeof client.net.connect> }> {
    return new Promise((resolve, reject) => {
      const flow = client.net.connect(443, "198.18.0.2");
      const s = tls.connect({ socket: flow, ca: cert.cert, servername: "198.18.0.2", ALPNProtocols: [proto] }, () => resolve({ s, flow }));
      s.once("error", reject);
    });
  }

  it("HTTP/1.1: request, then the client ends; the server ends too, without an error", async () => {
    const { s } = await connect("http/1.1");
    let got = "";
    s.on("data", (d: Buffer) => (got += d));
    s.write("GET / HTTP/1.1\r\nHost: 198.18.0.2\r\n\r\n");
    while (!got.includes("paf")) await new Promise((r) => setTimeout(r, 5));
    const ended = new Promise((r) => s.once("end", r));
    s.end();
    await ended;
    await new Promise((r) => s.once("close", r));
    await new Promise((r) => setTimeout(r, 100));
    expect(errors).toEqual([]);
  });

  it("HTTP/2: requests, then the client's FIN without close_notify (a browser dropping the connection); the server's session ends without an error", async () => {
    for (let i = 0; i < 20; i++) {
      const { s, flow } = await connect("h2");
      const session = http2.connect("https://198.18.0.2", { createConnection: () => s });
      for (let j = 0; j < 3; j++) {
        const req = session.request({ ":path": "/" });
        req.resume();
        await new Promise((r) => req.once("end", r));
      }
      session.on("error", () => {});
      s.on("error", () => {});
      // FIN from below TLS, as a client does that just closes its socket.
      flow.end();
      await new Promise((r) => (flow.destroyed ? r(undefined) : flow.once("close", r)));
      session.destroy();
    }
    await new Promise((r) => setTimeout(r, 100));
    expect(errors).toEqual([]);
  });

  it("h2c: requests, then the client's FIN; the server ends its side too (the connection closes) and Node does not assert", async () => {
    // node:http2 wraps a JS stream in a JSStreamSocket that shuts it down itself at EOF; a flow
    // that ended itself at the FIN too left that shutdown pending while the session still wrote,
    // and Node threw ERR_INTERNAL_ASSERTION (uncaught) in about 2 runs of 3 under load.
    for (let i = 0; i < 20; i++) {
      const flow = client.net.connect(80, "198.18.0.2");
      const session = http2.connect("http://198.18.0.2", { createConnection: () => flow });
      session.on("error", () => {});
      for (let j = 0; j < 3; j++) {
        const req = session.request({ ":path": "/" });
        req.resume();
        await new Promise((r) => req.once("end", r));
      }
      const closed = new Promise((r) => (flow.destroyed ? r(undefined) : flow.once("close", r)));
      flow.end();
      await closed;
      session.destroy();
    }
    // Every server-side connection finished its close (none left established or half-closed).
    const end = Date.now() + 3000;
    const open = () => server.tcp.layer.connections().filter((t) => t.state !== "TIME-WAIT" && t.state !== "CLOSED");
    while (open().length > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(open().map((t) => t.state)).toEqual([]);
  });
});
