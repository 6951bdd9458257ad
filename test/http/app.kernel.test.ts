// The demo application over the userspace stack: curl (HTTP/1.1 and h2c) from the kernel side
// with 20 MB bodies checked by SHA-256, and Node's own http client over a second in-process stack.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import http from "node:http";
import http2 from "node:http2";
import { createHash } from "node:crypto";
import { Netns, privileged, sh } from "../helpers/netns.js";
import { TapNetif } from "../../stack/netif/tap.js";
import { VirtualSwitch } from "../../stack/netif/vswitch.js";
import { Stack } from "../../stack/stack.js";
import { serve } from "../../http/serve.js";
import { stackListener } from "../../http/listener.js";
import { httpService } from "../../http/services.js";
import { demoApp } from "../../http/app.js";
import { expectedPatternSha256 } from "../helpers/pattern.js";

describe("demo app between two in-process stacks (no root): node:http over paf flows", () => {
  it("GET /, /bytes/N, POST /sha256 and /echo, 404 and 405", async () => {
    const sw = new VirtualSwitch();
    const server = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" } });
    const client = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.1/24" } });
    const h = serve(httpService(demoApp({ stats: () => server.stats() })), stackListener(server, { port: 80 }));
    const agent = new http.Agent({ keepAlive: true });
    (agent as unknown as { createConnection: unknown }).createConnection = () => client.tcp.connectFlow({ host: "198.18.0.2", port: 80 });
    const req = (method: string, path: string, body?: Buffer) =>
      new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
        const r = http.request({ host: "198.18.0.2", port: 80, method, path, agent }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (d) => chunks.push(d));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        });
        r.on("error", reject);
        r.end(body);
      });
    expect((await req("GET", "/")).body.toString()).toMatch(/^Hello from paf/);
    const bytes = await req("GET", "/bytes/1000000");
    expect(createHash("sha256").update(bytes.body).digest("hex")).toBe(expectedPatternSha256(1_000_000));
    const body = Buffer.alloc(3_000_000, 9);
    expect((await req("POST", "/sha256", body)).body.toString().trim()).toBe(createHash("sha256").update(body).digest("hex"));
    expect((await req("POST", "/echo", body)).body.equals(body)).toBe(true);
    expect((await req("GET", "/nope")).status).toBe(404);
    expect((await req("POST", "/")).status).toBe(405);
    const stats = JSON.parse((await req("GET", "/stats")).body.toString());
    expect(stats.tcp.established).toBeGreaterThan(0);
    agent.destroy();
    await h.stop(500);
    await server.close();
    await client.close();
  });
});

const run = privileged();

describe.skipIf(!run)("demo app over TAP with curl", () => {
  let ns: Netns;
  let stack: Stack;
  const TAP = "pafa" + (process.pid % 10000);
  beforeAll(async () => {
    ns = await Netns.create("app");
    stack = Stack.create({ netif: TapNetif.open(TAP, { netns: ns.path, up: true }), ipv4: { address: "198.18.0.2/24" } });
    await ns.kernelSide(TAP, "198.18.0.1/24", undefined);
    serve(httpService(demoApp()), stackListener(stack, { port: 80 }));
  });
  afterAll(async () => {
    try {
      await stack?.close();
    } finally {
      await ns?.destroy();
    }
  });

  for (const proto of ["--http1.1", "--http2-prior-knowledge"]) {
    it(`20 MB download and 20 MB upload checked by SHA-256 (${proto})`, async () => {
      const down = await ns.exec("bash", ["-c", `curl -sS --max-time 60 ${proto} http://198.18.0.2/bytes/20000000 | sha256sum`], 70_000);
      expect(down.stdout.split(" ")[0]).toBe(expectedPatternSha256(20_000_000));
      const up = await sh(
        "bash",
        [
          "-c",
          `head -c 20000000 /dev/urandom > /tmp/paf-up-$$ && sha256sum < /tmp/paf-up-$$ | cut -d' ' -f1 && ip netns exec ${ns.name} curl -sS --max-time 60 ${proto} --data-binary @/tmp/paf-up-$$ http://198.18.0.2/sha256; rm -f /tmp/paf-up-$$`,
        ],
        70_000,
      );
      const [want, got] = up.stdout.trim().split("\n");
      expect(got).toBe(want);
    });
  }
});

