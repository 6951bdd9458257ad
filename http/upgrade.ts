/**
 * The HTTP/1.1 Upgrade hook (RFC 9110 §7.8) of httpService / httpsService: what a WebSocket
 * server (ws's `handleUpgrade`) or any protocol behind `101 Switching Protocols` attaches to.
 *
 * Once an 'upgrade' listener exists, node:http hands it every request that carries `Upgrade`,
 * including `Upgrade: h2c` (RFC 7540 §3.2), which curl --http2 sends for http:// URLs. RFC 9113
 * §3.1 deprecated that upgrade and node:http never honoured it: without a hook such a request is
 * answered over HTTP/1.1, which RFC 9110 §7.8 allows (a server may ignore Upgrade). A hook would
 * receive it instead (a WebSocket server answers 400), so an h2c-only upgrade is given back to the
 * HTTP/1.1 server without its upgrade headers and is served as if no hook were attached.
 */
import type http from "node:http";
import type { Duplex } from "node:stream";

export type UpgradeHandler = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;

/** The 'upgrade' listener for `server`: h2c-only upgrades back to HTTP/1.1, the rest to `hook`. */
export function upgradeListener(server: http.Server | undefined, hook: UpgradeHandler, taken?: (socket: Duplex) => void): UpgradeHandler {
  return (req, socket, head) => {
    const offered = tokens(req.headers.upgrade);
    if (!server || offered.length === 0 || offered.some((p) => p !== "h2c")) {
      taken?.(socket);
      return hook(req, socket, head);
    }
    // `head` holds what followed the request head (its body, pipelined requests): the request is
    // parsed again from the start by a fresh HTTP/1.1 connection on the same socket.
    socket.unshift(Buffer.concat([headWithoutUpgrade(req), head]));
    server.emit("connection", socket);
  };
}

function tokens(v: string | undefined): string[] {
  return (v ?? "")
    .split(",")
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t !== "");
}

/** The request head as received, minus Upgrade, HTTP2-Settings and their Connection tokens. */
function headWithoutUpgrade(req: http.IncomingMessage): Buffer {
  const drop = new Set(["upgrade", "http2-settings"]);
  const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (drop.has(lower)) continue;
    if (lower === "connection") {
      const rest = tokens(raw[i + 1]).filter((t) => !drop.has(t));
      if (rest.length) lines.push(`${name}: ${rest.join(", ")}`);
      continue;
    }
    lines.push(`${name}: ${raw[i + 1]}`);
  }
  // node:http decodes header bytes as latin1: encoding back the same way gives the bytes received.
  return Buffer.from(lines.join("\r\n") + "\r\n\r\n", "latin1");
}
