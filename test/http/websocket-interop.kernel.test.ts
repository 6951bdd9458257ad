// WebSocket against a peer nobody in paf wrote (Debian's python3-websockets), over a TAP in a
// namespace with the Linux kernel as the TCP peer, ws:// and wss://, both ways:
//  - python clients against `paf serve`'s WebSocket echo (/ws, the demo app's upgrade hook);
//  - paf's ws client, its connections from a userspace stack (PafAgent / PafHttpsAgent), against
//    a python server.
// Each: 10,000 messages echoed in order, a 16 MB binary message, ping/pong, close codes 1000 and
// 4001 with a reason.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import { WebSocket } from "ws";
import { ensureBuilt, ROOT, startCli } from "../helpers/cli.js";
import { ifname, requirePrivileged, useNetns, waitFor, waitForOutput } from "../helpers/netns.js";
import { echoMany, next, sha256 } from "../helpers/ws.js";
import { TapNetif } from "../../stack/netif/tap.js";
import { Stack } from "../../stack/stack.js";
import { selfSigned } from "../../tls/selfsigned.js";
import { Ctx, K, PafAgent, PafHttpsAgent } from "../../http/client/index.js";

const run = requirePrivileged();
const PEER = join(ROOT, "test", "http", "ws_peer.py");
const BIG = 16 * 1024 * 1024;

describe.skipIf(!run)("python websockets clients against paf serve's WebSocket echo over a TAP", () => {
  const ctx = useNetns("wssrv");
  let dir: string;
  let child: ChildProcess | undefined;
  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), "paf-ws-"));
    const tap = ifname("pwss");
    const srv = await startCli(["serve", "--tap", tap, "--tap-netns", ctx.ns.name, "--ipv4", "198.18.0.2/24", "--https", "443", "--cert-out", join(dir, "cert.pem")], /^listening/);
    child = srv.child;
    await ctx.ns.kernelSide(tap, "198.18.0.1/24", undefined);
  }, 60_000);
  afterAll(() => {
    child?.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  for (const url of ["ws://198.18.0.2/ws", "wss://198.18.0.2/ws"]) {
    it(`${url}: 10,000 echoes, 16 MB, ping/pong, close 4001 and 1000`, async () => {
      const r = await ctx.ns.exec("/usr/bin/python3", [PEER, "client", url, join(dir, "cert.pem")], { timeoutMs: 120_000 });
      const res = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
      console.log(`python websockets ${String(res.websockets)} -> paf serve ${url}: 10,000 echoes in ${String(res.echo_ms)} ms, 16 MB echoed in ${String(res.big_ms)} ms`);
      expect(res).toMatchObject({
        echoed: 10_000,
        binary_type: "bytes",
        big_len: BIG,
        big_same: true,
        pong: true,
        close_4001: [4001, "bye from python"],
        second: "one more",
        close_1000: [1000, ""],
      });
    }, 130_000);
  }

  it("curl --http2 on http:// (Upgrade: h2c) is still served, over HTTP/1.1, with the WebSocket hook attached", async () => {
    const r = await ctx.ns.exec("curl", ["-sS", "--max-time", "10", "--http2", "-w", "\\n%{http_code} %{http_version}", "http://198.18.0.2/"]);
    expect(r.stdout).toMatch(/^Hello from paf: .* HTTP\/1\.1\.\n\n200 1\.1$/);
  });
});

describe.skipIf(!run)("paf's ws client on a userspace stack against a python websockets server over a TAP", () => {
  const ctx = useNetns("wscli");
  let dir: string;
  let stack: Stack;
  let py: ChildProcess;
  let pyOut = "";
  let ca: Buffer;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "paf-ws-"));
    const tap = ifname("pwsc");
    stack = Stack.create({ netif: TapNetif.open(tap, { netns: ctx.ns.path, up: true }), ipv4: { address: "198.18.0.2/24" } });
    await ctx.ns.kernelSide(tap, "198.18.0.1/24", undefined);
    const { key, cert } = await selfSigned(["198.18.0.1"]);
    ca = cert;
    writeFileSync(join(dir, "cert.pem"), cert);
    writeFileSync(join(dir, "key.pem"), key, { mode: 0o600 });
    py = ctx.ns.spawn("/usr/bin/python3", [PEER, "server", "8765", "8766", join(dir, "cert.pem"), join(dir, "key.pem")], { timeoutMs: 280_000 });
    py.stdout?.on("data", (d: Buffer) => (pyOut += d.toString()));
    await waitForOutput(py, /^ready$/m, 10_000);
  }, 30_000);
  afterAll(async () => {
    py?.kill("SIGKILL");
    await stack?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const open = async (url: string): Promise<WebSocket> => {
    const c = Ctx.empty.with(K.stack, stack); // only the userspace stack: no kernel socket can be used
    const agent = url.startsWith("wss:") ? new PafHttpsAgent({ ctx: c, ca }) : new PafAgent({ ctx: c });
    const ws = new WebSocket(url, { agent, maxPayload: 64 * 1024 * 1024 });
    await next(ws, "open");
    return ws;
  };

  for (const url of ["ws://198.18.0.1:8765/", "wss://198.18.0.1:8766/"]) {
    it(`${url}: 10,000 echoes, 16 MB, ping/pong, close 4001 (ours) and 1000 (the server's)`, async () => {
      const ws = await open(url);
      let t = Date.now();
      expect(await echoMany(ws, 10_000, 60_000)).toBe(10_000);
      const echoMs = Date.now() - t;
      const big = randomBytes(BIG);
      t = Date.now();
      ws.send(big);
      const [back, isBinary] = await next<[Buffer, boolean]>(ws, "message", 60_000);
      const bigMs = Date.now() - t;
      expect(isBinary).toBe(true);
      expect(back.length).toBe(BIG);
      expect(sha256(back)).toBe(sha256(big));
      ws.ping(Buffer.from("paf-ping"));
      expect((await next<[Buffer]>(ws, "pong"))[0].toString()).toBe("paf-ping");
      console.log(`paf ws client (extensions: ${ws.extensions || "none"}) -> python websockets ${url}: 10,000 echoes in ${echoMs} ms, 16 MB echoed in ${bigMs} ms`);
      // We close with 4001: the server sees our code and reason, and answers with them.
      const seen = pyOut.length;
      ws.close(4001, "bye from paf");
      const [code, reason] = await next<[number, Buffer]>(ws, "close");
      expect([code, reason.toString()]).toEqual([4001, "bye from paf"]);
      await waitFor(() => /^closed 4001 bye from paf$/m.test(pyOut.slice(seen)), "the server's log of our close", 5000);
      // The server closes with 1000 and a reason: we get both.
      const ws2 = await open(url);
      ws2.send("close 1000 server done");
      const [code2, reason2] = await next<[number, Buffer]>(ws2, "close");
      expect([code2, reason2.toString()]).toEqual([1000, "server done"]);
    }, 130_000);
  }
});
