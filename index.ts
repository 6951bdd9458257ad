/** paf: a userspace TCP/IP stack for Node.js. The public API. */
export { Stack, type StackOptions, type StackLimits, type Ipv6Config } from "./stack/stack.js";
export type { Netif, NetifReceiver, NetifStats, NetifFeatures } from "./stack/netif/netif.js";
export { TapNetif, type TapOptions } from "./stack/netif/tap.js";
export { VirtualSwitch, type VirtualSwitchOptions } from "./stack/netif/vswitch.js";
export { PcapNetif, PcapWriter, readPcap } from "./stack/netif/pcap.js";
export { FaultyNetif, type FaultSpec, type FaultyOptions } from "./stack/netif/faulty.js";
export { RealClock, VirtualClock, type Clock } from "./stack/core/clock.js";
export { CryptoRandom, SeededRandom, type Random } from "./stack/core/random.js";
export { UdpSocket, type RemoteInfo } from "./stack/udp.js";
export type { PingOptions, PingResult } from "./stack/ping.js";
