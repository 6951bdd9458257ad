// WebSocket (RFC 6455) over two in-process stacks, with the `ws` package on both ends: the server
// attached to httpService / httpsService's upgrade hook, the client's connection coming from the
// client side's context through PafAgent / PafHttpsAgent. Also: an upgraded connection outlives
// the head timeout, and `Upgrade: h2c` (curl --http2) is still served over HTTP/1.1 with a hook.
import { afterAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { VirtualSwitch } from "../../stack/netif/vswitch.js";
import { Stack } from "../../stack/stack.js";
import { serve } from "../../http/serve.js";
import { stackListener } from "../../http/listener.js";
import { httpService, httpsService } from "../../http/services.js";
import { demoApp, demoWebSocket } from "../../http/app.js";
import { selfSigned } from "../../tls/selfsigned.js";
import { Ctx, K, PafAgent, PafHttpsAgent } from "../../http/client/index.js";
import { next } from "../helpers/ws.js";

const cert = await selfSigned(["198.18.0.2"]);

describe("WebSocket with ws over two in-process stacks", () => {
  const sw = new VirtualSwitch();
  const server = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" } });
  const clientStack = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.1/24" } });
  const upgrade = demoWebSocket({ maxPayload: 1024 * 1024 });
  // A short head timeout: an upgraded connection must not be cut by it.
  const web = serve(httpService(demoApp(), { log: () => {}, upgrade, headersTimeoutMs: 300 }), stackListener(server, { port: 80 }));
  const sec = serve(httpsService(demoApp(), { key: cert.key, cert: cert.cert, log: () => {}, upgrade }), stackListener(server, { port: 443 }));
  const ctx = Ctx.empty.with(K.stack, clientStack);
  const agents = { ws: new PafAgent({ ctx }), wss: new PafHttpsAgent({ ctx, ca: cert.cert }) };

  afterAll(async () => {
    await web.stop(200);
    await sec.stop(200);
    await Promise.all([server.close(), clientStack.close()]);
  });

  for (const scheme of ["ws", "wss"] as const) {
    it(`${scheme}://: text and binary echo, ping/pong, a 4001 close with its reason`, async () => {
      const ws = new WebSocket(`${scheme}://198.18.0.2/ws`, { agent: agents[scheme] });
      await next(ws, "open");
      ws.send("hello over paf");
      const [text, textIsBinary] = await next<[Buffer, boolean]>(ws, "message");
      expect([text.toString(), textIsBinary]).toEqual(["hello over paf", false]);
      ws.send(Buffer.from([0, 1, 2, 255]));
      const [bin, binIsBinary] = await next<[Buffer, boolean]>(ws, "message");
      expect([[...bin], binIsBinary]).toEqual([[0, 1, 2, 255], true]);
      ws.ping(Buffer.from("paf-ping"));
      const [pong] = await next<[Buffer]>(ws, "pong");
      expect(pong.toString()).toBe("paf-ping");
      ws.close(4001, "bye");
      const [code, reason] = await next<[number, Buffer]>(ws, "close");
      expect([code, reason.toString()]).toEqual([4001, "bye"]);
    });
  }

  it("an upgraded connection outlives headersTimeoutMs (the head timer writes no 408 into it)", async () => {
    const ws = new WebSocket("ws://198.18.0.2/ws", { agent: agents.ws });
    await next(ws, "open");
    await new Promise((r) => setTimeout(r, 800)); // well past the 300 ms head timeout
    ws.send("still here");
    const [m] = await next<[Buffer]>(ws, "message");
    expect(m.toString()).toBe("still here");
    ws.close(1000);
    expect((await next<[number]>(ws, "close"))[0]).toBe(1000);
  });

  it("a message over maxPayload closes with 1009 (RFC 6455 §7.4.1)", async () => {
    const ws = new WebSocket("ws://198.18.0.2/ws", { agent: agents.ws });
    await next(ws, "open");
    ws.send(Buffer.alloc(1024 * 1024 + 1));
    expect((await next<[number]>(ws, "close"))[0]).toBe(1009);
  });

  it("an upgrade to another path is refused with 400", async () => {
    const ws = new WebSocket("ws://198.18.0.2/elsewhere", { agent: agents.ws });
    const err = await next(ws, "open").catch((e: Error) => e);
    expect(String(err)).toMatch(/Unexpected server response: 400/);
  });

  it("Upgrade: h2c with a hook attached is answered over HTTP/1.1, body and pipelined request included", async () => {
    const flow = await clientStack.tcp.connect({ host: "198.18.0.2", port: 80 });
    const chunks: Buffer[] = [];
    flow.on("data", (d: Buffer) => chunks.push(d));
    const ended = new Promise((r) => flow.once("end", r));
    flow.write(
      "POST /sha256 HTTP/1.1\r\nHost: 198.18.0.2\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Length: 5\r\n\r\nhello" +
        "GET / HTTP/1.1\r\nHost: 198.18.0.2\r\nConnection: close\r\n\r\n",
    );
    await ended;
    flow.end();
    const text = Buffer.concat(chunks).toString();
    expect(text.match(/^HTTP\/1\.1 \d+/gm)).toEqual(["HTTP/1.1 200", "HTTP/1.1 200"]);
    expect(text).toContain("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"); // sha256("hello")
    expect(text).toMatch(/Hello from paf: .* speaking HTTP\/1\.1/);
  });
});
