// redirectToHttps() in-process: the Location for each form of request target and Host (RFC 9112
// §3.2, RFC 9110 §7.2), h2c, HEAD, a POST that follows the 308 with its body, and the ACME
// HTTP-01 path answered by an Http01Responder in front of it, never redirected.
import { afterAll, describe, expect, it } from "vitest";
import { VirtualSwitch } from "../../stack/netif/vswitch.js";
import { Stack } from "../../stack/stack.js";
import { serve } from "../../http/serve.js";
import { stackListener } from "../../http/listener.js";
import { httpService, httpsService } from "../../http/services.js";
import { demoApp } from "../../http/app.js";
import { redirectToHttps } from "../../http/redirect.js";
import { Http01Responder } from "../../tls/acme/challenge.js";
import { selfSigned } from "../../tls/selfsigned.js";
import { Ctx, K, request } from "../../http/client/index.js";

const cert = await selfSigned(["198.18.0.2"]);

describe("redirectToHttps over two in-process stacks", () => {
  const sw = new VirtualSwitch();
  const server = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" }, ipv6: { address: "2001:db8::2/64", dad: false } });
  const clientStack = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.1/24" }, ipv6: { address: "2001:db8::1/64", dad: false } });
  const responder = new Http01Responder();
  responder.set("tok-1", "tok-1.thumbprint");
  const log = () => {};
  const running = [
    serve(httpService(responder.wrap(redirectToHttps({ port: 8443 })), { log }), stackListener(server, { port: 80 })),
    serve(httpService(redirectToHttps(), { log }), stackListener(server, { port: 81 })),
    serve(httpService(redirectToHttps({ status: 301 }), { log }), stackListener(server, { port: 82 })),
    serve(httpsService(demoApp(), { key: cert.key, cert: cert.cert, log }), stackListener(server, { port: 8443 })),
  ];
  const ctx = Ctx.empty.with(K.stack, clientStack).with(K.tls, { ca: cert.cert });

  afterAll(async () => {
    await Promise.all(running.map((r) => r.stop(200)));
    await Promise.all([server.close(), clientStack.close()]);
  });

  /** One raw request on its own connection; the whole answer as text. */
  async function raw(head: string, port = 80, host = "198.18.0.2"): Promise<string> {
    const flow = await clientStack.tcp.connect({ host, port });
    const chunks: Buffer[] = [];
    flow.on("data", (d: Buffer) => chunks.push(d));
    const ended = new Promise((r) => flow.once("end", r));
    flow.write(head);
    await ended;
    flow.end();
    return Buffer.concat(chunks).toString();
  }
  const get = (target: string, headers: string, version = "1.1", port = 80) => raw(`GET ${target} HTTP/${version}\r\n${headers}Connection: close\r\n\r\n`, port);
  const location = (answer: string) => /^location: (.*)\r$/im.exec(answer)?.[1];
  const status = (answer: string) => Number(/^HTTP\/1\.1 (\d+)/.exec(answer)?.[1]);

  it("308 to the same path and query on https, host from Host without its port, HTTPS port added", async () => {
    const a = await get("/a/b?c=d&e", "Host: paf.test\r\n");
    expect(status(a)).toBe(308);
    expect(location(a)).toBe("https://paf.test:8443/a/b?c=d&e");
    expect(a).toMatch(/\r\n\r\nmoved to https:\/\/paf\.test:8443\/a\/b\?c=d&e\n$/);
    expect(location(await get("/", "Host: PAF.Test:80\r\n"))).toBe("https://paf.test:8443/");
    expect(location(await get("/x", "Host: [2001:db8::2]:80\r\n"))).toBe("https://[2001:db8::2]:8443/x");
    expect(location(await get("/x", "Host: 198.18.0.2\r\n"))).toBe("https://198.18.0.2:8443/x");
    // Port 443 is left out of the URL; 301 when asked for.
    expect(location(await get("/y?z", "Host: paf.test\r\n", "1.1", 81))).toBe("https://paf.test/y?z");
    expect(status(await get("/", "Host: paf.test\r\n", "1.1", 82))).toBe(301);
  });

  it("the absolute form wins over Host (RFC 9112 §3.2.2); HTTP/1.0 without Host gets the address it reached", async () => {
    expect(location(await get("http://other.test:80/p?q", "Host: paf.test\r\n"))).toBe("https://other.test:8443/p?q");
    expect(location(await get("/old", "", "1.0"))).toBe("https://198.18.0.2:8443/old");
    const v6 = await raw("GET /six HTTP/1.0\r\n\r\n", 80, "2001:db8::2");
    expect(location(v6)).toBe("https://[2001:db8::2]:8443/six");
  });

  it("a Host that is not a host, and OPTIONS *, get 400 rather than a Location built from them", async () => {
    for (const host of ["user@paf.test", "paf.test/evil", "paf test", "paf.test:80:80"]) {
      const a = await get("/", `Host: ${host}\r\n`);
      expect(status(a), host).toBe(400);
      expect(a).toMatch(/no host to redirect to\n$/);
      expect(location(a)).toBeUndefined();
    }
    expect(status(await raw("OPTIONS * HTTP/1.1\r\nHost: paf.test\r\nConnection: close\r\n\r\n"))).toBe(400);
  });

  it("HEAD gets the redirect without a body", async () => {
    const a = await raw("HEAD /h HTTP/1.1\r\nHost: paf.test\r\nConnection: close\r\n\r\n");
    expect(status(a)).toBe(308);
    expect(location(a)).toBe("https://paf.test:8443/h");
    expect(a.endsWith("\r\n\r\n")).toBe(true);
  });

  it("h2c (prior knowledge) is redirected too, host from :authority", async () => {
    const r = await request("http://198.18.0.2/h2?x=1", { ctx, http2: "prior-knowledge", maxRedirects: 0 });
    expect([r.status, r.protocol, r.headers.location]).toEqual([308, "h2", "https://198.18.0.2:8443/h2?x=1"]);
    await r.bytes();
  });

  it("a POST follows the 308 with its method and body to HTTPS (a 301 would allow a GET)", async () => {
    const r = await request("http://198.18.0.2/sha256", { ctx, method: "POST", body: "hello" });
    expect(r.status).toBe(200);
    expect(r.url).toBe("https://198.18.0.2:8443/sha256");
    expect(r.redirects).toEqual(["http://198.18.0.2/sha256"]);
    expect((await r.text()).trim()).toBe("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"); // sha256("hello")
  });

  it("the ACME HTTP-01 path stays on HTTP: a known token is answered, an unknown one is 404, neither redirected", async () => {
    const known = await get("/.well-known/acme-challenge/tok-1", "Host: paf.test\r\n");
    expect(status(known)).toBe(200);
    expect(known.endsWith("\r\n\r\ntok-1.thumbprint")).toBe(true);
    const unknown = await get("/.well-known/acme-challenge/nope", "Host: paf.test\r\n");
    expect(status(unknown)).toBe(404);
    expect(location(unknown)).toBeUndefined();
    // Outside the prefix, a look-alike path is redirected as usual.
    expect(status(await get("/.well-known/other", "Host: paf.test\r\n"))).toBe(308);
  });

  it("rejects a port outside 1-65535", () => {
    expect(() => redirectToHttps({ port: 0 })).toThrow(RangeError);
    expect(() => redirectToHttps({ port: 70000 })).toThrow(/1-65535/);
  });
});
