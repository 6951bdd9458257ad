/** A static file handler for `paf serve --root DIR`: GET/HEAD only, no path escapes the root. */
import { createReadStream, statSync } from "node:fs";
import { join, normalize, resolve, sep, extname } from "node:path";
import type { Handler } from "./services.js";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".htm": "text/html; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".css": "text/css",
  ".js": "text/javascript",
  ".mjs": "text/javascript",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".ico": "image/x-icon",
  ".wasm": "application/wasm",
};

export function staticFiles(root: string, fallback?: Handler): Handler {
  const base = resolve(root);
  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://paf");
    let path: string;
    try {
      path = normalize(join(base, decodeURIComponent(url.pathname)));
    } catch {
      res.statusCode = 400;
      return res.end("bad path\n");
    }
    if (path !== base && !path.startsWith(base + sep)) {
      res.statusCode = 403;
      return res.end("forbidden\n");
    }
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(path);
      if (st.isDirectory()) {
        path = join(path, "index.html");
        st = statSync(path);
      }
    } catch {
      if (fallback) return fallback(req, res);
      res.statusCode = 404;
      return res.end("not found\n");
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.statusCode = 405;
      res.setHeader("allow", "GET, HEAD"); // RFC 9110 §15.5.6
      return res.end("method not allowed\n");
    }
    res.setHeader("content-type", TYPES[extname(path).toLowerCase()] ?? "application/octet-stream");
    res.setHeader("content-length", String(st.size));
    if (req.method === "HEAD") return res.end();
    createReadStream(path)
      .on("error", () => res.destroy())
      .pipe(res as NodeJS.WritableStream);
  };
}
