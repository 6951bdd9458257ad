/** The userspace stack the CLI commands run on: a TAP device (optionally in a namespace), pcap, options. */
import { Stack, type StackOptions } from "../stack/stack.js";
import { DEFAULT_RX_QUEUE, TapNetif } from "../stack/netif/tap.js";
import { PcapNetif } from "../stack/netif/pcap.js";
import type { Netif, NetifError } from "../stack/netif/netif.js";
import { ipFamily, parseCidr, parseMac } from "../stack/wire/addr.js";
import { UsageError } from "./args.js";

/** `--tap-netns NAME` (or a path) as the path TapNetif.open() takes. */
export const netnsPath = (name: string): string => (name.includes("/") ? name : `/var/run/netns/${name}`);

export interface TapStackConfig {
  tap: string;
  tapNetns?: string | undefined;
  pcap?: string | undefined;
  stack: Omit<StackOptions, "netif">;
  /** TAP receive offloads (partial checksums, TSO super-frames). Default true. */
  offload?: boolean;
  /** The TAP failed under us (deleted, brought down for good): reading has stopped. */
  onTapError?: (err: NetifError) => void;
  /** Told when the kernel's queue toward paf stays shorter than TapNetif's default (no CAP_NET_ADMIN to raise it). */
  onShortQueue?: (msg: string) => void;
}

/** Create (or attach to) the TAP, bring it up, and build a stack on it. */
export function openTapStack(cfg: TapStackConfig): Stack {
  const tap = TapNetif.open(cfg.tap, {
    up: true,
    offload: cfg.offload ?? true,
    ...(cfg.stack.mtu ? { mtu: cfg.stack.mtu } : {}),
    ...(cfg.tapNetns ? { netns: netnsPath(cfg.tapNetns) } : {}),
    ...(cfg.onTapError ? { onError: cfg.onTapError } : {}),
  });
  if (tap.rxQueue > 0 && tap.rxQueue < DEFAULT_RX_QUEUE)
    cfg.onShortQueue?.(
      `paf: the kernel holds only ${tap.rxQueue} frames for paf to read on ${tap.name} and drops the rest (bursts of new connections then cost retransmissions); ` +
        `raising it needs CAP_NET_ADMIN: sudo ip link set ${tap.name} txqueuelen ${DEFAULT_RX_QUEUE}`,
    );
  let netif: Netif = tap;
  if (cfg.pcap) netif = new PcapNetif(netif, cfg.pcap);
  return Stack.create({ netif, ...cfg.stack });
}

/** The stack options the commands share (`paf serve`, `paf get`, `paf bench`), as parsed by parse(). */
export interface StackArgs {
  ipv4?: string | undefined;
  /** `paf serve --dhcp`: the IPv4 address, router and DNS servers from a DHCP server. */
  dhcp?: boolean | undefined;
  ipv6?: string | undefined;
  gateway?: string[] | undefined;
  dns?: string[] | undefined;
  slaac?: boolean | undefined;
  mac?: string | undefined;
  mtu?: string | undefined;
}

/** Validate --ipv4/--dhcp/--ipv6/--gateway/--dns/--slaac/--mac/--mtu into StackOptions; errors name the option. */
export function parseStackOptions(values: StackArgs): Omit<StackOptions, "netif"> {
  const stack: Omit<StackOptions, "netif"> = {};
  let gw4: string | undefined;
  let gw6: string | undefined;
  for (const g of values.gateway ?? []) {
    const f = ipFamily(g);
    if (f === 4) gw4 = g;
    else if (f === 6) gw6 = g;
    else throw new UsageError(`--gateway: "${g}" is not an IP address`);
  }
  if (values.dhcp) {
    if (values.ipv4) throw new UsageError("--dhcp and --ipv4 exclude each other (the address comes from the DHCP server)");
    if (gw4) throw new UsageError("--gateway with an IPv4 address and --dhcp exclude each other (the router comes from the DHCP server)");
    stack.ipv4 = { dhcp: true };
  } else if (values.ipv4) {
    try {
      parseCidr(values.ipv4, 4);
    } catch (e) {
      throw new UsageError(`--ipv4: ${(e as Error).message}`);
    }
    if (!values.ipv4.includes("/")) throw new UsageError(`--ipv4: "${values.ipv4}" needs a prefix length, e.g. ${values.ipv4}/24`);
    stack.ipv4 = { address: values.ipv4, ...(gw4 ? { gateway: gw4 } : {}) };
  } else if (gw4) throw new UsageError("--gateway with an IPv4 address needs --ipv4");
  if (values.ipv6 || values.slaac || gw6) {
    if (values.ipv6) {
      try {
        parseCidr(values.ipv6, 6);
      } catch (e) {
        throw new UsageError(`--ipv6: ${(e as Error).message}`);
      }
    }
    stack.ipv6 = {
      ...(values.ipv6 ? { address: values.ipv6 } : {}),
      ...(gw6 ? { gateway: gw6 } : {}),
      ...(values.slaac ? { slaac: true } : {}),
    };
  }
  for (const d of values.dns ?? []) if (!ipFamily(d)) throw new UsageError(`--dns: "${d}" is not an IP address`);
  if (values.dns?.length) stack.dns = { servers: values.dns };
  if (values.mac) {
    try {
      const m = parseMac(values.mac);
      if (m[0]! & 1) throw new TypeError(`${values.mac} is a multicast MAC`);
      stack.mac = m;
    } catch (e) {
      throw new UsageError(`--mac: ${(e as Error).message}`);
    }
  }
  if (values.mtu !== undefined) {
    const n = Number(values.mtu);
    if (!/^\d+$/.test(values.mtu) || n < 1280 || n > 65521) throw new UsageError(`--mtu must be a whole number from 1280 to 65521, got "${values.mtu}"`);
    stack.mtu = n;
  }
  return stack;
}

/** --tap NAME: an interface name the kernel takes. */
export function checkTapName(name: string): string {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) throw new UsageError(`--tap: "${name}" is not a valid interface name (1-15 characters: letters, digits, _ . -)`);
  return name;
}
