// The client side over two in-process stacks (no root): context resolution and its errors, a
// user-defined protocol over an in-memory pipe, the request API (HTTP/1.1 pooling, h2c and h2 over
// TLS multiplexing, ALPN, redirects, timeouts, streamed bodies, error stages), happy eyeballs,
// Node's http.request / axios through the agents and undici's fetch through the dispatcher.
import { afterAll, describe, expect, it } from "vitest";
import http from "node:http";
import tls from "node:tls";
import { createHash } from "node:crypto";
import { Duplex, Readable } from "node:stream";
import axios from "axios";
import { fetch as undiciFetch } from "undici";
import { VirtualSwitch } from "../../../stack/netif/vswitch.js";
import { Stack } from "../../../stack/stack.js";
import { serve } from "../../../http/serve.js";
import { socketLike, stackListener } from "../../../http/listener.js";
import { httpService, httpsService, type Handler } from "../../../http/services.js";
import { demoApp } from "../../../http/app.js";
import { selfSigned } from "../../../tls/selfsigned.js";
import {
  Client,
  ClientError,
  Connector,
  Ctx,
  K,
  Key,
  PafAgent,
  PafHttpsAgent,
  defaultConnector,
  happyEyeballs,
  interleave,
  pafDispatcher,
  request,
  runHttp,
  type Protocol,
} from "../../../http/client/index.js";
import { expectedPatternSha256 } from "../../helpers/pattern.js";

/** The demo app plus routes for redirects and a stall. */
function testApp(): Handler {
  const demo = demoApp();
  return (req, res) => {
    const m = /^\/redirect\/(\d+)$/.exec(req.url ?? "");
    if (m) {
      const n = Number(m[1]);
      res.statusCode = 302;
      res.setHeader("location", n > 1 ? `/redirect/${n - 1}` : "/");
      return void res.end();
    }
    if (req.url === "/see-other" && req.method === "POST") {
      res.statusCode = 303;
      res.setHeader("location", "/");
      return void res.end();
    }
    if (req.url === "/stall") return; // never answers
    demo(req, res);
  };
}

/** Two ends of an in-memory byte pipe. */
function duplexPair(): [Duplex, Duplex] {
  let a: Duplex;
  let b: Duplex;
  const mk = (peer: () => Duplex) =>
    new Duplex({
      read() {},
      write(chunk, _enc, cb) {
        peer().push(chunk);
        cb();
      },
      final(cb) {
        peer().push(null);
        cb();
      },
    });
  a = mk(() => b);
  b = mk(() => a);
  return [a, b];
}

const cert = await selfSigned(["paf.test", "198.18.0.2"]);

