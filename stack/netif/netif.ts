/**
 * The network interface contract: the lowest layer of a stack. A netif moves whole Ethernet
 * frames (no preamble, no FCS). Everything above it is the same whether frames come from a
 * Linux TAP device, an in-process virtual switch, or a wrapper (pcap, fault injection).
 */
import { DOUBLE_ZERO, plain } from "../core/double.js";

/** Offload features a netif may support; upper layers must work with all of them off. */
export interface NetifFeatures {
  /**
   * The netif accepts frames whose L4 checksum is left for it to complete (TxMeta.csumPartial)
   * and may deliver frames whose checksum was already verified (virtio-net header, IFF_VNET_HDR).
   * A wrapper that does not pass TxMeta on must not claim it.
   */
  checksumOffload: boolean;
  /** Largest frame the netif accepts in one `send` (GSO/TSO lets it exceed the MTU). */
  maxFrameSize: number;
  /**
   * TCP segmentation offload: the largest IP packet the netif takes in one frame sent with a
   * `gsoSize` (TxMeta), for the kernel to cut into segments (and to complete the checksum of).
   * 0 or absent: none, and no frame is ever sent with a gsoSize.
   */
  tso?: number;
  /**
   * Received frames stay as they are until the receiver's batchEnd() has returned, not only
   * during frame() (a TAP reads into its slots again only at its next read). TCP then hands the
   * small segments one connection gets in a batch up as one chunk, copied together at the end
   * (TcpEnv.holdInput). A wrapper that keeps, delays or replaces frames must not claim it. Absent: false.
   */
  rxKeptUntilBatchEnd?: boolean;
}

/** What comes with a frame to send, beside its bytes. */
export interface TxMeta {
  /**
   * The frame carries a TCP super-segment (TSO): cut it into segments of this many payload
   * bytes. Its TCP checksum field holds only the pseudo-header sum (a partial checksum the
   * netif's kernel completes). Only sent to a netif whose features.tso is set.
   */
  gsoSize?: number;
  /**
   * The frame's TCP or UDP checksum field holds only the pseudo-header sum, for the netif to
   * complete (a TAP: VIRTIO_NET_HDR_F_NEEDS_CSUM; the kernel then does not even compute it for
   * its own sockets). Only sent to a netif whose features.checksumOffload is set, for an
   * unfragmented IPv4 packet without options or an IPv6 packet without extension headers.
   */
  csumPartial?: boolean;
}

/** TxMeta for a plain frame whose checksum the netif completes. */
export const CSUM_PARTIAL: TxMeta = Object.freeze({ csumPartial: true });

export interface RxMeta {
  /** The L4 checksum was verified by the lower layer (vnet header DATA_VALID). */
  csumValid?: boolean;
}

/** What a netif calls with received frames. */
export interface NetifReceiver {
  /**
   * One received frame. The view is only valid during the call (it points into a reused
   * slab), or until batchEnd() has returned where the netif says so (rxKeptUntilBatchEnd): a
   * layer that keeps bytes must copy them.
   */
  frame(buf: Uint8Array, meta?: RxMeta): void;
  /**
   * End of a batch of frames read together (lets upper layers coalesce ACKs, flush queues). A
   * netif that calls it once must end every batch with it: the receiver then stops scheduling
   * an end of its own after each first frame.
   */
  batchEnd?(): void;
  /**
   * For a netif that has `poll`: frames are waiting, call `poll()` when it is this receiver's
   * turn. Called once; again only after a poll() that returned false (queue emptied). A receiver
   * without `ready` gets frames pushed, as from any netif.
   */
  ready?(): void;
  /**
   * Asked now and then during a batch by a netif that can hold frames back (its `poll` delivers
   * them later): true when the receiver has used its share of this turn, so the netif ends the
   * batch there and calls `ready()`.
   */
  overBudget?(): boolean;
  /**
   * From a netif that can tell: the last batch took `ms` in all, including the nextTicks and
   * microtasks it caused (application work) that ran before the netif got control back.
   */
  afterBatch?(ms: number): void;
}

