/**
 * The TCP bounds and knobs of a stack (`limits.tcp`), with their defaults and ranges: every one is
 * checked when the stack is made (ERR_OUT_OF_RANGE naming `limits.tcp.<name>`).
 */
import type { CongestionControlName } from "./cc.js";
import { resolveOptions } from "../core/validate.js";

export interface TcpOptions {
  /**
   * Send buffer per connection (bytes) at the start: write() returns false beyond it. It grows
   * (autotuning, after Linux's tcp_sndbuf_expand) to two congestion windows while a writer is
   * held back by it and the path could carry more, up to `maxSendBufferSize`. Default 256 KiB.
   */
  sendBufferSize?: number;
  /** The most the send buffer grows to; equal to sendBufferSize for a fixed buffer. Default 4 MiB (at least sendBufferSize). */
  maxSendBufferSize?: number;
  /**
   * Receive buffer per connection (bytes) at the start: the most we advertise. It grows
   * (autotuning, after Linux's receive buffer "dynamic right-sizing") to twice what the
   * application reads in a round trip, while it reads more than half the buffer per round trip,
   * up to `maxReceiveBufferSize`. Default 256 KiB.
   */
  receiveBufferSize?: number;
  /** The most the receive buffer grows to; equal to receiveBufferSize for a fixed buffer. Default 4 MiB (at least receiveBufferSize). */
  maxReceiveBufferSize?: number;
  /** Out-of-order segments held per connection. Default 1024 (bytes are bounded by the receive buffer). */
  maxOooSegments?: number;
  /** Connections (any state) per stack. Default 65536. */
  maxConnections?: number;
  /**
   * Connections (any state) with one remote address, so that one source cannot take all of the
   * stack's connection slots; its further SYNs are dropped (and its connect()s fail with EMFILE).
   * Default a quarter of `maxConnections`.
   */
  maxConnectionsPerHost?: number;
  /**
   * New passive connections per second (SYNs accepted, SYN cookies included); beyond it SYNs are
   * dropped before any state is made. While over half the burst (one second's worth) is used,
   * one remote address may take at most half of the rate. Default 100000.
   */
  newConnectionsPerSec?: number;
  /**
   * Bytes held in TCP buffers (unacknowledged send data, out-of-order and unread received data)
   * by all connections of the stack together: the hard bound. Windows advertised but not filled
   * count for nothing. Beyond it, writes see backpressure, a connection already holding
   * `minReceiveWindow` takes no more data (dropped, counted; the peer retransmits) and
   * out-of-order segments are dropped. Default 256 MiB.
   */
  maxBufferedBytes?: number;
  /**
   * Memory pressure starts here (Linux's tcp_mem[1]): above it every connection's receive buffer
   * shrinks in proportion, down to `minReceiveWindow` at `maxBufferedBytes`. Default half of
   * `maxBufferedBytes`.
   */
  bufferPressureBytes?: number;
  /**
   * Bytes the connections of one remote address may hold together; its windows shrink from half
   * of it, as for the stack. Default a quarter of `maxBufferedBytes`.
   */
  maxBufferedBytesPerHost?: number;
  /**
   * Receive buffer every connection keeps under any pressure (Linux's tcp_rmem[0]): a newcomer
   * can always send its request. Default 4096.
   */
  minReceiveWindow?: number;
  /**
   * A connection the application has closed (destroyed) while data or its FIN were still to be
   * delivered is reset once its peer has acknowledged nothing new for this long (ms): a peer that
   * stopped reading, or never finishes closing. One still taking data lives on. Default 60000.
   */
  orphanTimeoutMs?: number;
  /** Half-open connections per stack; beyond it (or a listener's backlog) SYN cookies answer. Default 4096. */
  synQueueSize?: number;
  /** "cubic" (default) or "newreno". */
  congestionControl?: CongestionControlName;
  /** RFC 6298 bounds (ms). Defaults: min 200 (Linux's), max 120000, initial 1000. */
  minRtoMs?: number;
  maxRtoMs?: number;
  initialRtoMs?: number;
  /** Retransmission timeouts before a connection is aborted with ETIMEDOUT (like tcp_retries2). Default 15. */
  maxRetransmits?: number;
  /** SYN retransmissions before connect() fails with ETIMEDOUT (like tcp_syn_retries). Default 6. */
  synRetries?: number;
  /**
   * SYN-ACK retransmissions before a half-open connection (SYN-RECEIVED) is dropped, like Linux's
   * tcp_synack_retries: with the initial 1 s RTO doubling, 5 keeps one about 63 s. Default 5.
   */
  synAckRetries?: number;
  /** Delayed ACK timeout (ms). Default 40 (Linux's minimum; RFC 9293 allows up to 500). */
  delayedAckMs?: number;
  /** Maximum segment lifetime (ms); TIME-WAIT lasts 2 x MSL. Default 30000. */
  mslMs?: number;
  /**
   * Connections in TIME-WAIT at once (Linux's tcp_max_tw_buckets); beyond it a closing
   * connection skips TIME-WAIT (counted). Default 32768.
   */
  maxTimeWait?: number;
  /** FIN-WAIT-2 timeout after our FIN is acknowledged and the peer never closes (ms, 0 = never). Default 60000. */
  finWait2TimeoutMs?: number;
  /** Keepalive: idle time before the first probe, interval, probes before ETIMEDOUT. Defaults 7200000, 75000, 9. */
  keepAliveIdleMs?: number;
  keepAliveIntervalMs?: number;
  keepAliveProbes?: number;
  /** RFC 7323 / RFC 2018 options offered. Default true for all three. */
  windowScaling?: boolean;
  timestamps?: boolean;
  sack?: boolean;
  /** RFC 3042 limited transmit. Default true. */
  limitedTransmit?: boolean;
  /** RFC 8985 §7 tail loss probes. Default true. */
  tailLossProbe?: boolean;
  /** RSTs for segments to closed ports, and RFC 5961 challenge ACKs, per second. Default 100 each. */
  rstRate?: number;
  challengeAckRate?: number;
  /** Ephemeral port range (RFC 6056). Default 49152-65535. */
  ephemeralLow?: number;
  ephemeralHigh?: number;
}