describe("the raw HTTP/2 stream API beside the compat handler (no root)", () => {
  it("a handler answers through req.stream (respond, stream id, session settings) while the same app serves HTTP/1.1; stop() closes idle keep-alive connections with FIN", async () => {
    const sw = new VirtualSwitch();
    const server = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" } });
    const client = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.1/24" } });
    const demo = demoApp();
    const app: Parameters<typeof httpService>[0] = (req, res) => {
      if (req.url === "/raw" && "stream" in req) {
        // The raw Http2Stream under the compat request: respond with our own headers, name the
        // stream id and the session's peer settings (nothing the compat API exposes).
        const st = req.stream;
        st.respond({ ":status": 200, "x-raw": "yes", "x-stream-id": String(st.id), "x-peer-window": String(st.session?.remoteSettings.initialWindowSize) });
        st.end("raw stream");
        return;
      }
      demo(req, res);
    };
    const h = serve(httpService(app, { log: () => {} }), stackListener(server, { port: 80 }));
    const session = http2.connect("http://198.18.0.2", { createConnection: () => client.tcp.connectFlow({ host: "198.18.0.2", port: 80 }) });
    const got = await new Promise<{ headers: http2.IncomingHttpHeaders; body: string }>((resolve, reject) => {
      const st = session.request({ ":path": "/raw" });
      let headers: http2.IncomingHttpHeaders = {};
      let body = "";
      st.on("response", (hd) => (headers = hd));
      st.on("end", () => resolve({ headers, body }));
      st.on("data", (d) => (body += d));
      st.on("error", reject);
    });
    expect(got.headers["x-raw"]).toBe("yes");
    expect(got.body).toBe("raw stream");
    expect(got.headers["x-stream-id"]).toBe("1");
    expect(got.headers["x-peer-window"]).toBe("65535");
    session.close();
    // An idle HTTP/1.1 keep-alive connection: stop() ends it with FIN (the client sees 'end', not a reset).
    const flow = await client.tcp.connect({ host: "198.18.0.2", port: 80 });
    flow.write("GET / HTTP/1.1\r\nHost: p\r\n\r\n");
    await new Promise((r) => flow.once("data", r));
    const ended = new Promise<string>((resolve) => {
      flow.on("end", () => resolve("end"));
      flow.on("error", (e: Error & { code?: string }) => resolve(e.code ?? "error"));
      flow.resume();
    });
    await h.stop(500);
    expect(await ended).toBe("end");
    flow.destroy();
    await server.close();
    await client.close();
  });
});

describe("stop() on kernel sockets (no root)", () => {
  it("does not wait for an idle h2 session or keep-alive connection to end by itself", async () => {
    const { hostListener } = await import("../../http/listener.js");
    const net = await import("node:net");
    const listener = await hostListener({ host: "127.0.0.1", port: 0 });
    const port = Number(listener.description.split(":").pop());
    const h = serve(httpService(demoApp(), { log: () => {} }), listener);
    // An h2c session that stays open, and an HTTP/1.1 keep-alive connection after one request.
    const session = http2.connect(`http://127.0.0.1:${port}`);
    await new Promise<void>((resolve, reject) =>
      session
        .request({ ":path": "/" })
        .on("response", () => resolve())
        .on("error", reject)
        .end(),
    );
    const idle = net.connect({ host: "127.0.0.1", port });
    idle.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    await new Promise((r) => idle.once("data", r));
    const t0 = Date.now();
    await h.stop(300);
    expect(Date.now() - t0).toBeLessThan(2000);
    await new Promise((r) => (idle.destroyed ? r(null) : idle.once("close", r)));
    session.destroy();
  });
});
