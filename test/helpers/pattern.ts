/** What the demo app's /bytes/N must hash to, computed independently of the app's streaming. */
import { createHash } from "node:crypto";
import { patternByte } from "../../http/app.js";

export function expectedPatternSha256(n: number): string {
  const h = createHash("sha256");
  const chunk = Buffer.alloc(65536);
  for (let i = 0; i < chunk.length; i++) chunk[i] = patternByte(i);
  for (let left = n; left > 0; left -= chunk.length) h.update(chunk.subarray(0, Math.min(chunk.length, left)));
  return h.digest("hex");
}
