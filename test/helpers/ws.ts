/** Small waits for `ws` WebSocket events in tests, each bounded in time. */
import { createHash } from "node:crypto";
import type { WebSocket } from "ws";

/** Resolves with the next event's arguments, or rejects after `ms` (and on 'error' while opening). */
export function next<T extends unknown[]>(ws: WebSocket, event: "open" | "message" | "pong" | "close", ms = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no '${event}' within ${ms} ms`)), ms);
    ws.once(event, (...args: unknown[]) => {
      clearTimeout(t);
      resolve(args as T);
    });
    if (event === "open") ws.once("error", reject);
  });
}

/** Send `n` text messages at once and read their echoes back in order; resolves with the count. */
export function echoMany(ws: WebSocket, n: number, ms: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const t = setTimeout(() => done(new Error(`${got} of ${n} echoes within ${ms} ms`)), ms);
    const onMessage = (m: Buffer) => {
      if (m.toString() !== `message ${got}`) return done(new Error(`echo ${got}: got ${m.toString().slice(0, 40)}`));
      if (++got === n) done();
    };
    const done = (err?: Error) => {
      clearTimeout(t);
      ws.off("message", onMessage);
      if (err) reject(err);
      else resolve(got);
    };
    ws.on("message", onMessage);
    for (let i = 0; i < n; i++) ws.send(`message ${i}`);
  });
}

export const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");
