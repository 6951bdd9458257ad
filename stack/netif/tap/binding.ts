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
    /**
     * Buffers of at least frameSize bytes: maxFrames (frame i of a batch is read into slots[i]),
     * or with `ids` at least 2 x maxFrames, and then io_uring may read (frame i in slots[ids[i]]).
     */
    slots: readonly Buffer[],
    frameSize: number,
    maxFrames: number,
    lengths: Uint32Array,
    onBatch: (count: number, error?: Error & { code: string }) => void,
    /** timing[0]: ms the last onBatch took, with the nextTicks and microtasks run after it. */
    timing?: Float64Array,
    /** maxFrames entries: the slot frame i of a batch is in (always i with read(2)). */
    ids?: Uint16Array,
  ): object;
  /** Frames wait to be handed up: read by io_uring and not yet taken, or in the TAP's queue. */
  pending(handle: object): boolean;
  /** How the reader reads: io_uring (a multishot read, Linux 6.7+) or read(2). */
  readerMode(handle: object): "io_uring" | "read";
  /** Whether startReading can use io_uring on this kernel. */
  uringSupported(): boolean;
  /** Read into `slot` instead of slots[index] from now on (the receiver kept its frame); false if refused (with io_uring: a slot not in the last batch). */
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
  /**
   * Returns the frames consumed; out = [refused, errno of the last refusal, bytes written]. With a
   * writer (openWriter), two or more frames are written through io_uring, up to 64 per system call.
   */
  writeFrames(fd: number, frames: readonly Uint8Array[], start: number, vnetHdrLen: number, out: Uint32Array, hdrs?: Uint8Array, writer?: object): number;
  /** io_uring for writeFrames on this TAP (Linux 6.7+, io_uring allowed); null where it cannot. */
  openWriter(fd: number): object | null;
  /** Free a writer's ring; call before close(fd). */
  closeWriter(writer: object): void;
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
