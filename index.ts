/** paf: a userspace TCP/IP stack for Node.js. The public API. */
export { Stack, type StackOptions, type StackLimits, type Ipv4Config, type Ipv6Config, type RouteSpec, type RouteInfo } from "./stack/stack.js";
export { DhcpClient, type DhcpOptions, type DhcpLease, type DhcpEvents, type DhcpState } from "./stack/dhcp.js";
export type { Netif, NetifReceiver, NetifStats, NetifFeatures } from "./stack/netif/netif.js";
export { TapNetif, type TapOptions } from "./stack/netif/tap.js";
export { VirtualSwitch, type VirtualSwitchOptions } from "./stack/netif/vswitch.js";
export { PcapNetif, PcapWriter, readPcap } from "./stack/netif/pcap.js";
export { FaultyNetif, type FaultSpec, type FaultyOptions, type FaultStats, type FaultEvent, type FaultKind, type FaultDirection, type GilbertElliott } from "./stack/netif/faulty.js";
export { SegmentingNetif, type GsoStats } from "./stack/netif/gso.js";
export { RealClock, VirtualClock, type Clock } from "./stack/core/clock.js";
export { Scheduler, type SchedulerOptions } from "./stack/core/scheduler.js";
export { disableAllocationSitePretenuring } from "./stack/core/tuning.js";
export type { TenantOptions } from "./stack/ingress.js";
export { CryptoRandom, SeededRandom, type Random } from "./stack/core/random.js";
export { UdpSocket, type RemoteInfo, type UdpSocketOptions, type UdpSocketEvents } from "./stack/udp.js";
export {
  StackNet,
  NetServer,
  type NetConnectOptions,
  type ServerOptions as NetServerOptions,
  type ListenOptions as NetListenOptions,
  type AddressInfo,
  type ServerEvents as NetServerEvents,
} from "./stack/net.js";
export type { PingOptions, PingResult } from "./stack/ping.js";
export type { TcpFlowEvents } from "./stack/tcp/flow.js";
export { TcpFlow, TcpServer, type ListenOptions, type ConnectOptions, type TcpOptions } from "./stack/tcp/index.js";
export { serve, type Service, type ServeHandle, type ServeOptions } from "./http/serve.js";
export { stackListener, hostListener, unixListener, type Listener, type Flow, type TcpProvider } from "./http/listener.js";
export { httpService, httpsService, type Handler, type HttpLimits, type TlsOptions } from "./http/services.js";
export { demoApp, demoWebSocket, type DemoWebSocketOptions } from "./http/app.js";
export { redirectToHttps, ACME_CHALLENGE_PATH, type RedirectOptions } from "./http/redirect.js";
export type { UpgradeHandler } from "./http/upgrade.js";
export { staticFiles } from "./http/static.js";
export { socketLike } from "./http/listener.js";
export { DnsResolver, type DnsOptions, type LookupOptions, type LookupAddress, type RecordWithTtl, type DnsError } from "./stack/dns.js";
export * from "./http/client/index.js";
export { AcmeClient, AcmeProblem, type AcmeClientOptions, type Order, type Authorization, type Challenge, type ProblemDocument } from "./tls/acme/client.js";
export { Http01Responder } from "./tls/acme/challenge.js";
export {
  provision,
  RenewalScheduler,
  loadStored,
  LETSENCRYPT_STAGING,
  LETSENCRYPT_PRODUCTION,
  DEFAULT_RENEW_DAYS,
  type ProvisionOptions,
  type RenewalOptions,
  type Issued,
} from "./tls/acme/provision.js";
export { stackTransport, hostTransport, type AcmeTransport } from "./tls/acme/transport.js";
export { generateKey as generateAccountKey, jwkThumbprint, type AccountKeyType } from "./tls/acme/jws.js";
export { selfSigned, type SelfSigned } from "./tls/selfsigned.js";
export { runLoad, type LoadOptions, type LoadResult, type LoadRun } from "./http/bench/load.js";
export { buildReport, formatText } from "./http/bench/report.js";
export { renderSvg } from "./http/bench/svg.js";
export { BENCH_SCHEMA, ERROR_KINDS, type BenchReport, type ErrorKind } from "./http/bench/schema.js";
export { Lab, type LabOptions, type LabEnd, type LabAddresses, type LabStack, type LabStackOptions, type LabBridge, type LabBridgeOptions, type LabVeth } from "./lab/lab.js";
export { Netns, withNetns, DEFAULT_SPAWN_TIMEOUT_MS, type SpawnOptions } from "./lab/netns.js";
export { Bridge, type BridgeOptions, type BridgeDirection, type BridgeFaultEvent } from "./lab/bridge.js";
export { sh, CommandError, DEFAULT_TIMEOUT_MS, type ShOptions, type ShResult } from "./lab/shell.js";
