// The HTTP services add one listener per event to each request and response, and one 'request'
// listener to their servers. A second listener for the same event makes Node allocate a
// [first, second] array per request; once V8 has learnt to allocate that array in the old
// generation (it does, from the long-lived emitters of many connections, at a moment that
// differs run to run), each array holds its request's young closures through the next scavenges:
// 1000-tenant runs promoted 0.15-2.8 MB per scavenge and spent 3-15 ms in each, against 1 ms
// (README "Tenants"). Counted here where the arrays would be made: on the response when it
// finishes, on the request after node:http's own end-of-response bookkeeping.
import { afterAll, describe, expect, it } from "vitest";
import { VirtualSwitch } from "../../stack/netif/vswitch.js";
import { Stack } from "../../stack/stack.js";
import { serve } from "../../http/serve.js";
import { stackListener } from "../../http/listener.js";
import { type Handler, httpService, httpsService } from "../../http/services.js";
import { selfSigned } from "../../tls/selfsigned.js";

interface Counted {
  resClose: number;
  reqEnd: number;
  reqClose: number;
}

describe("HTTP services: one listener per event per request", () => {
  const sw = new VirtualSwitch();
  const server = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" } });
  const client = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.1/24" } });
  const counted: Counted[] = [];
  const app: Handler = (req, res) => {
    res.on("finish", () => {
      // After 'finish' node:http runs its own bookkeeping (resOnFinish, in the same tick): a
      // request not yet read to its end gets node's 'end' listener then. Count after it.
      setImmediate(() => counted.push({ resClose: res.listenerCount("close"), reqEnd: req.listenerCount("end"), reqClose: req.listenerCount("close") }));
    });
    res.end("ok\n");
  };
  const service = httpService(app, { log: () => {} });
  const running = serve(service, stackListener(server, { port: 80 }));

  afterAll(async () => {
    await running.stop(200);
    await Promise.all([server.close(), client.close()]);
  });

  it("keep-alive GETs and a POST: the response has one 'close' listener, the request at most one per event", async () => {
    const sock = client.net.connect(80, "198.18.0.2");
    await new Promise((r) => sock.once("connect", r));
    let got = "";
    sock.on("data", (d: Buffer) => (got += d.toString("latin1")));
    const answers = () => got.split("HTTP/1.1 200").length - 1;
    for (let i = 1; i <= 3; i++) {
      sock.write("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
      while (answers() < i) await new Promise((r) => setTimeout(r, 2));
    }
    sock.write("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    while (answers() < 4 || counted.length < 4) await new Promise((r) => setTimeout(r, 2));
    sock.destroy();
    expect(counted).toHaveLength(4);
    for (const c of counted) {
      expect(c.resClose).toBe(1);
      expect(c.reqEnd).toBeLessThanOrEqual(1);
      expect(c.reqClose).toBeLessThanOrEqual(1);
    }
    // One 'request' listener: the guarded handler does the deadline bookkeeping itself.
    expect(service.h1.listenerCount("request")).toBe(1);
  });

  it("the HTTPS service (HTTP/2 with HTTP/1.1 allowed) has one 'request' listener too", async () => {
    const cert = await selfSigned(["198.18.0.2"]);
    const tlsService = httpsService(app, { key: cert.key, cert: cert.cert, log: () => {} });
    expect(tlsService.server.listenerCount("request")).toBe(1);
  });
});
