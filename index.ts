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
export { TcpFlow, TcpServer, type ListenOptions, type ConnectOptions, type TcpOptions } from "./stack/tcp/index.js";
export { serve, type Service, type ServeHandle, type ServeOptions } from "./http/serve.js";
export { stackListener, hostListener, unixListener, type Listener, type Flow, type TcpProvider } from "./http/listener.js";
export { httpService, httpsService, type Handler, type HttpLimits, type TlsOptions } from "./http/services.js";
export { demoApp } from "./http/app.js";
export { staticFiles } from "./http/static.js";