describe("client side over two in-process stacks", () => {
  const sw = new VirtualSwitch();
  const server = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" }, ipv6: { address: "2001:db8::2/64", dad: false } });
  const clientStack = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.1/24" }, ipv6: { address: "2001:db8::1/64", dad: false } });
  const web = serve(httpService(testApp(), { log: () => {} }), stackListener(server, { port: 80 }));
  const sec = serve(httpsService(testApp(), { key: cert.key, cert: cert.cert, log: () => {} }), stackListener(server, { port: 443 }));
  const base = Ctx.empty.with(K.stack, clientStack).with(K.tls, { ca: cert.cert });

  afterAll(async () => {
    await web.stop(200);
    await sec.stop(200);
    await server.close();
    await clientStack.close();
  });

  it("contexts are immutable and typed; keys with the same name are distinct", () => {
    const k = new Key<number>("n");
    const k2 = new Key<number>("n");
    const a = Ctx.empty.with(k, 1);
    const b = a.with(k, 2).with(k2, 3);
    expect(a.get(k)).toBe(1);
    expect(b.get(k)).toBe(2);
    expect(b.get(k2)).toBe(3);
    expect(a.has(k2)).toBe(false);
    expect(b.without(k).has(k)).toBe(false);
    expect(() => a.need(k2)).toThrow(/no "n"/);
  });

  it("resolution: no usable protocol is a resolve error; every failure is listed in one connect error", async () => {
    const c = defaultConnector();
    const none = await c.open(Ctx.empty.with(K.port, 80)).catch((e) => e);
    expect(none).toBeInstanceOf(ClientError);
    expect(none.stage).toBe("resolve");
    expect(none.message).toMatch(/paf-tcp needs host\+port\+stack/);
    // Two candidates, both refused: the stack's TCP (nothing on port 81) and a Unix path that does not exist.
    const ctx = Ctx.empty.with(K.stack, clientStack).with(K.host, "198.18.0.2").with(K.port, 81).with(K.unix, "/nonexistent/paf.sock");
    const err = await c.open(ctx).catch((e) => e);
    expect(err.stage).toBe("connect");
    expect(err.causes.map((x: { protocol: string }) => x.protocol)).toEqual(["unix", "paf-tcp"]);
    expect(err.message).toMatch(/unix: .*ENOENT/);
    expect(err.message).toMatch(/paf-tcp: .*ECONNREFUSED/);
  });

  it("a user-defined protocol over an in-memory pipe carries HTTP/1.1 and h2c to a service", async () => {
    const svc = httpService(testApp(), { log: () => {} });
    const pipeTo = new Key<string>("pipe");
    const pipe: Protocol = {
      name: "memory-pipe",
      priority: 5,
      needs: [pipeTo],
      async open() {
        const [client, srv] = duplexPair();
        svc.handle(socketLike(srv)); // serve() does this for the flows it accepts
        return client;
      },
    };
    const connector = new Connector().register(pipe);
    const cl = new Client({ ctx: Ctx.empty.with(pipeTo, "demo"), connector });
    const r1 = await cl.request("http://anything/bytes/1000");
    expect(r1.protocol).toBe("http/1.1");
    expect(
      createHash("sha256")
        .update(await r1.bytes())
        .digest("hex"),
    ).toBe(expectedPatternSha256(1000));
    const r2 = await cl.request("http://anything/", { http2: "prior-knowledge" });
    expect(r2.protocol).toBe("h2");
    expect(await r2.text()).toMatch(/HTTP\/2/);
    cl.close();
  });

  it("host TCP on loopback with a client certificate (mutual TLS): accepted with it, refused without", async () => {
    const clientCert = await selfSigned(["client.paf.test"]);
    const srv = tls.createServer({ key: cert.key, cert: cert.cert, requestCert: true, rejectUnauthorized: true, ca: clientCert.cert, ALPNProtocols: ["http/1.1"] }, (s) => {
      const cn = String(s.getPeerCertificate().subject?.CN ?? "");
      s.once("data", () => s.end(`HTTP/1.1 200 OK\r\nContent-Length: ${cn.length}\r\nConnection: close\r\n\r\n${cn}`));
    });
    srv.on("tlsClientError", () => {});
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as { port: number }).port;
    const host = Ctx.empty.with(K.host_tcp, true);
    const ok = await request(`https://127.0.0.1:${port}/`, { ctx: host.with(K.tls, { ca: cert.cert, servername: "paf.test", cert: clientCert.cert, key: clientCert.key }) });
    expect([ok.status, ok.connection?.via, await ok.text()]).toEqual([200, "host-tcp", "client.paf.test"]);
    const refused = await request(`https://127.0.0.1:${port}/`, { ctx: host.with(K.tls, { ca: cert.cert, servername: "paf.test" }), http2: false }).catch((e) => e);
    expect(refused).toBeInstanceOf(ClientError);
    expect(["tls", "protocol"]).toContain(refused.stage); // TLS 1.3: the server's alert may come after the handshake
    srv.close();
  });

  it("HTTP/1.1 keep-alive: 20 sequential requests reuse one connection", async () => {
    const before = web.stats().accepted;
    const cl = new Client({ ctx: base });
    for (let i = 0; i < 20; i++) {
      const r = await cl.request("http://198.18.0.2/bytes/100");
      expect(r.status).toBe(200);
      expect(r.protocol).toBe("http/1.1");
      expect((await r.bytes()).length).toBe(100);
    }
    expect(cl.stats()["http://198.18.0.2"]?.opened).toBe(1);
    expect(web.stats().accepted - before).toBe(1);
    cl.close();
  });

  it("h2c by prior knowledge and h2 over TLS (ALPN): 30 concurrent requests multiplexed on one connection", async () => {
    const cl = new Client({ ctx: base });
    for (const url of ["http://198.18.0.2/bytes/50000", "https://198.18.0.2/bytes/50000"]) {
      const rs = await Promise.all(Array.from({ length: 30 }, () => cl.request(url, { http2: url.startsWith("http:") ? "prior-knowledge" : true })));
      for (const r of rs) {
        expect(r.protocol).toBe("h2");
        expect(
          createHash("sha256")
            .update(await r.bytes())
            .digest("hex"),
        ).toBe(expectedPatternSha256(50000));
      }
    }
    const st = cl.stats();
    expect(st["http://198.18.0.2"]).toEqual({ opened: 1, mode: "h2" });
    expect(st["https://198.18.0.2"]).toEqual({ opened: 1, mode: "h2" });
    cl.close();
  });

  it("HTTPS without h2 in ALPN is HTTP/1.1; streamed upload of 5 MB and the digest comes back; fetch-shaped helper", async () => {
    const cl = new Client({ ctx: base });
    const body = Buffer.alloc(5_000_000, 7);
    const chunks = async function* () {
      for (let i = 0; i < body.length; i += 65536) yield body.subarray(i, i + 65536);
    };
    const r = await cl.request("https://198.18.0.2/sha256", { method: "POST", body: chunks(), http2: false });
    expect(r.protocol).toBe("http/1.1");
    expect((await r.text()).trim()).toBe(createHash("sha256").update(body).digest("hex"));
    const f = await cl.fetch("https://198.18.0.2/echo", { method: "POST", body: Readable.from([Buffer.from("hello "), Buffer.from("fetch")]) });
    expect(f.status).toBe(200);
    expect(f.protocol).toBe("h2");
    expect(await f.text()).toBe("hello fetch");
    cl.close();
  });

  it("runHttp drives one resolved flow: ALPN picks h2 or HTTP/1.1, several requests on it", async () => {
    const c = defaultConnector();
    for (const [alpn, proto] of [
      [["h2", "http/1.1"], "h2"],
      [["http/1.1"], "http/1.1"],
    ] as const) {
      const before = sec.stats().accepted;
      const r = await c.open(
        base
          .with(K.host, "198.18.0.2")
          .with(K.port, 443)
          .with(K.tls, { ca: cert.cert, alpn: [...alpn] }),
      );
      expect(r.tls?.alpn).toBe(proto);
      const conn = runHttp(r, { authority: "https://198.18.0.2" });
      expect(conn.protocol).toBe(proto);
      for (const n of [10, 20000, 300]) {
        const res = await conn.request(`https://198.18.0.2/bytes/${n}`);
        expect([res.protocol, (await res.bytes()).length]).toEqual([proto, n]);
      }
      expect(sec.stats().accepted - before).toBe(1);
      conn.close();
    }
    // Cleartext h2 by prior knowledge over a bare flow.
    const flow = await clientStack.tcp.connect({ host: "198.18.0.2", port: 80 });
    const h2c = runHttp(flow, { http2: true, authority: "http://198.18.0.2" });
    expect(await (await h2c.request("http://198.18.0.2/")).text()).toMatch(/HTTP\/2/);
    h2c.close();
  });

  it("redirects are followed and bounded; 303 turns POST into GET", async () => {
    const cl = new Client({ ctx: base });
    const r = await cl.request("http://198.18.0.2/redirect/3");
    expect(r.status).toBe(200);
    expect(r.redirects).toHaveLength(3);
    expect(r.url).toBe("http://198.18.0.2/");
    const e = await cl.request("http://198.18.0.2/redirect/9", { maxRedirects: 4 }).catch((x) => x);
    expect(e).toBeInstanceOf(ClientError);
    expect(e.stage).toBe("protocol");
    expect(e.message).toMatch(/too many redirects/);
    const s = await cl.request("https://198.18.0.2/see-other", { method: "POST", body: "x" });
    expect(s.status).toBe(200);
    expect(await s.text()).toMatch(/^Hello from paf/);
    cl.close();
  });

  it("errors name their stage: timeout, tls (untrusted certificate, pin mismatch), connect (refused), resolve (no DNS)", async () => {
    const cl = new Client({ ctx: base });
    const t = await cl.request("http://198.18.0.2/stall", { timeout: 300 }).catch((x) => x);
    expect([t.stage, t.code]).toEqual(["timeout", "ETIMEDOUT"]);
    const other = await selfSigned(["other.test"]);
    const untrusted = await request("https://198.18.0.2/", { ctx: base.with(K.tls, { ca: other.cert }) }).catch((x) => x);
    expect(untrusted.stage).toBe("tls");
    expect(untrusted.message).toMatch(/self.signed|unable to verify|certificate/i);
    const pinned = await request("https://198.18.0.2/", { ctx: base.with(K.tls, { pins: ["sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="] }) }).catch((x) => x);
    expect([pinned.stage, pinned.code]).toEqual(["tls", "ERR_TLS_PIN_MISMATCH"]);
    const refused = await cl.request("http://198.18.0.2:8081/").catch((x) => x);
    expect([refused.stage, refused.code]).toEqual(["connect", "ECONNREFUSED"]);
    const name = await cl.request("http://paf.test/").catch((x) => x);
    expect(name.stage).toBe("resolve");
    expect(name.message).toMatch(/cannot resolve paf\.test/);
    cl.close();
  });

  it("happy eyeballs (RFC 8305): an unreachable IPv6 address loses to IPv4 after the attempt delay", async () => {
    expect(
      interleave([
        { address: "a", family: 4 },
        { address: "b", family: 4 },
        { address: "c", family: 6 },
      ]).map((a) => a.address),
    ).toEqual(["c", "a", "b"]);
    // paf.test has AAAA 2001:db8::99 (nobody answers neighbour solicitations) and A 198.18.0.2.
    const lookup = async () => [
      { address: "198.18.0.2", family: 4 as const },
      { address: "2001:db8::99", family: 6 as const },
    ];
    const t0 = Date.now();
    const r = await request("http://paf.test/", { ctx: base.with(K.lookup, lookup).with(K.attemptDelay, 200) });
    const ms = Date.now() - t0;
    expect(r.status).toBe(200);
    expect(await r.text()).toMatch(/Hello from paf/);
    expect(ms).toBeGreaterThanOrEqual(190); // IPv6 was tried first and given its delay
    expect(ms).toBeLessThan(2500); // ... but IPv4 did not wait for the IPv6 attempt to time out
    // When every address fails, one error lists each.
    const bad = await happyEyeballs(
      [
        { address: "x", family: 6 },
        { address: "y", family: 4 },
      ],
      async (a) => Promise.reject(Object.assign(new Error(`no route to ${a.address}`), { code: "EHOSTUNREACH" })),
      { delayMs: 10 },
    ).catch((e) => e);
    expect(bad).toBeInstanceOf(AggregateError);
    expect(bad.message).toMatch(/x: no route to x; y: no route to y/);
  });

  it("RFC 8305 §3: a slow AAAA answer does not hold up IPv4 (resolution delay), a fast one starts at once", async () => {
    const answerAfter = <T>(ms: number, v: T, fail = false) => new Promise<T>((res, rej) => setTimeout(() => (fail ? rej(Object.assign(new Error("ETIMEOUT"), { code: "ETIMEOUT" })) : res(v)), ms));
    const dnsWith = (v6: () => Promise<Array<{ address: string }>>, v4: () => Promise<Array<{ address: string }>>) => ({ tcp: clientStack.tcp, dns: { resolve6: v6, resolve4: v4 } });
    // AAAA takes 3 s (a resolver dropping AAAA queries), A answers at once: connected over IPv4 in well under a second.
    let t0 = Date.now();
    const slow6 = Ctx.empty.with(
      K.stack,
      dnsWith(
        () => answerAfter(3000, [{ address: "2001:db8::2" }]),
        () => answerAfter(5, [{ address: "198.18.0.2" }]),
      ),
    );
    const r1 = await request("http://paf.test/", { ctx: slow6 });
    expect(r1.connection?.remoteAddress).toBe("198.18.0.2");
    expect(Date.now() - t0).toBeLessThan(1000);
    await r1.text();
    // AAAA first, A slow: IPv6 is used without waiting for A.
    t0 = Date.now();
    const slow4 = Ctx.empty.with(
      K.stack,
      dnsWith(
        () => answerAfter(5, [{ address: "2001:db8::2" }]),
        () => answerAfter(3000, [{ address: "198.18.0.2" }]),
      ),
    );
    const r2 = await request("http://paf.test/", { ctx: slow4 });
    expect(r2.connection?.remoteAddress).toBe("2001:db8::2");
    expect(Date.now() - t0).toBeLessThan(1000);
    await r2.text();
    // AAAA first but unreachable, A arrives 300 ms later: the late A answer joins and wins.
    const late4 = Ctx.empty.with(
      K.stack,
      dnsWith(
        () => answerAfter(5, [{ address: "2001:db8::99" }]),
        () => answerAfter(300, [{ address: "198.18.0.2" }]),
      ),
    );
    const r3 = await request("http://paf.test/", { ctx: late4.with(K.attemptDelay, 100) });
    expect(r3.connection?.remoteAddress).toBe("198.18.0.2");
    await r3.text();
    // Both queries fail: a resolve error naming the name.
    const none = Ctx.empty.with(
      K.stack,
      dnsWith(
        () => answerAfter(5, [], true),
        () => answerAfter(10, [], true),
      ),
    );
    const e = await request("http://paf.test/", { ctx: none }).catch((x) => x);
    expect([e.stage, e.message]).toEqual(["resolve", expect.stringMatching(/cannot resolve paf\.test: ETIMEOUT/)]);
  });

  it("http.request and axios run over the stack through PafAgent / PafHttpsAgent; undici fetch through pafDispatcher", async () => {
    const agent = new PafAgent({ ctx: Ctx.empty.with(K.stack, clientStack) });
    const viaHttp = await new Promise<string>((resolve, reject) => {
      http
        .get("http://198.18.0.2/", { agent }, (res) => {
          let s = "";
          res.on("data", (d) => (s += d));
          res.on("end", () => resolve(s));
        })
        .on("error", reject);
    });
    expect(viaHttp).toMatch(/^Hello from paf/);
    const httpsAgent = new PafHttpsAgent({ ctx: Ctx.empty.with(K.stack, clientStack), ca: cert.cert });
    const ax = await axios.get("https://198.18.0.2/bytes/20000", { httpAgent: agent, httpsAgent, responseType: "arraybuffer", proxy: false });
    expect(ax.status).toBe(200);
    expect(createHash("sha256").update(Buffer.from(ax.data)).digest("hex")).toBe(expectedPatternSha256(20000));
    const posted = await axios.post("http://198.18.0.2/echo", "axios body", { httpAgent: agent, proxy: false, responseType: "text" });
    expect(posted.data).toBe("axios body");
    const dispatcher = pafDispatcher(Ctx.empty.with(K.stack, clientStack).with(K.tls, { ca: cert.cert }));
    const u1 = await undiciFetch("http://198.18.0.2/bytes/30000", { dispatcher });
    expect(
      createHash("sha256")
        .update(Buffer.from(await u1.arrayBuffer()))
        .digest("hex"),
    ).toBe(expectedPatternSha256(30000));
    const u2 = await undiciFetch("https://198.18.0.2/sha256", { method: "POST", body: "undici", dispatcher });
    expect((await u2.text()).trim()).toBe(createHash("sha256").update("undici").digest("hex"));
    agent.destroy();
    httpsAgent.destroy();
    await dispatcher.close();
  });
});
