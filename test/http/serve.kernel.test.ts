// serve(): HTTP/1.1, h2c and HTTPS with ALPN over the userspace stack (curl in a namespace), the
// same service over host sockets and a Unix socket, errors as responses, graceful stop.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import http from "node:http";
import { Netns, privileged, sh } from "../helpers/netns.js";
import { opensslCert } from "../helpers/certs.js";
import { TapNetif } from "../../stack/netif/tap.js";
import { Stack } from "../../stack/stack.js";
import { serve, type ServeHandle } from "../../http/serve.js";
import { hostListener, stackListener, unixListener } from "../../http/listener.js";
import { httpService, httpsService, type Handler } from "../../http/services.js";

const dir = mkdtempSync(join(tmpdir(), "paf-http-"));
const made = opensslCert(dir, "paf", { cn: "paf.test", san: "DNS:paf.test,IP:198.18.0.2" });
const { key, cert } = made;

let slowRelease: (() => void) | undefined;
const handler: Handler = (req, res) => {
  if (req.url === "/boom") throw new Error("handler exploded");
  if (req.url === "/slow") {
    slowRelease = () => res.end("slow done\n");
    return;
  }
  res.setHeader("content-type", "text/plain");
  res.end(`paf says hello over HTTP/${req.httpVersion}\n`);
};
const quiet = { log: () => {} };

describe("serve() over host sockets and a Unix socket (loopback only)", () => {
  it("the same service answers on node:net TCP and on a Unix socket", async () => {
    const l = await hostListener({ host: "127.0.0.1", port: 0 });
    const h = serve(httpService(handler, quiet), l);
    const port = Number(l.description.split(":").pop());
    const body = await new Promise<string>((resolve, reject) =>
      http
        .get({ host: "127.0.0.1", port, path: "/" }, (res) => {
          let b = "";
          res.on("data", (d) => (b += d));
          res.on("end", () => resolve(b));
        })
        .on("error", reject),
    );
    expect(body).toBe("paf says hello over HTTP/1.1\n");
    const h2 = (await sh("curl", ["-sS", "--max-time", "5", "--http2-prior-knowledge", `http://127.0.0.1:${port}/`])).stdout;
    expect(h2).toBe("paf says hello over HTTP/2.0\n");
    await h.stop(1000);
    const sock = join(dir, "s.sock");
    const u = serve(httpService(handler, quiet), await unixListener(sock));
    expect((await sh("curl", ["-sS", "--max-time", "5", "--unix-socket", sock, "http://paf/"])).stdout).toBe("paf says hello over HTTP/1.1\n");
    await u.stop(1000);
  });
});

const run = privileged();

describe.skipIf(!run)("serve() on the userspace stack over TAP, curl from the kernel side", () => {
  let ns: Netns;
  let stack: Stack;
  let plain: ServeHandle;
  let secure: ServeHandle;
  const TAP = "pafs" + (process.pid % 10000);
  const curl = (args: string[]) => ns.exec("curl", ["-sS", "--max-time", "10", ...args]).then((r) => r.stdout);

  beforeAll(async () => {
    ns = await Netns.create("srv");
    stack = Stack.create({ netif: TapNetif.open(TAP, { netns: ns.path, up: true }), ipv4: { address: "198.18.0.2/24" }, ipv6: { address: "2001:db8::2/64" } });
    await ns.kernelSide(TAP);
    await stack.ready();
    plain = serve(httpService(handler, { ...quiet, headersTimeoutMs: 2000, maxHeaderSize: 8192 }), stackListener(stack, { port: 80 }));
    secure = serve(httpsService(handler, { key, cert, ...quiet }), stackListener(stack, { port: 443 }));
  });
  afterAll(async () => {
    try {
      await plain?.stop(500);
      await secure?.stop(500);
      await stack?.close();
    } finally {
      await ns?.destroy();
    }
  });

  it("HTTP/1.1, and HTTP/1.0", async () => {
    expect(await curl(["http://198.18.0.2/"])).toBe("paf says hello over HTTP/1.1\n");
    expect(await curl(["--http1.0", "http://198.18.0.2/"])).toBe("paf says hello over HTTP/1.0\n");
  });

  it("h2c by prior knowledge, over IPv4 and IPv6", async () => {
    expect(await curl(["--http2-prior-knowledge", "http://198.18.0.2/"])).toBe("paf says hello over HTTP/2.0\n");
    expect(await curl(["--http2-prior-knowledge", "http://[2001:db8::2]/"])).toBe("paf says hello over HTTP/2.0\n");
  });

  it("HTTPS: ALPN h2, ALPN http/1.1, and no ALPN at all (HTTP/1.1), verified against the certificate", async () => {
    await sh("cp", [made.certPath, `/tmp/paf-ca-${process.pid}.pem`]);
    const ca = ["--cacert", `/tmp/paf-ca-${process.pid}.pem`];
    expect(await curl([...ca, "--http2", "https://198.18.0.2/"])).toBe("paf says hello over HTTP/2.0\n");
    expect(await curl([...ca, "--http1.1", "https://198.18.0.2/"])).toBe("paf says hello over HTTP/1.1\n");
    expect(await curl([...ca, "--no-alpn", "https://198.18.0.2/"])).toBe("paf says hello over HTTP/1.1\n");
    const v = await ns.exec("bash", ["-c", "echo | timeout 5 openssl s_client -connect 198.18.0.2:443 -alpn h2 -tls1_3 2>&1"]);
    expect(v.stdout).toMatch(/ALPN protocol: h2/);
    expect(v.stdout).toMatch(/TLSv1\.3/);
  });

  it("a handler exception becomes a 500 and the next request is served", async () => {
    const r = await ns.exec("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "http://198.18.0.2/boom"]);
    expect(r.stdout).toBe("500");
    expect(await curl(["http://198.18.0.2/"])).toBe("paf says hello over HTTP/1.1\n");
  });

  it("oversized headers get 431 and a slowloris client is cut off, while others are served meanwhile", async () => {
    const big = await ns.exec("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "-H", `X-Big: ${"a".repeat(20000)}`, "http://198.18.0.2/"]);
    expect(big.stdout).toBe("431");
    // slowloris: a request head that never ends
    const slow = ns.exec("bash", ["-c", "(printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n'; sleep 4) | timeout 6 nc 198.18.0.2 80; echo exit=$?"], 10_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(await curl(["http://198.18.0.2/"])).toBe("paf says hello over HTTP/1.1\n");
    expect((await slow).stdout).toMatch(/408|exit=0/);
  });

  it("stop() lets an in-flight request finish, then refuses new connections", async () => {
    const h = serve(httpService(handler, quiet), stackListener(stack, { port: 8080 }));
    const inflight = curl(["http://198.18.0.2:8080/slow"]);
    await new Promise((r) => setTimeout(r, 300));
    const stopped = h.stop(3000);
    setTimeout(() => slowRelease?.(), 200);
    expect(await inflight).toBe("slow done\n");
    await stopped;
    const refused = await ns.exec("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3", "http://198.18.0.2:8080/"]).catch((e: Error) => e.message);
    expect(String(refused)).toMatch(/000|refused|\(7\)/);
  });
});
