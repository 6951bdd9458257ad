/** Loads the native TAP addon (build/Release/paf_tap.node), from the source tree or from dist/. */
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export interface TapAddon {
  open(name: string, vnetHdr: boolean, multiQueue: boolean, netns: string | null, up: boolean): [number, string];
  startReading(fd: number, slab: Buffer, frameSize: number, maxFrames: number, lengths: Uint32Array, onBatch: (count: number) => void): object;
  stopReading(handle: object): void;
  writeFrames(fd: number, frames: Uint8Array[], start: number, vnetHdrLen: number): number;
  close(fd: number): void;
}

let addon: TapAddon | undefined;

/** The package root: the nearest folder above this file with a package.json. */
function packageRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(d, "package.json"))) return d;
    d = dirname(d);
  }
  throw new Error("paf: cannot find the package root from " + fileURLToPath(import.meta.url));
}

export function loadTapAddon(): TapAddon {
  if (addon) return addon;
  const path = join(packageRoot(), "build", "Release", "paf_tap.node");
  if (!existsSync(path)) {
    const e = new Error(`paf: the TAP addon is not built (${path} is missing): run \`npm install\` or \`make build\` (needs make, gcc and python3)`) as Error & { code: string };
    e.code = "ERR_PAF_ADDON_MISSING";
    throw e;
  }
  addon = createRequire(import.meta.url)(path) as TapAddon;
  return addon;
}
