/**
 * Loads the native TAP addon (build/Release/paf_tap.node, built by node-gyp from tap.c). The
 * package root is found by walking up from this file to the nearest package.json, so the same
 * code works from the sources (stack/netif/tap/) and from the compiled tree (dist/stack/netif/tap/).
 */
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export interface TapOpenOptions {
  vnetHdr?: boolean;
  multiQueue?: boolean;
  /** A namespace file such as /var/run/netns/NAME: the TAP is created (or found) there. */
  netns?: string;
  up?: boolean;
  /** TUN_F_* flags for TUNSETOFFLOAD (with vnetHdr). */
  offload?: number;
  /** Raise the device's queue (txqueuelen: frames the kernel holds for us) to this when shorter. */
  rxQueue?: number;
}

/** The addon's functions; the comment at the top of tap.c gives their contracts. */
export interface TapAddon {
  open(name: string, opts: TapOpenOptions): { fd: number; name: string; rxQueue: number };
  startReading(
    fd: number,
    /** maxFrames Buffers of at least frameSize bytes: frame i of a batch is read into slots[i]. */
    slots: readonly Buffer[],
    frameSize: number,
    maxFrames: number,
    lengths: Uint32Array,
    onBatch: (count: number, error?: Error & { code: string }) => void,
    /** timing[0]: ms the last onBatch took, with the nextTicks and microtasks run after it. */
    timing?: Float64Array,
  ): object;
  /** Read frame `index` of later batches into `slot` (the receiver kept the last one); false if refused. */
  setSlot(handle: object, index: number, slot: Buffer): boolean;
  stopReading(handle: object): void;
  /** Frames wait in the kernel's queue (poll with no wait). */
  readable(fd: number): boolean;
  /** TUNSETOFFLOAD on an open TAP: 0, or the errno (EINVAL for flags the kernel does not know). */
  setOffload(fd: number, flags: number): number;
  /** Pause (false) or resume (true) reading. */
  setReading(handle: object, on: boolean): void;
  /** Whether the reading poll keeps the process alive. */
  setRef(handle: object, ref: boolean): void;
  /** Returns the frames consumed; out = [refused, errno of the last refusal, bytes written]. */
  writeFrames(fd: number, frames: readonly Uint8Array[], start: number, vnetHdrLen: number, out: Uint32Array, hdrs?: Uint8Array): number;
  close(fd: number): void;
  /** glibc's M_TRIM_THRESHOLD (see tap.c); false where it does not apply. */
  setMallocTrim(bytes: number): boolean;
  /** Attach the kernel's per-source rate limit (srcfilter.c); returns the fd of its drop counter. */
  setSourceFilter(fd: number, rate: number, burst: number, maxSources: number): number;
  clearSourceFilter(fd: number): void;
  /** Frames the kernel filter dropped, read from its counter. */
  sourceFilterDrops(counterFd: number): number;
}

/** A shared object is process-wide by nature; this only saves the lookup on every open. */
let addon: TapAddon | undefined;

/** The package root: the nearest folder above `from` holding a package.json. */
export function packageRoot(from: string = fileURLToPath(import.meta.url)): string {
  let d = dirname(from);
  for (;;) {
    if (existsSync(join(d, "package.json"))) return d;
    const up = dirname(d);
    if (up === d) throw new Error(`paf: no package.json above ${from}, so build/Release/paf_tap.node cannot be located`);
    d = up;
  }
}

export function loadTapAddon(): TapAddon {
  if (addon) return addon;
  const root = packageRoot();
  const path = join(root, "build", "Release", "paf_tap.node");
  if (!existsSync(path)) {
    const e = new Error(`paf: the TAP addon is not built (${path} is missing): run \`npm install\` or \`make build\` in ${root} (needs make, gcc/g++ and python3)`) as Error & { code: string };
    e.code = "ERR_PAF_ADDON_MISSING";
    throw e;
  }
  addon = createRequire(import.meta.url)(path) as TapAddon;
  return addon;
}
