/** The client side: context-based flow resolution, the request API, Node and undici agents. */
export { Ctx, Key, ctx } from "./context.js";
export { ClientError, type Stage } from "./errors.js";
export { happyEyeballs, interleave, type Address } from "./happy.js";
export {
  Connector,
  defaultConnector,
  K,
  RESOLUTION_DELAY_MS,
  stackTcp,
  hostTcp,
  unixSocket,
  startTls,
  stackLookup,
  systemLookup,
  whenConnected,
  type Protocol,
  type Resolved,
  type TlsConfig,
  type Lookup,
  type Resolution,
  type ConnectorStack,
  type ConnectingFlow,
} from "./resolve.js";
export { Client, request, type ClientOptions, type ClientResponse, type RequestOptions, type Body } from "./client.js";
export { PafAgent, PafHttpsAgent, pafDispatcher, type PafAgentOptions } from "./agents.js";
export { runHttp, type HttpConnection } from "./run.js";
