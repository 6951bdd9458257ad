// The client side against real servers on the kernel side of a TAP, in a namespace this file
// creates: nginx (HTTP/1.1, h2c by prior knowledge, TLS with ALPN h2/http1.1, IPv6), names from
// dnsmasq, happy eyeballs with an unreachable IPv6 address, a Unix socket server, and `paf get`
// on its own TAP. Needs root and /dev/net/tun (CI has both).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import axios from "axios";
import { fetch as undiciFetch } from "undici";
import { dnsServer, ifname, requirePrivileged, useNetns } from "../../helpers/netns.js";
import { ensureBuilt, runCli } from "../../helpers/cli.js";
import { TapNetif } from "../../../stack/netif/tap.js";
import { Stack } from "../../../stack/stack.js";
import { selfSigned } from "../../../tls/selfsigned.js";
import { Client, Ctx, K, PafHttpsAgent, pafDispatcher } from "../../../http/client/index.js";

const run = requirePrivileged();

const cert = await selfSigned(["web.test", "198.18.0.1"]);

describe.skipIf(!run)("client side against nginx, dnsmasq and a Unix socket server over TAP", () => {
  const net = useNetns("cln");
  const dir = mkdtempSync(join(tmpdir(), "paf-client-"));
  const file = randomBytes(1_500_000);
  const fileSha = createHash("sha256").update(file).digest("hex");
  const procs: ChildProcess[] = [];
  let stack: Stack;
  let ctx: Ctx;
  let unixServer: http.Server;
  const unixPath = join(dir, "app.sock");

  beforeAll(async () => {
    ensureBuilt();
    const tap = TapNetif.open(ifname("pk"), { netns: net.ns.path, up: true });
    stack = Stack.create({
      netif: tap,
      ipv4: { address: "198.18.0.2/24" },
      ipv6: { address: "2001:db8::2/64", dad: false },
      dns: { servers: ["198.18.0.1"], timeoutMs: 1000, attempts: 2 },
    });
    await net.ns.kernelSide(tap.name);
    await stack.ready();
    chmodSync(dir, 0o755); // nginx's workers run unprivileged
    writeFileSync(join(dir, "file.bin"), file);
    writeFileSync(join(dir, "cert.pem"), cert.cert);
    writeFileSync(join(dir, "key.pem"), cert.key);
    writeFileSync(
      join(dir, "nginx.conf"),
      `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
worker_processes 1;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  server {
    listen 8080; listen [::]:8080; listen 8081 http2;
    listen 8443 ssl http2; listen [::]:8443 ssl http2;
    ssl_certificate ${dir}/cert.pem; ssl_certificate_key ${dir}/key.pem; ssl_protocols TLSv1.2 TLSv1.3;
    root ${dir};
    location = /proto { default_type text/plain; return 200 "$server_protocol $remote_addr\\n"; }
    location = /moved { return 302 /proto; }
  }
}
`,
    );
    const nginx = net.ns.spawn("/usr/sbin/nginx", ["-p", dir, "-c", join(dir, "nginx.conf")], { timeoutMs: 300_000 });
    procs.push(nginx);
    procs.push(await dnsServer(net.ns, ["198.18.0.1"], ["--host-record=web.test,198.18.0.1,2001:db8::1,60", "--host-record=he.test,198.18.0.1,2001:db8::dead,60"]));
    // nginx prints nothing when it starts well: wait until it answers from inside the namespace.
    for (let i = 0; ; i++) {
      const r = await net.ns.exec("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://198.18.0.1:8080/proto"]).catch(() => undefined);
      if (r?.stdout === "200") break;
      if (i === 50 || nginx.exitCode !== null) throw new Error(`nginx did not come up: ${readFileSync(join(dir, "error.log"), "utf8")}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    unixServer = http.createServer((req, res) => res.end(`unix ${req.method} ${req.url}\n`));
    await new Promise<void>((r) => unixServer.listen(unixPath, r));
    ctx = Ctx.empty.with(K.stack, stack).with(K.tls, { ca: cert.cert });
  });

  afterAll(async () => {
    // nginx runs without a master process (master_process off), so killing it leaves no workers.
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    unixServer?.close();
    await stack?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("HTTP/1.1, h2c by prior knowledge, and TLS with ALPN h2 and http/1.1 against nginx, bodies checked by SHA-256", async () => {
    const cl = new Client({ ctx });
    const cases: Array<[string, Parameters<Client["request"]>[1], string, RegExp]> = [
      ["http://198.18.0.1:8080", {}, "http/1.1", /^HTTP\/1\.1 198\.18\.0\.2/],
      ["http://198.18.0.1:8081", { http2: "prior-knowledge" }, "h2", /^HTTP\/2\.0 198\.18\.0\.2/],
      ["https://198.18.0.1:8443", {}, "h2", /^HTTP\/2\.0/],
      ["https://198.18.0.1:8443", { http2: false, ctx: ctx.with(K.attemptDelay, 250) }, "http/1.1", /^HTTP\/1\.1/],
    ];
    for (const [origin, opts, proto, seen] of cases) {
      const p = await cl.request(`${origin}/proto`, opts);
      expect([origin, p.status, p.protocol]).toEqual([origin, 200, proto]);
      expect(await p.text()).toMatch(seen); // nginx's own view of the protocol and of our address
      const f = await cl.request(`${origin}/file.bin`, opts);
      expect(
        createHash("sha256")
          .update(await f.bytes())
          .digest("hex"),
      ).toBe(fileSha);
    }
    const tlsInfo = (await cl.request("https://198.18.0.1:8443/proto")).connection;
    expect(tlsInfo?.via).toBe("paf-tcp");
    expect(tlsInfo?.tls?.alpn).toBe("h2");
    expect(tlsInfo?.remoteAddress).toBe("198.18.0.1");
    const moved = await cl.request("http://198.18.0.1:8080/moved");
    expect([moved.status, moved.redirects.length]).toEqual([200, 1]);
    cl.close();
  });

  it("names resolve through the stack's DNS (dnsmasq), over IPv6 first when there is an AAAA", async () => {
    const cl = new Client({ ctx });
    const r = await cl.request("https://web.test:8443/proto");
    expect(r.status).toBe(200);
    expect(await r.text()).toMatch(/^HTTP\/2\.0 2001:db8::2/); // nginx saw our IPv6 address
    expect(r.connection?.remoteAddress).toBe("2001:db8::1");
    cl.close();
  });

  it("happy eyeballs: he.test's AAAA is unreachable, IPv4 wins after the attempt delay", async () => {
    const t0 = Date.now();
    const r = await new Client({ ctx }).request("http://he.test:8080/proto");
    const ms = Date.now() - t0;
    expect(await r.text()).toMatch(/^HTTP\/1\.1 198\.18\.0\.2/);
    expect(ms).toBeGreaterThanOrEqual(240);
    expect(ms).toBeLessThan(2000); // NDP for 2001:db8::dead takes ~3 s to fail; we did not wait for it
  });

  it("a Unix socket server through the same Client; axios with PafHttpsAgent and undici fetch with the dispatcher against nginx", async () => {
    const u = await new Client({ ctx: Ctx.empty.with(K.unix, unixPath) }).request("http://localhost/over-unix", { method: "POST", body: "x" });
    expect(await u.text()).toBe("unix POST /over-unix\n");
    expect(u.connection?.via).toBe("unix");
    const agent = new PafHttpsAgent({ ctx: Ctx.empty.with(K.stack, stack), ca: cert.cert });
    const ax = await axios.get("https://web.test:8443/file.bin", { httpsAgent: agent, responseType: "arraybuffer", proxy: false });
    expect(createHash("sha256").update(Buffer.from(ax.data)).digest("hex")).toBe(fileSha);
    agent.destroy();
    const dispatcher = pafDispatcher(ctx);
    const f = await undiciFetch("https://web.test:8443/proto", { dispatcher });
    expect(await f.text()).toMatch(/^HTTP\/1\.1 2001:db8::2/);
    await dispatcher.close();
  });

  it("paf get on its own TAP: DNS via --dns, TLS with --cacert, ALPN h2 printed with -v; errors name their stage", async () => {
    // A persistent TAP in the namespace, configured before paf attaches to it.
    const tap = ifname("pg");
    await net.ns.ip("tuntap", "add", "dev", tap, "mode", "tap");
    await net.ns.ip("addr", "add", "198.19.0.1/24", "dev", tap);
    await net.ns.ip("link", "set", tap, "up");
    const base = ["get", "--tap", tap, "--tap-netns", net.ns.name, "--ipv4", "198.19.0.2/24", "--gateway", "198.19.0.1", "--dns", "198.18.0.1"];
    const out = join(dir, "got.bin");
    const r = await runCli([...base, "--cacert", join(dir, "cert.pem"), "-v", "-o", out, "https://web.test:8443/file.bin"], 30_000);
    expect(r.stderr, r.stderr).toMatch(/< h2 200/);
    expect(r.stderr, r.stderr).toMatch(/via paf-tcp \(TLSv1\.3, ALPN h2\)/);
    expect(r.code).toBe(0);
    expect(createHash("sha256").update(readFileSync(out)).digest("hex")).toBe(fileSha);
    const plain = await runCli([...base, "http://198.19.0.1:8080/proto"], 30_000);
    expect(plain.stdout).toBe("HTTP/1.1 198.19.0.2\n");
    const untrusted = await runCli([...base, "https://web.test:8443/proto"], 30_000);
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(/tls: TLS with web\.test failed/);
    const insecure = await runCli([...base, "--insecure", "https://web.test:8443/proto"], 30_000);
    expect(insecure.stdout).toMatch(/^HTTP\/2\.0 198\.19\.0\.2/);
    const nx = await runCli([...base, "http://nowhere.test/"], 30_000);
    expect(nx.stderr).toMatch(/resolve: cannot resolve nowhere\.test/);
    const bad = await runCli(["get", "--tap", tap, "http://x/"], 10_000);
    expect([bad.code, bad.stderr]).toEqual([2, expect.stringMatching(/--tap needs --ipv4/)]);
  });
});