export interface Netif {
  /** A human-readable name (the TAP's name, "vswitch0:3", ...). */
  readonly name: string;
  /** Largest IP packet (L3 MTU, bytes after the Ethernet header) the link carries. */
  readonly mtu: number;
  readonly features: NetifFeatures;
  /** Begin delivering frames to `rx`. Called once. */
  start(rx: NetifReceiver): void;
  /**
   * Queue one frame for transmission. The netif takes ownership of `frame` (the caller must not
   * modify it afterwards). Frames queued in one tick are written together. Returns false if the
   * frame was dropped because the transmit queue is full (counted in `stats().txDropped`).
   */
  send(frame: Uint8Array, meta?: TxMeta): boolean;
  /**
   * A buffer for one frame of `len` bytes to pass to `send()`, which this netif uses again once it
   * has written the frame (see FramePool). Its contents are undefined: the caller writes every
   * byte. Absent: the caller makes a `new Uint8Array(len)`.
   */
  allocFrame?(len: number): Uint8Array;
  /** Counters kept by the netif itself. */
  stats(): NetifStats;
  /**
   * A netif that holds received frames until asked (an in-process switch port): deliver up to
   * `max` of them now, then `batchEnd()`; true if frames are left. Used with a receiver that has
   * `ready`, so a scheduler decides when each stack's frames are processed.
   */
  poll?(max: number): boolean;
  /**
   * Called while a received frame is being handed up, with a view into it: may the receiver keep
   * the view (hand it to the application) instead of copying it? True: nothing will write over
   * those bytes again (a switch port's frames were the sender's, given up at send(); a TAP gives
   * up the receive slot of a large frame and reads into a new one), and the receiver must not
   * write to them either. False: the frame's memory is used again after the batch (a TAP's slot
   * of a small frame), so what is kept must be copied. Absent: always false.
   */
  adopt?(view: Uint8Array): boolean;
  /**
   * Do received frames wait to be handed up (in the kernel's queue, or read and held for the
   * receiver's turn)? A stack asks before a retransmission timer fires: while the event loop was
   * busy, the ACK the timer waits for may be among them.
   */
  inputPending?(): boolean;
  /** Stop delivering frames for now (they wait, e.g. in the kernel's queue), and start again. */
  pause?(): void;
  resume?(): void;
  /**
   * Have the device drop frames of any one source (an IP source address with its protocol) past
   * `perSec` frames per second, `burst` saved up, before they reach the stack (a TAP: an eBPF
   * filter in the kernel). Throws NetifError if the device cannot (no privilege, old kernel).
   */
  limitSources?(perSec: number, burst: number, maxSources: number): void;
  /** Frames dropped by limitSources so far. */
  sourceLimitDrops?(): number;
  /** Whether the netif keeps the process alive (Node's ref/unref; a TAP's fd poll does by default). */
  ref?(): void;
  unref?(): void;
  /** Stop delivering, release the device. Idempotent. */
  close(): Promise<void>;
}

export interface NetifStats {
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  rxDropped: number;
  txDropped: number;
}

export function emptyNetifStats(): NetifStats {
  return { rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, rxDropped: 0, txDropped: 0 };
}

/**
 * The counters a netif keeps and adds to per frame: the byte counts, which pass 2^30, start as
 * doubles (core/double.ts). Give them out through netifStatsOf.
 */
export function netifCounters(): NetifStats {
  return { rxFrames: 0, rxBytes: DOUBLE_ZERO, txFrames: 0, txBytes: DOUBLE_ZERO, rxDropped: 0, txDropped: 0 };
}

/** A copy of netifCounters' counters to give out (no -0). */
export function netifStatsOf(c: NetifStats): NetifStats {
  return { ...c, rxBytes: plain(c.rxBytes), txBytes: plain(c.txBytes) };
}

/**
 * Frames up to this size are cut from a shared slab (ACKs and small requests are most frames:
 * one allocation per slab, not per frame), larger ones get their own memory, so a receiver may
 * keep them (Netif.adopt) without pinning a slab of others. Plain Uint8Arrays either way (not
 * Node's Buffer.allocUnsafe: the frame paths would see two kinds of array, and Buffer's
 * subarray runs a JS constructor).
 */
const POOLED_FRAME_MAX = 512;
const FRAME_SLAB = 16 * 1024;
let slab: ArrayBuffer | undefined;
let slabUsed = FRAME_SLAB;

/** A frame buffer for a netif without `allocFrame`. */
export function newFrame(len: number): Uint8Array {
  if (len > POOLED_FRAME_MAX) return new Uint8Array(len);
  if (slabUsed + len > FRAME_SLAB) {
    slab = new ArrayBuffer(FRAME_SLAB);
    slabUsed = 0;
  }
  const f = new Uint8Array(slab!, slabUsed, len);
  slabUsed = (slabUsed + len + 7) & ~7;
  return f;
}

export const ETH_HEADER_LEN = 14;
export const DEFAULT_MTU = 1500;

/** Errors raised by netifs carry a stable code, like Node's system errors. */
export class NetifError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = "NetifError";
  }
}
