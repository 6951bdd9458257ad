// stack.net: node:net's shape over the userspace stack. The same scenarios run against node:net on
// kernel loopback and against stack.net between two stacks on a virtual switch, and must behave
// alike (events, order, errors and their codes); then libraries that take a connection factory
// (node:http's createConnection, ws) run over it unchanged, and names resolve through stack.dns.
import { afterAll, describe, expect, it } from "vitest";
import net from "node:net";
import http from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, WebSocket } from "ws";
import { Stack } from "../../stack/stack.js";
import { VirtualSwitch } from "../../stack/netif/vswitch.js";
import { TestDnsServer, a, aaaa, zone } from "./dns/net.js";

const sw = new VirtualSwitch();
const server = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" }, ipv6: { address: "2001:db8::2/64", dad: false } });
const client = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.1/24" }, ipv6: { address: "2001:db8::1/64", dad: false }, dns: { servers: ["198.18.0.3"] } });
const ns = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.3/24" } });
const dns = new TestDnsServer(ns, zone([a("web.test", "198.18.0.2"), aaaa("web.test", "2001:db8::2"), a("v4only.test", "198.18.0.2")]));
afterAll(async () => {
  dns.close();
  await Promise.all([server.close(), client.close(), ns.close()]);
});

/** The two worlds the scenarios run in: node:net on kernel loopback, and stack.net. */
interface World {
  name: string;
  createServer: typeof net.createServer;
  connect: (port: number, host: string, cb?: () => void) => Duplex & { setTimeout(ms: number): unknown; setKeepAlive(on: boolean, ms?: number): unknown; remotePort?: number };
  host: string;
  /** The Socket class: made unconnected, connected by its own connect(). */
  Socket: new () => Duplex & { connect(port: number, host: string, cb?: () => void): unknown; connecting: boolean; pending: boolean; remotePort?: number };
}
const worlds: World[] = [
  { name: "node:net (kernel loopback)", createServer: net.createServer, connect: (p, h, cb) => net.connect(p, h, cb), host: "127.0.0.1", Socket: net.Socket },
  {
    name: "stack.net (userspace)",
    createServer: ((...a: unknown[]) => (server.net.createServer as (...x: unknown[]) => unknown)(...a)) as never,
    connect: (p, h, cb) => client.net.connect(p, h, cb),
    host: "198.18.0.2",
    Socket: client.net.Socket,
  },
];

function listening(s: net.Server): Promise<number> {
  return new Promise((resolve) => s.listen(0, () => resolve((s.address() as net.AddressInfo).port)));
}

describe.each(worlds)("node:net behaviours: $name", (w) => {
  it("listen(0): 'listening', address(), a connection, getConnections, close(cb) once the connection ended", async () => {
    const events: string[] = [];
    const s = w.createServer((sock) => {
      events.push("connection");
      sock.end("bye");
    });
    s.on("close", () => events.push("close"));
    const port = await listening(s);
    expect(port).toBeGreaterThan(0);
    expect(s.listening).toBe(true);
    const c = w.connect(port, w.host, () => events.push("connect"));
    let got = "";
    c.on("data", (d: Buffer) => (got += d));
    await new Promise((r) => c.on("end", r));
    expect(got).toBe("bye");
    const n = await new Promise<number>((r) => s.getConnections((_e, k) => r(k)));
    expect(n).toBeLessThanOrEqual(1);
    c.destroy();
    await new Promise<void>((r) => s.close(() => r()));
    expect([...events].sort()).toEqual(["close", "connect", "connection"]);
    expect(events.at(-1)).toBe("close");
    expect(s.listening).toBe(false);
    // close() again: ERR_SERVER_NOT_RUNNING to the callback.
    const err = await new Promise<Error & { code?: string }>((r) => s.close((e) => r(e as Error)));
    expect(err.code).toBe("ERR_SERVER_NOT_RUNNING");
  });

  it("half-open: the client ends, the server still answers, then ends", async () => {
    const s = w.createServer({ allowHalfOpen: true }, (sock) => {
      let req = "";
      sock.on("data", (d: Buffer) => (req += d));
      sock.on("end", () => sock.end(`got ${req}`));
    });
    const port = await listening(s);
    const c = w.connect(port, w.host);
    c.end("question");
    let got = "";
    c.on("data", (d: Buffer) => (got += d));
    await new Promise((r) => c.on("close", r));
    expect(got).toBe("got question");
    s.close();
  });

  it("setTimeout: 'timeout' after the idle time; setKeepAlive is accepted; destroy(): 'close'", async () => {
    const s = w.createServer(() => {});
    const port = await listening(s);
    const c = w.connect(port, w.host);
    await new Promise((r) => c.once("connect", r));
    c.setKeepAlive(true, 1000);
    const t0 = Date.now();
    c.setTimeout(100);
    await new Promise((r) => c.once("timeout", r));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(90);
    const closed = new Promise((r) => c.once("close", r));
    c.destroy();
    await closed;
    expect(c.destroyed).toBe(true);
    s.close();
  });

  it("a closed port: ECONNREFUSED; a bad port: ERR_SOCKET_BAD_PORT thrown at once", async () => {
    const s = w.createServer();
    const port = await listening(s);
    await new Promise<void>((r) => s.close(() => r()));
    const c = w.connect(port, w.host);
    const err = await new Promise<Error & { code?: string }>((r) => c.once("error", r));
    expect(err.code).toBe("ECONNREFUSED");
    expect(() => w.connect(70000, w.host)).toThrow(expect.objectContaining({ code: "ERR_SOCKET_BAD_PORT" }));
  });

  it("new Socket(), then connect(): pending until connected, data written while connecting is sent, a second connect() while connecting fails with EALREADY; a write before connect() fails", async () => {
    const s = w.createServer((sock) => sock.on("data", (d: Buffer) => sock.end(`echo:${d}`)));
    const port = await listening(s);
    const c = new w.Socket();
    expect(c.connecting).toBe(false);
    expect(c.pending).toBe(true);
    const connected = new Promise<void>((r) => c.connect(port, w.host, r));
    expect(c.connecting).toBe(true);
    c.write("early");
    await connected;
    expect(c.pending).toBe(false);
    expect(c.remotePort).toBe(port);
    let got = "";
    c.on("data", (d: Buffer) => (got += d));
    await new Promise((r) => c.once("end", r));
    expect(got).toBe("echo:early");
    const twice = new w.Socket();
    const already = await new Promise<Error & { code?: string }>((r) => {
      twice.once("error", r);
      twice.connect(port, w.host);
      twice.connect(port, w.host);
    });
    expect(already.code).toBe("EALREADY");
    const unconnected = new w.Socket();
    const werr = await new Promise<Error & { code?: string }>((r) => {
      unconnected.once("error", r);
      unconnected.write("too soon");
    });
    expect(werr.code).toBe("ERR_SOCKET_CLOSED");
    s.close();
  });

  it("listen on a port in use: 'error' EADDRINUSE", async () => {
    const s1 = w.createServer();
    const port = await listening(s1);
    const s2 = w.createServer();
    const err = await new Promise<Error & { code?: string }>((r) => {
      s2.once("error", r);
      s2.listen(port, w.host);
    });
    expect(err.code).toBe("EADDRINUSE");
    s1.close();
  });
});

