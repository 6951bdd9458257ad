// RFC 9110 §9.1: a general-purpose server supports HEAD wherever it supports GET; §9.3.2: the
// answer carries GET's header fields and no content; §15.5.6: a 405 lists the allowed methods in
// Allow. Checked on every route of the demo app and on the static file server, over HTTP/1.1 and
// HTTP/2 (node:http / node:http2 clients over paf flows between two in-process stacks).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import http from "node:http";
import http2 from "node:http2";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VirtualSwitch } from "../../stack/netif/vswitch.js";
import { Stack } from "../../stack/stack.js";
import { serve, type ServeHandle } from "../../http/serve.js";
import { stackListener } from "../../http/listener.js";
import { httpService } from "../../http/services.js";
import { demoApp } from "../../http/app.js";
import { staticFiles } from "../../http/static.js";

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** HTTP/2 only: the stream's RST_STREAM code (0 when it ended cleanly). */
  rstCode?: number;
}

describe("HEAD and 405 on the demo app and static files, HTTP/1.1 and HTTP/2", () => {
  let server: Stack;
  let client: Stack;
  let h: ServeHandle;
  let agent: http.Agent;
  let session: http2.ClientHttp2Session;
  const dir = mkdtempSync(join(tmpdir(), "paf-methods-"));
  writeFileSync(join(dir, "page.html"), "<p>static</p>\n");

  beforeAll(() => {
    const sw = new VirtualSwitch();
    server = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" } });
    client = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.1/24" } });
    h = serve(httpService(staticFiles(dir, demoApp({ stats: () => ({ ok: 1 }) })), { log: () => {} }), stackListener(server, { port: 80 }));
    agent = new http.Agent({ keepAlive: true });
    (agent as unknown as { createConnection: unknown }).createConnection = () => client.tcp.connectFlow({ host: "198.18.0.2", port: 80 });
    session = http2.connect("http://198.18.0.2", { createConnection: () => client.tcp.connectFlow({ host: "198.18.0.2", port: 80 }) });
  });
  afterAll(async () => {
    session?.close();
    agent?.destroy();
    await h?.stop(500);
    await server?.close();
    await client?.close();
  });

  const h1 = (method: string, path: string) =>
    new Promise<Answer>((resolve, reject) => {
      const r = http.request({ host: "198.18.0.2", port: 80, method, path, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (d) => chunks.push(d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      r.on("error", reject);
      r.end();
    });
  const h2 = (method: string, path: string) =>
    new Promise<Answer>((resolve, reject) => {
      const s = session.request({ ":method": method, ":path": path }, { endStream: true });
      const chunks: Buffer[] = [];
      let status = 0;
      let headers: Answer["headers"] = {};
      s.on("response", (hd) => {
        status = Number(hd[":status"]);
        headers = hd;
      });
      s.on("data", (d: Buffer) => chunks.push(d));
      s.on("error", reject);
      s.on("close", () => resolve({ status, headers, body: Buffer.concat(chunks), rstCode: s.rstCode }));
    });

  for (const [proto, send] of [
    ["HTTP/1.1", h1],
    ["HTTP/2", h2],
  ] as const) {
    for (const path of ["/", "/bytes/1000", "/bytes/0", "/stats", "/page.html", "/nope"]) {
      it(`${proto} HEAD ${path}: GET's status and header fields, no content`, async () => {
        const get = await send("GET", path);
        const head = await send("HEAD", path);
        expect(head.status).toBe(get.status);
        expect(head.headers["content-type"]).toBe(get.headers["content-type"]);
        expect(head.headers["content-length"]).toBe(String(get.body.length));
        expect(head.body.length).toBe(0);
        if (proto === "HTTP/2") expect([get.rstCode, head.rstCode]).toEqual([0, 0]);
      });
    }
    for (const [method, path, allow] of [
      ["POST", "/", "GET, HEAD"],
      ["DELETE", "/bytes/10", "GET, HEAD"],
      ["POST", "/stats", "GET, HEAD"],
      ["GET", "/sha256", "POST, PUT"],
      ["HEAD", "/echo", "POST, PUT"],
      ["PUT", "/page.html", "GET, HEAD"],
    ] as const) {
      it(`${proto} ${method} ${path}: 405 with Allow: ${allow}`, async () => {
        const r = await send(method, path);
        expect(r.status).toBe(405);
        expect(r.headers["allow"]).toBe(allow);
      });
    }
  }
});
