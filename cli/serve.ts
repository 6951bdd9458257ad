/**
 * `paf serve`: bring a userspace stack up on a TAP device and run services on it.
 */
import { parse, listOption, UsageError } from "./args.js";
import { Stack, type StackOptions } from "../stack/stack.js";
import { TapNetif } from "../stack/netif/tap.js";
import { PcapNetif } from "../stack/netif/pcap.js";
import type { Netif } from "../stack/netif/netif.js";
import { ipFamily, parseCidr, parseMac } from "../stack/wire/addr.js";
import { startServices, SERVICES, type ServiceName } from "./services.js";

export const SERVE_USAGE = `usage: paf serve --tap NAME --ipv4 CIDR [--ipv6 CIDR] [--gateway IP]... [--mac MAC]
                 [--slaac] [--tap-netns NAME] [--pcap FILE] [--services echo]

  --tap NAME        TAP device to own (created if absent, attached if it exists)
  --tap-netns NAME  create/attach the TAP inside network namespace NAME (ip netns)
  --ipv4 CIDR       our IPv4 address and prefix, e.g. 198.18.0.2/24
  --ipv6 CIDR       a static IPv6 address, e.g. 2001:db8::2/64 (link-local is always configured)
  --slaac           take IPv6 addresses from router advertisements
  --gateway IP      default gateway (repeat for IPv4 and IPv6)
  --mac MAC         our MAC address (default: random, locally administered)
  --mtu N           L3 MTU (default 1500)
  --pcap FILE       record every frame to FILE (pcap, readable by Wireshark/tcpdump)
  --services LIST   comma-separated: ${SERVICES.join(", ")} (echo: UDP+TCP 7, discard: TCP 9,
                    chargen: TCP 19)`;

export interface ServeConfig {
  tap: string;
  tapNetns: string | undefined;
  stack: Omit<StackOptions, "netif">;
  pcap: string | undefined;
  services: ServiceName[];
}

export function parseServeArgs(argv: string[]): ServeConfig {
  const { values } = parse(argv, {
    tap: { type: "string" },
    "tap-netns": { type: "string" },
    ipv4: { type: "string" },
    ipv6: { type: "string" },
    slaac: { type: "boolean" },
    gateway: { type: "string", multiple: true },
    mac: { type: "string" },
    mtu: { type: "string" },
    pcap: { type: "string" },
    services: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) throw new UsageError(SERVE_USAGE);
  if (!values.tap) throw new UsageError("--tap NAME is required (the TAP device paf owns)");
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(values.tap)) throw new UsageError(`--tap: "${values.tap}" is not a valid interface name (1-15 characters: letters, digits, _ . -)`);
  if (!values.ipv4 && !values.ipv6 && !values.slaac) throw new UsageError("give at least one address: --ipv4 CIDR, --ipv6 CIDR or --slaac");
  const stack: Omit<StackOptions, "netif"> = {};
  let gw4: string | undefined;
  let gw6: string | undefined;
  for (const g of values.gateway ?? []) {
    const f = ipFamily(g);
    if (f === 4) gw4 = g;
    else if (f === 6) gw6 = g;
    else throw new UsageError(`--gateway: "${g}" is not an IP address`);
  }
  if (values.ipv4) {
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
  return {
    tap: values.tap,
    tapNetns: values["tap-netns"],
    stack,
    pcap: values.pcap,
    services: listOption("services", values.services, SERVICES),
  };
}

export async function serve(argv: string[]): Promise<number> {
  const cfg = parseServeArgs(argv);
  let netif: Netif = TapNetif.open(cfg.tap, {
    up: true,
    ...(cfg.stack.mtu ? { mtu: cfg.stack.mtu } : {}),
    ...(cfg.tapNetns ? { netns: cfg.tapNetns.includes("/") ? cfg.tapNetns : `/var/run/netns/${cfg.tapNetns}` } : {}),
  });
  if (cfg.pcap) netif = new PcapNetif(netif, cfg.pcap);
  const stack = Stack.create({ netif, ...cfg.stack });
  const services = await startServices(stack, cfg.services);
  await stack.ready();
  const addrs = stack.addresses().join(" ");
  console.log(`listening on ${cfg.tap} mac ${formatMacText(stack.mac)} ${addrs}${cfg.services.length ? " services " + cfg.services.join(",") : ""}`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  for (const s of services) await s.close();
  await stack.close();
  return 0;
}

function formatMacText(m: Uint8Array): string {
  return [...m].map((b) => b.toString(16).padStart(2, "0")).join(":");
}
