/**
 * The built-in demo application (the same handler serves HTTP/1.x and HTTP/2):
 *   GET  /          a short text naming paf
 *   GET  /bytes/N   N bytes of a deterministic pattern, streamed with backpressure (N up to 2^50)
 *   POST /sha256    the hex SHA-256 of the request body, streamed (any size)
 *   POST /echo      the body back, streamed
 *   GET  /stats     the stack's counters as JSON (from the `stats` callback)
 *   GET  /ws        a WebSocket echo (demoWebSocket(), attached as the services' upgrade hook)
 * Anything else is 404; a wrong method on a known path is 405 with an Allow header. HEAD is
 * answered wherever GET is (RFC 9110 §9.1), with GET's header fields and no content (§9.3.2).
 */
import { createHash } from "node:crypto";
import { WebSocketServer } from "ws";
import type { Handler } from "./services.js";
import type { UpgradeHandler } from "./upgrade.js";

const BLOCK = (() => {
  const b = Buffer.alloc(64 * 1024);
  for (let i = 0; i < b.length; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
})();

/** Byte i of /bytes/N is BLOCK[i mod 65536]: clients can check any range. */
export function patternByte(i: number): number {
  return BLOCK[i % BLOCK.length]!;
}

export const MAX_BYTES = 2 ** 50;

export function demoApp(opts: { stats?: () => unknown; name?: string } = {}): Handler {
  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://paf");
    const path = url.pathname;
    const method = req.method ?? "GET";
    const head = method === "HEAD";
    const text = (body: string, type = "text/plain") => {
      res.setHeader("content-type", type);
      res.setHeader("content-length", String(Buffer.byteLength(body)));
      if (head) res.end();
      else res.end(body);
    };
    const bad = (code: number, msg: string) => {
      res.statusCode = code;
      text(msg + "\n");
    };
    // RFC 9110 §15.5.6: a 405 lists the methods the resource does support.
    const allowed = (...methods: string[]) => {
      if (methods.includes(method)) return true;
      res.setHeader("allow", methods.join(", "));
      bad(405, "method not allowed");
      return false;
    };
    if (path === "/") {
      if (!allowed("GET", "HEAD")) return;
      return text(`Hello from paf${opts.name ? ` (${opts.name})` : ""}: a userspace TCP/IP stack for Node.js, speaking HTTP/${req.httpVersion}.\n`);
    }
    const m = /^\/bytes\/(\d{1,16})$/.exec(path);
    if (m) {
      if (!allowed("GET", "HEAD")) return;
      const n = Number(m[1]);
      if (!Number.isSafeInteger(n) || n > MAX_BYTES) return bad(400, `N must be at most ${MAX_BYTES}`);
      res.setHeader("content-type", "application/octet-stream");
      res.setHeader("content-length", String(n));
      if (head) return void res.end();
      let sent = 0;
      const pump = () => {
        while (sent < n) {
          const off = sent % BLOCK.length;
          const len = Math.min(BLOCK.length - off, n - sent);
          sent += len;
          if (!(res as NodeJS.WritableStream).write(BLOCK.subarray(off, off + len))) return void res.once("drain", pump);
        }
        res.end();
      };
      res.once("close", () => (sent = n)); // client went away: stop producing
      return pump();
    }
    if (path === "/sha256" || path === "/echo") {
      if (!allowed("POST", "PUT")) return;
      if (path === "/echo") {
        res.setHeader("content-type", req.headers["content-type"] ?? "application/octet-stream");
        return void (req as NodeJS.ReadableStream).pipe(res as NodeJS.WritableStream);
      }
      const h = createHash("sha256");
      let bytes = 0;
      req.on("data", (d: Buffer) => {
        h.update(d);
        bytes += d.length;
      });
      req.on("end", () => {
        res.setHeader("content-type", "text/plain");
        res.setHeader("x-paf-bytes", String(bytes));
        res.end(h.digest("hex") + "\n");
      });
      return;
    }
    if (path === "/stats") {
      if (!opts.stats) return bad(404, "no stats here");
      if (!allowed("GET", "HEAD")) return;
      return text(JSON.stringify(opts.stats(), null, 1) + "\n", "application/json");
    }
    return bad(404, "not found");
  };
}

export interface DemoWebSocketOptions {
  /** Largest message accepted (bytes); a larger one closes the connection with 1009. Default 32 MiB. */
  maxPayload?: number;
  /** Echoes not yet handed to the connection before reading pauses (bytes). Default 1 MiB. */
  highWaterMark?: number;
}

/**
 * The demo's WebSocket endpoint (RFC 6455) at /ws, as an upgrade hook for httpService /
 * httpsService: every message comes back as it came (text or binary), pings are answered, and a
 * close is answered with the same code and reason (what `ws` does). Other upgrade targets get 400.
 * A peer that sends faster than it reads is paused once `highWaterMark` bytes of echoes wait.
 */
export function demoWebSocket(opts: DemoWebSocketOptions = {}): UpgradeHandler {
  const high = opts.highWaterMark ?? 1024 * 1024;
  const wss = new WebSocketServer({ noServer: true, path: "/ws", maxPayload: opts.maxPayload ?? 32 * 1024 * 1024 });
  wss.on("connection", (ws) => {
    ws.on("error", () => {}); // a protocol error or an oversized message closes only this one
    ws.on("message", (data, isBinary) => {
      ws.send(data, { binary: isBinary }, () => {
        if (ws.isPaused && ws.bufferedAmount < high) ws.resume();
      });
      if (ws.bufferedAmount >= high) ws.pause();
    });
  });
  return (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
}
