/**
 * Small classic services for interop and bulk tests, on every configured family:
 * echo (RFC 862) over UDP and TCP on port 7, discard (RFC 863) on TCP 9, and a chargen-like
 * source (RFC 864) on TCP 19 that streams its pattern as fast as the receiver takes it.
 */
import type { Stack } from "../stack/stack.js";
import type { TcpFlow } from "../stack/tcp/flow.js";

export const SERVICES = ["echo", "discard", "chargen"] as const;
export type ServiceName = (typeof SERVICES)[number];

export interface RunningService {
  close(): Promise<void>;
}

export async function startServices(stack: Stack, names: ServiceName[]): Promise<RunningService[]> {
  const out: RunningService[] = [];
  for (const name of names) {
    if (name === "echo") {
      out.push(...udpEcho(stack));
      out.push(tcp(stack, 7, (f) => f.pipe(f)));
    } else if (name === "discard") {
      out.push(tcp(stack, 9, (f) => f.resume().on("end", () => f.end())));
    } else if (name === "chargen") {
      out.push(tcp(stack, 19, chargen));
    }
  }
  return out;
}

function tcp(stack: Stack, port: number, handler: (f: TcpFlow) => void): RunningService {
  const server = stack.tcp.listen({ port }, (f) => {
    f.on("error", () => {}); // a peer's reset ends only its own connection
    handler(f);
  });
  return { close: async () => void server.close() };
}

/** RFC 864's rotating 72-character lines, written with backpressure until the peer closes. */
function chargen(f: TcpFlow): void {
  const chars = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join("");
  const lines: string[] = [];
  for (let i = 0; i < 95; i++) lines.push((chars + chars).slice(i, i + 72) + "\r\n");
  const block = Buffer.from(lines.join("").repeat(8));
  let open = true;
  f.on("end", () => {
    open = false;
    f.end();
  });
  f.on("close", () => (open = false));
  f.resume();
  const pump = () => {
    while (open && f.writable) if (!f.write(block)) return void f.once("drain", pump);
  };
  pump();
}

function udpEcho(stack: Stack): RunningService[] {
  const out: RunningService[] = [];
  for (const t of ["udp4", "udp6"] as const) {
    let s: ReturnType<typeof stack.udp.createSocket>;
    try {
      s = stack.udp.createSocket(t);
    } catch (e) {
      if ((e as { code?: string }).code === "EAFNOSUPPORT") continue; // the stack runs the other family only
      throw e;
    }
    s.on("message", (msg, rinfo) => s.send(msg, rinfo.port, rinfo.address));
    s.on("error", () => {});
    s.bind(7);
    out.push({ close: () => new Promise<void>((r) => s.close(() => r())) });
  }
  return out;
}
