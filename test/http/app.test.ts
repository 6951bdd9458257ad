// The demo application over the userspace stack: curl (HTTP/1.1 and h2c) from the kernel side
// with 20 MB bodies checked by SHA-256, and Node's own http client over a second in-process stack.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import http from "node:http";
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
      const up = await sh("bash", ["-c", `head -c 20000000 /dev/urandom > /tmp/paf-up-$$ && sha256sum < /tmp/paf-up-$$ | cut -d' ' -f1 && ip netns exec ${ns.name} curl -sS --max-time 60 ${proto} --data-binary @/tmp/paf-up-$$ http://198.18.0.2/sha256; rm -f /tmp/paf-up-$$`], 70_000);
      const [want, got] = up.stdout.trim().split("\n");
      expect(got).toBe(want);
    });
  }
});