export type TcpOptionsResolved = Required<TcpOptions>;

const MiB = 1024 * 1024;
const HOUR = 3_600_000;

/** The defaults, resolved once (frozen: shared by every stack made without limits.tcp). */
const DEFAULTS: TcpOptionsResolved = Object.freeze(resolve({}));

export function resolveTcpOptions(o?: TcpOptions): TcpOptionsResolved {
  return o === undefined ? DEFAULTS : resolve(o);
}

function resolve(o: TcpOptions): TcpOptionsResolved {
  const maxBuffered = o.maxBufferedBytes ?? 256 * MiB;
  const maxConnections = o.maxConnections ?? 65536;
  const r = resolveOptions<TcpOptions>("limits.tcp", o, {
    sendBufferSize: [256 * 1024, 1024, 1 << 30],
    maxSendBufferSize: [4 * MiB, 1024, 1 << 30],
    receiveBufferSize: [256 * 1024, 1024, 1 << 30],
    maxReceiveBufferSize: [4 * MiB, 1024, 1 << 30],
    maxOooSegments: [1024, 1, 1 << 20],
    maxConnections: [65536, 1, 1 << 24],
    maxConnectionsPerHost: [Math.max(1, Math.floor(maxConnections / 4)), 1, 1 << 24],
    newConnectionsPerSec: [100_000, 1, 1e9],
    maxBufferedBytes: [256 * MiB, 64 * 1024, 2 ** 40],
    bufferPressureBytes: [Math.floor(maxBuffered / 2), 0, 2 ** 40],
    maxBufferedBytesPerHost: [Math.floor(maxBuffered / 4), 4096, 2 ** 40],
    minReceiveWindow: [4096, 536, 1 << 20],
    orphanTimeoutMs: [60_000, 100, 24 * HOUR],
    synQueueSize: [4096, 1, 1 << 20],
    congestionControl: { default: "cubic", oneOf: ["cubic", "newreno"] },
    minRtoMs: [200, 1, 60_000],
    maxRtoMs: [120_000, 100, 24 * HOUR],
    initialRtoMs: [1000, 1, 60_000],
    maxRetransmits: [15, 1, 100],
    synRetries: [6, 0, 100],
    synAckRetries: [5, 0, 100],
    delayedAckMs: [40, 1, 500],
    mslMs: [30_000, 0, HOUR],
    maxTimeWait: [32768, 0, 1 << 24],
    finWait2TimeoutMs: [60_000, 0, 24 * HOUR],
    keepAliveIdleMs: [7_200_000, 1, 24 * HOUR * 30],
    keepAliveIntervalMs: [75_000, 1, 24 * HOUR],
    keepAliveProbes: [9, 1, 1000],
    windowScaling: [true],
    timestamps: [true],
    sack: [true],
    limitedTransmit: [true],
    tailLossProbe: [true],
    rstRate: [100, 0, 1_000_000],
    challengeAckRate: [100, 0, 1_000_000],
    ephemeralLow: [49152, 1, 65535],
    ephemeralHigh: [65535, 1, 65535],
  });
  // A buffer never starts above its own maximum: the larger of the two wins.
  r.maxSendBufferSize = Math.max(r.maxSendBufferSize, r.sendBufferSize);
  r.maxReceiveBufferSize = Math.max(r.maxReceiveBufferSize, r.receiveBufferSize);
  return r;
}
