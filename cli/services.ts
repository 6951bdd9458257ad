/**
 * Small classic services for interop and bulk tests: echo (RFC 862) over UDP (and TCP once the
 * stack has TCP).
 */
import type { Stack } from "../stack/stack.js";

export const SERVICES = ["echo"] as const;
export type ServiceName = (typeof SERVICES)[number];

export interface RunningService {
  close(): Promise<void>;
}

export async function startServices(stack: Stack, names: ServiceName[]): Promise<RunningService[]> {
  const out: RunningService[] = [];
  for (const name of names) {
    if (name === "echo") out.push(...udpEcho(stack));
  }
  return out;
}

function udpEcho(stack: Stack): RunningService[] {
  const out: RunningService[] = [];
  const fams: Array<"udp4" | "udp6"> = [];
  if (stack.ipv4.address) fams.push("udp4");
  if (stack.ipv6) fams.push("udp6");
  for (const t of fams) {
    const s = stack.udp.createSocket(t);
    // RFC 862: send back whatever arrives, to where it came from.
    s.on("message", (msg, rinfo) => s.send(msg, rinfo.port, rinfo.address));
    s.on("error", () => {});
    s.bind(7);
    out.push({ close: () => new Promise<void>((r) => s.close(() => r())) });
  }
  return out;
}