describe("stack.net with libraries and names", () => {
  it("names resolve through the stack's DNS (IPv6 first), a name without answers is ENOTFOUND", async () => {
    const s = server.net.createServer((sock) => sock.end(`hello ${sock.remoteFamily}`)).listen(4000);
    for (const [name, fam] of [
      ["web.test", "IPv6"],
      ["v4only.test", "IPv4"],
    ]) {
      const c = client.net.connect({ port: 4000, host: name! });
      let got = "";
      c.on("data", (d: Buffer) => (got += d));
      await new Promise((r) => c.on("end", r));
      expect(got).toBe(`hello ${fam}`);
      expect(c.remotePort).toBe(4000);
    }
    const bad = client.net.connect(4000, "nxdomain.test");
    const err = await new Promise<Error & { code?: string }>((r) => bad.once("error", r));
    expect(err.code).toBe("ENOTFOUND");
    s.close();
  });

  it("writes made while the name resolves are sent once connected", async () => {
    const s = server.net
      .createServer({ allowHalfOpen: true }, (sock) => {
        let req = "";
        sock.on("data", (d: Buffer) => (req += d));
        sock.on("end", () => sock.end(req.toUpperCase()));
      })
      .listen(4001);
    const c = client.net.connect(4001, "web.test");
    expect(c.connecting).toBe(true);
    c.write("early ");
    c.end("bytes");
    let got = "";
    c.on("data", (d: Buffer) => (got += d));
    await new Promise((r) => c.on("close", r));
    expect(got).toBe("EARLY BYTES");
    s.close();
  });

  it("node:http runs unchanged: http.createServer fed by a NetServer, http.request with createConnection", async () => {
    const app = http.createServer((req, res) => res.end(`${req.method} ${req.url} over paf`));
    const s = server.net.createServer((sock) => app.emit("connection", sock)).listen(8080);
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: "web.test", port: 8080, path: "/x", createConnection: () => client.net.createConnection(8080, "web.test") as never }, (res) => {
        let b = "";
        res.on("data", (d) => (b += d));
        res.on("end", () => resolve(b));
      });
      req.on("error", reject);
      req.end();
    });
    expect(body).toBe("GET /x over paf");
    s.close();
  });

  it("ws runs unchanged: a WebSocketServer on a NetServer's connections, a client with createConnection", async () => {
    const wss = new WebSocketServer({ noServer: true });
    const app = http.createServer();
    app.on("upgrade", (req, sock, head) => wss.handleUpgrade(req, sock, head, (ws) => ws.on("message", (m) => ws.send(`echo ${m}`))));
    const s = server.net.createServer((sock) => app.emit("connection", sock)).listen(8081);
    const ws = new WebSocket("ws://web.test:8081/", { createConnection: () => client.net.createConnection(8081, "web.test") as never } as never);
    const reply = await new Promise<string>((resolve, reject) => {
      ws.on("open", () => ws.send("hi"));
      ws.on("message", (m) => resolve(String(m)));
      ws.on("error", reject);
    });
    expect(reply).toBe("echo hi");
    ws.close();
    wss.close();
    s.close();
  });

  it("maxConnections: a connection beyond it is dropped ('drop') and closed", async () => {
    const s = server.net.createServer(() => {});
    s.maxConnections = 1;
    const drops: unknown[] = [];
    s.on("drop", (d) => drops.push(d));
    s.listen(4002);
    const c1 = client.net.connect(4002, "198.18.0.2");
    await new Promise((r) => c1.once("connect", r));
    const c2 = client.net.connect(4002, "198.18.0.2");
    c2.on("error", () => {});
    await new Promise((r) => c2.once("close", r));
    expect(drops).toHaveLength(1);
    c1.destroy();
    s.close();
  });
});
