/** Two stacks joined by a (possibly faulty) in-process link, driven by a virtual clock. */
import { Stack, type StackLimits } from "../../../stack/stack.js";
import { VirtualSwitch } from "../../../stack/netif/vswitch.js";
import { FaultyNetif, type FaultSpec } from "../../../stack/netif/faulty.js";
import { SegmentingNetif } from "../../../stack/netif/gso.js";
import { VirtualClock } from "../../../stack/core/clock.js";
import { SeededRandom } from "../../../stack/core/random.js";
import type { TcpFlow } from "../../../stack/tcp/flow.js";
import { createHash } from "node:crypto";
import { runUntil } from "../../helpers/virtual.js";
import { SlabNetif } from "../../helpers/slabnetif.js";

export interface Pair {
  a: Stack;
  b: Stack;
  clock: VirtualClock;
  sw: VirtualSwitch;
  fa: FaultyNetif;
  fb: FaultyNetif;
  /** With `tso`: the software segmentation wrappers the stacks send through. */
  ga?: SegmentingNetif;
  gb?: SegmentingNetif;
  /** With `slab`: the wrappers that hand frames up as a TAP does (reused slots, in batches). */
  sa?: SlabNetif;
  sb?: SlabNetif;
  /** Run the event loop and the virtual clock until cond() holds; throws after maxMs of virtual time. */
  until(cond: () => boolean, what: string, maxMs?: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * `tso`: the stacks send TSO super-segments, cut into wire-size segments in software
 * (SegmentingNetif) before the faults apply, as a TAP with offloads gets them cut by the kernel.
 */
export async function pair(opts: { seed?: number; faults?: FaultSpec; limits?: StackLimits; family?: 4 | 6; tso?: boolean; slab?: boolean } = {}): Promise<Pair> {
  const seed = opts.seed ?? 1;
  const clock = new VirtualClock();
  const sw = new VirtualSwitch();
  const faults = opts.faults ?? {};
  const fa = new FaultyNetif(sw.port("a"), { seed: seed * 2 + 1, clock, tx: faults });
  const fb = new FaultyNetif(sw.port("b"), { seed: seed * 2 + 2, clock, tx: faults });
  const v6 = opts.family === 6;
  const ga = opts.tso ? new SegmentingNetif(fa) : undefined;
  const gb = opts.tso ? new SegmentingNetif(fb) : undefined;
  // `slab`: frames go up from reused slots in batches, as from a TAP (test/helpers/slabnetif.ts).
  const sa = opts.slab ? new SlabNetif(ga ?? fa) : undefined;
  const sb = opts.slab ? new SlabNetif(gb ?? fb) : undefined;
  const a = Stack.create({
    netif: sa ?? ga ?? fa,
    clock,
    random: new SeededRandom(seed * 7 + 1),
    ipv4: { address: "198.18.0.1/24" },
    ...(v6 ? { ipv6: { address: "2001:db8::1/64", dad: false } } : {}),
    ...(opts.limits ? { limits: opts.limits } : {}),
  });
  const b = Stack.create({
    netif: sb ?? gb ?? fb,
    clock,
    random: new SeededRandom(seed * 7 + 2),
    ipv4: { address: "198.18.0.2/24" },
    ...(v6 ? { ipv6: { address: "2001:db8::2/64", dad: false } } : {}),
    ...(opts.limits ? { limits: opts.limits } : {}),
  });
  const until = (cond: () => boolean, what: string, maxMs = 600_000) => runUntil(sw, clock, cond, what, maxMs, 50);
  return { a, b, clock, sw, fa, fb, ...(ga && gb ? { ga, gb } : {}), ...(sa && sb ? { sa, sb } : {}), until, close: async () => void (await Promise.all([a.close(), b.close()])) };
}

export function pattern(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

export const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Collect everything a flow delivers until 'end'. */
export function collect(f: TcpFlow): { chunks: Buffer[]; ended: boolean; bytes: number; error?: Error; data(): Buffer } {
  const st = { chunks: [] as Buffer[], ended: false, bytes: 0, error: undefined as Error | undefined, data: () => Buffer.concat(st.chunks) };
  f.on("data", (d: Buffer) => {
    st.chunks.push(d);
    st.bytes += d.length;
  });
  f.on("end", () => (st.ended = true));
  f.on("error", (e) => (st.error = e));
  return st;
}

/**
 * Two stacks with one connection between them: a client flow on `a` connected to port 80 on `b`.
 * `allowHalfOpen` applies to both ends (default true: tests end each direction themselves).
 */
export async function connected(opts: Parameters<typeof pair>[0] = {}, allowHalfOpen = true): Promise<Pair & { client: TcpFlow; server: TcpFlow }> {
  const p = await pair(opts);
  let server: TcpFlow | undefined;
  p.b.tcp.listen({ port: 80, allowHalfOpen }, (f) => (server = f));
  const cp = p.a.tcp.connect({ host: opts.family === 6 ? "2001:db8::2" : "198.18.0.2", port: 80, allowHalfOpen });
  await p.until(() => server !== undefined, "accept");
  const client = await cp;
  return { ...p, client, server: server! };
}
