/**
 * The HTTP-01 responder (RFC 8555 §8.3): a request handler wrapper that answers
 * GET /.well-known/acme-challenge/<token> with the key authorization while the token is
 * registered (an order is pending), and hands every other request to the application.
 */
import type { Handler } from "../../http/services.js";

export const CHALLENGE_PREFIX = "/.well-known/acme-challenge/";

export class Http01Responder {
  private readonly tokens = new Map<string, string>();
  /** Challenge requests answered, and requests under the prefix for unknown tokens. */
  readonly stats = { answered: 0, unknown: 0 };

  /** Start answering `token` with `keyAuthorization`. */
  set(token: string, keyAuthorization: string): void {
    this.tokens.set(token, keyAuthorization);
  }

  delete(token: string): void {
    this.tokens.delete(token);
  }

  get pending(): number {
    return this.tokens.size;
  }

  /** The application with the challenge route in front of it. */
  wrap(app: Handler): Handler {
    return (req, res) => {
      const url = req.url ?? "";
      if (url.startsWith(CHALLENGE_PREFIX) && (req.method === "GET" || req.method === "HEAD")) {
        const token = url.slice(CHALLENGE_PREFIX.length).split("?")[0]!;
        const ka = this.tokens.get(token);
        if (ka !== undefined) {
          this.stats.answered++;
          const body = Buffer.from(ka);
          res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(body.length), "cache-control": "no-store" } as never);
          if (req.method === "HEAD") res.end();
          else res.end(body);
          return;
        }
        this.stats.unknown++;
      }
      app(req, res);
    };
  }
}

/** The answer for requests nobody else takes (paf certify serves nothing but challenges). */
export const notFound: Handler = (_req, res) => {
  res.statusCode = 404;
  res.end("not found\n");
};
