// A real browser against paf: headless Chromium (Debian's package, driven by playwright-core)
// runs inside the test's namespace and loads a page over HTTPS/h2 from the userspace stack: the
// page, its script, its stylesheet and an image all come over one h2 connection, the script POSTs
// to the stack and shows the digest, and the certificate is pinned by its SPKI hash (no "ignore
// all certificate errors").
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash, X509Certificate } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type http from "node:http";
import type http2 from "node:http2";
import { chromium, type Browser } from "playwright-core";
import { Netns, privileged } from "../helpers/netns.js";
import { TapNetif } from "../../stack/netif/tap.js";
import { Stack } from "../../stack/stack.js";
import { serve } from "../../http/serve.js";
import { stackListener } from "../../http/listener.js";
import { httpsService } from "../../http/services.js";
import { demoApp } from "../../http/app.js";
import { selfSigned } from "../../tls/selfsigned.js";

const CHROMIUM = "/usr/bin/chromium";
const run = privileged();
if (run && !existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)`);

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>paf in a browser</title><link rel="stylesheet" href="/style.css"></head>
<body><h1>Served by paf</h1><p id="proto"></p><p id="digest">pending</p><img id="img" src="/dot.svg" width="40" height="40">
<script src="/app.js"></script></body></html>`;
const SCRIPT = `
const body = new Uint8Array(100000).map((_, i) => i % 251);
fetch("/sha256", { method: "POST", body }).then((r) => r.text()).then((t) => {
  document.getElementById("digest").textContent = t.trim();
  const nav = performance.getEntriesByType("navigation")[0];
  document.getElementById("proto").textContent = nav.nextHopProtocol;
});`;
const SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle cx="5" cy="5" r="4" fill="#2a7"/></svg>`;

/** The demo app behind a few static routes the page needs. */
function pageApp() {
  const demo = demoApp();
  const files: Record<string, [string, string]> = {
    "/": ["text/html; charset=utf-8", PAGE],
    "/app.js": ["text/javascript", SCRIPT],
    "/style.css": ["text/css", "h1 { color: #246; font-family: sans-serif }"],
    "/dot.svg": ["image/svg+xml", SVG],
  };
  return (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => {
    const f = req.method === "GET" ? files[req.url ?? ""] : undefined;
    if (!f) return demo(req, res);
    res.setHeader("content-type", f[0]);
    res.end(f[1]);
  };
}

const cert = await selfSigned(["paf.test", "198.18.0.2"]);

describe.skipIf(!run)("headless Chromium loads a page over HTTPS/h2 from the userspace stack", () => {
  let ns: Netns;
  let stack: Stack;
  let browser: Browser | undefined;
  const TAP = "pafb" + (process.pid % 10000);
  const dir = mkdtempSync(join(tmpdir(), "paf-browser-"));
  const requests: string[] = [];
  let web: ReturnType<typeof serve>;

  beforeAll(async () => {
    ns = await Netns.create("brw");
    stack = Stack.create({ netif: TapNetif.open(TAP, { netns: ns.path, up: true }), ipv4: { address: "198.18.0.2/24" } });
    await ns.kernelSide(TAP, "198.18.0.1/24", undefined);
    // Chromium treats any address change on the machine as a network change and drops its
    // connections (ERR_NETWORK_CHANGED in its net log): wait for the kernel side's IPv6
    // link-local address to finish DAD, or it lands mid-page about one run in three.
    for (let i = 0; i < 100 && /tentative/.test((await ns.ip("-6", "addr", "show", "dev", TAP)).stdout); i++) await new Promise((r) => setTimeout(r, 50));
    expect((await ns.ip("-6", "addr", "show", "dev", TAP)).stdout).not.toMatch(/tentative/);
    const app = pageApp();
    const logged: typeof app = (req, res) => {
      requests.push(`${req.httpVersion} ${req.method} ${req.url}`);
      app(req, res);
    };
    web = serve(httpsService(logged, { key: cert.key, cert: cert.cert, log: () => {} }), stackListener(stack, { port: 443 }));
    // Chromium runs inside the namespace: playwright starts it through this wrapper (it talks to
    // it over pipes, so the namespace is no obstacle).
    const wrapper = join(dir, "chromium-in-netns");
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${ns.name} ${CHROMIUM} "$@"\n`);
    chmodSync(wrapper, 0o755);
    const spki = createHash("sha256")
      .update(new X509Certificate(cert.cert).publicKey.export({ type: "spki", format: "der" }))
      .digest("base64");
    expect(cert.spkiSha256).toBe(spki);
    browser = await chromium.launch({
      executablePath: wrapper,
      timeout: 30_000,
      // Flags from the machine notes: no sandbox as root, no background traffic to the outside.
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        `--ignore-certificate-errors-spki-list=${spki}`,
      ],
    });
  });
  afterAll(async () => {
    try {
      await browser?.close();
      await stack?.close();
    } finally {
      await ns?.destroy();
    }
  });

  it("renders the page, fetches every resource over h2, POSTs from script, and a screenshot is taken", async () => {
    const page = await browser!.newPage();
    const protocols: string[] = [];
    const resp = await page.goto("https://198.18.0.2/", { timeout: 20_000 });
    expect(resp?.status()).toBe(200);
    expect(await page.title()).toBe("paf in a browser");
    await page.waitForFunction('document.getElementById("digest").textContent !== "pending"', undefined, { timeout: 20_000 });
    const body = Buffer.from(Array.from({ length: 100000 }, (_, i) => i % 251));
    expect(await page.textContent("#digest")).toBe(createHash("sha256").update(body).digest("hex"));
    // The browser's own view of the protocol, and the server's: every request arrived as HTTP/2.
    protocols.push((await page.textContent("#proto")) ?? "");
    expect(protocols).toEqual(["h2"]);
    for (const path of ["GET /", "GET /app.js", "GET /style.css", "GET /dot.svg", "POST /sha256"]) expect(requests).toContain(`2.0 ${path}`);
    expect(requests.every((r) => r.startsWith("2.0 "))).toBe(true);
    expect(web.stats().accepted).toBe(1); // one TCP connection carried all of it
    // The image decoded (an SVG that failed to load has naturalWidth 0) and the stylesheet applied.
    expect(await page.evaluate('document.getElementById("img").naturalWidth')).toBeGreaterThan(0);
    expect(await page.evaluate('getComputedStyle(document.querySelector("h1")).color')).toBe("rgb(34, 68, 102)");
    mkdirSync("test-artifacts", { recursive: true });
    const png = await page.screenshot({ path: "test-artifacts/browser-h2.png" });
    expect(png.length).toBeGreaterThan(1000);
    await page.close();
  });

  it("refuses a certificate it was not told to trust (the pin is what lets the page load)", async () => {
    const ctx = await browser!.newContext();
    const page = await ctx.newPage();
    // Same stack, another port, a certificate with a fresh key that no pin matches.
    const other = await selfSigned(["other.test"]);
    const s2 = httpsService(pageApp(), { key: other.key, cert: other.cert, log: () => {} });
    const h = serve(s2, stackListener(stack, { port: 8443 }));
    await expect(page.goto("https://198.18.0.2:8443/", { timeout: 15_000 })).rejects.toThrow(/ERR_CERT|net::/);
    await h.stop(100);
    await ctx.close();
  });
});
