/** The userspace stack the CLI commands run on: a TAP device (optionally in a namespace), pcap, options. */
import { Stack, type StackOptions } from "../stack/stack.js";
import { TapNetif } from "../stack/netif/tap.js";
import { PcapNetif } from "../stack/netif/pcap.js";
import type { Netif } from "../stack/netif/netif.js";

/** `--tap-netns NAME` (or a path) as the path TapNetif.open() takes. */
export const netnsPath = (name: string): string => (name.includes("/") ? name : `/var/run/netns/${name}`);

export interface TapStackConfig {
  tap: string;
  tapNetns?: string | undefined;
  pcap?: string | undefined;
  stack: Omit<StackOptions, "netif">;
  /** TAP receive offloads (partial checksums, TSO super-frames). Default true. */
  offload?: boolean;
}

/** Create (or attach to) the TAP, bring it up, and build a stack on it. */
export function openTapStack(cfg: TapStackConfig): Stack {
  let netif: Netif = TapNetif.open(cfg.tap, {
    up: true,
    offload: cfg.offload ?? true,
    ...(cfg.stack.mtu ? { mtu: cfg.stack.mtu } : {}),
    ...(cfg.tapNetns ? { netns: netnsPath(cfg.tapNetns) } : {}),
  });
  if (cfg.pcap) netif = new PcapNetif(netif, cfg.pcap);
  return Stack.create({ netif, ...cfg.stack });
}
