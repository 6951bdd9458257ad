/**
 * A Linux TAP device as a netif. Frames are read in batches into reused slots by the native addon
 * (one JS call per batch, nothing allocated per frame but the view handed to the receiver; a large
 * frame whose data the receiver keeps gives up its slot, see adopt()), and frames sent during one
 * tick are written by one native call.
 *
 * The virtio-net header (IFF_VNET_HDR) can be switched on without changing the layers above: it
 * is stripped on receive (DATA_VALID / NEEDS_CSUM become RxMeta.csumValid) and prepended on send
 * by the addon, without copying the frame: zeroed ("nothing to offload"), or NEEDS_CSUM for a TCP
 * or UDP packet sent with a partial checksum (TxMeta.csumPartial: the kernel completes it), with
 * a gso type for a TCP or UDP super-frame.
 */
import { loadTapAddon, type TapAddon } from "./tap/binding.js";
import { FramePool } from "./framepool.js";
import { coalesceUdp, isPlain, MARK_CSUM, startsRun } from "./uso.js";
import { IPPROTO_TCP } from "../wire/tcp.js";
import { netifCounters, netifStatsOf, NetifError, type Netif, type NetifFeatures, type NetifReceiver, type NetifStats, DEFAULT_MTU, ETH_HEADER_LEN, type RxMeta, type TxMeta } from "./netif.js";

export interface TapOptions {
  /** L3 MTU of the link. Default 1500 (DEFAULT_MTU). */
  mtu?: number;
  /** Use the virtio-net header (offloads become possible later). Default false. */
  vnetHdr?: boolean;
  /**
   * Offloads both ways (implies vnetHdr): the kernel hands over its TCP segments without computing
   * their checksums (TUN_F_CSUM: they never left the machine) and unsegmented, up to 64 KB a frame
   * (TUN_F_TSO4/6), which the stack takes as one large segment; and it takes TCP super-segments
   * from the stack (features.tso) and cuts them itself. Cuts the per-frame cost of bulk transfers.
   * Falls back to none when the kernel refuses them. Default false: the offloads are then switched
   * off explicitly, since a persistent TAP keeps those its last user set, and without a vnet header
   * a datagram left unchecksummed would look corrupt.
   */
  offload?: boolean;
  /**
   * With offloads, also write runs of datagrams of one UDP flow (same headers, equal sizes, sent
   * in one tick) as one super-frame the kernel cuts back into the same datagrams (UDP GSO:
   * VIRTIO_NET_HDR_GSO_UDP_L4, stack/netif/uso.ts): one write(2) per run instead of one per
   * datagram. Used when the kernel takes it (Linux 6.2+, probed at open: `udpSegmentation` tells).
   * Default true.
   */
  udpSegmentation?: boolean;
  /** Open one queue of a multi-queue TAP (must match how the TAP was created). Default false. */
  multiQueue?: boolean;
  /** Create/attach the TAP inside this network namespace (a path such as /var/run/netns/NAME). */
  netns?: string;
  /** Bring the interface up (kernel side) if it is not. Default false. */
  up?: boolean;
  /** Frames read per native call, i.e. the most frames handed up between two batchEnd(). Default 64. */
  batch?: number;
  /**
   * Read through io_uring where the kernel can (Linux 6.7+: one multishot read, no system call
   * per frame; `TapNetif.readerMode` says which is in use). It keeps twice `batch` receive slots
   * instead of `batch`, so the kernel has free ones while a batch is handed up. Frames sent in
   * one flush go through io_uring too, up to 64 per system call (`writerMode`). Default true,
   * unless the environment has PAF_TAP_IO_URING=0; false: read(2) and writev(2), one frame per call.
   */
  ioUring?: boolean;
  /**
   * Bytes of one receive slot (a batch has `batch` of them). A frame that fills its slot is taken as truncated and
   * dropped (rxDropped), so a slot must be larger than the largest frame expected. Default: the
   * MTU + Ethernet header + VLAN tag + vnet header (with offloads: a 64 KB IP packet instead of
   * the MTU), rounded up to 64, at least 2048.
   */
  frameSize?: number;
  /** Frames waiting to be written before send() drops and counts (txDropped). Default 2048. */
  queueLimit?: number;
  /**
   * Frames the kernel may hold for the stack to read: the TAP's txqueuelen (the tun driver's
   * ring), raised to this at open when shorter, never lowered. Beyond it the kernel drops (the
   * TAP's "TX dropped" in `ip -s link`): with Linux's 1000 a burst of 400 TLS handshakes lost
   * 2,655 frames to it and paid retransmission timeouts. Raising it needs CAP_NET_ADMIN; without
   * it (a user's persistent TAP) the TAP keeps its length, read back in `rxQueue`. Default 4096;
   * 0 leaves the device as it is.
   */
  rxQueue?: number;
  /**
   * When frames sent during a tick are written: "microtask" (default) writes at the end of the
   * current callback (one write batch per received batch, lowest latency); "immediate" waits for
   * the check phase and so also coalesces sends from several timers. See scripts/bench-tap-rx.mjs.
   */
  flush?: "microtask" | "immediate";
  /** Called once if the device goes away under us (reading stops). Default: process.emitWarning. */
  onError?: (err: NetifError) => void;
}

/** struct virtio_net_hdr (no mergeable buffers): flags, gso_type, hdr_len, gso_size, csum_start, csum_offset. */
const VNET_HDR_LEN = 10;
const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
const VIRTIO_NET_HDR_F_DATA_VALID = 2;
const VIRTIO_NET_HDR_GSO_NONE = 0;
const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
const VIRTIO_NET_HDR_GSO_UDP_L4 = 5;
const VIRTIO_NET_HDR_GSO_ECN = 0x80;
/** TUNSETOFFLOAD flags: partial checksums, TSO for IPv4 and IPv6. */
const TUN_F_CSUM = 0x01;
const TUN_F_TSO4 = 0x02;
const TUN_F_TSO6 = 0x04;
/** UDP segmentation (Linux 6.2+): probed, then set back off (paf does not take UDP super-frames in). */
const TUN_F_USO4 = 0x20;
const TUN_F_USO6 = 0x40;
const OFFLOADS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
/** Largest IP packet (64 KB) plus Ethernet header and a VLAN tag: one GSO frame. */
const GSO_MAX_FRAME = 65535 + 14 + 4;
const VLAN_TAG_LEN = 4;
const DEFAULT_BATCH = 64;
/** Views at least this long may keep their frame's slot (adopt): half a TSO slot. */
const ADOPT_MIN = 32 * 1024;
const DEFAULT_QUEUE_LIMIT = 2048;
/** TapOptions.rxQueue: the kernel's queue toward the stack (frames), and its most. */
export const DEFAULT_RX_QUEUE = 4096;
const MAX_RX_QUEUE = 1 << 20;
/** Frames queued in one tick beyond which send() writes at once instead of waiting for the flush. */
const WRITE_EARLY = 256;
/** After this many flushes in a row that hit EAGAIN, retry on a 1 ms timer rather than spin. */
const EAGAIN_SPIN_LIMIT = 3;
/** close() waits this long at most for a full kernel queue to take the last frames. */
const CLOSE_DRAIN_MS = 100;
/**
 * Written transmit buffers kept for reuse: up to 512 MTU-sized ones (~0.8 MB at MTU 1500) and,
 * with offloads, 128 TSO-sized ones (~8.4 MB; a 4 MiB flight queues ~70 at once), per TAP.
 * Beyond it buffers go to the GC.
 */
const TX_POOL_KEEP = 512;
const TX_POOL_KEEP_TSO = 128;

export class TapNetif implements Netif {
  readonly features: NetifFeatures;
  /** The last error the device reported (a refused write or a dead device), for diagnostics. */
  lastError: NetifError | undefined;
  private readonly addon: TapAddon;
  private fd: number;
  private reader: object | undefined;
  /** io_uring for writes (the addon's openWriter), or undefined: writev(2) per frame. */
  private writer: object | undefined;
  /**
   * Where frames are read, one Buffer each (own memory, so one can be given up): `batch` of them
   * with read(2), twice that with io_uring. Frame i of a batch is in slots[ids[i]].
   */
  private readonly slots: Buffer[];
  /** Written by the addon when reading starts (i with read(2)). */
  private readonly ids: Uint16Array;
  /** The position in the batch of the frame being handed up, -1 between frames (what adopt() may give away). */
  private current = -1;
  /** Slots (ids) given up during this delivery, in delivery order, replaced at its end. */
  private readonly given: number[] = [];
  private readonly lengths: Uint32Array;
  private readonly frameSize: number;
  private readonly hdrLen: number;
  /** Offloads on: TSO super-frames are accepted, and sent. */
  private readonly gso: boolean;
  /** Virtio-net headers of the frames being written (grown as needed, reused). */
  private txHdrs = Buffer.alloc(0);
  private queue: Uint8Array[] = [];
  /**
   * The gso_size of each queued frame, in step with `queue`: 0 a plain frame, > 0 a TCP
   * super-segment, < 0 (minus the datagram size) a UDP super-frame, MARK_CSUM a plain frame whose
   * checksum the kernel completes; how many are not 0 (they need a virtio-net header of their own).
   */
  private gsoSizes: number[] = [];
  private gsoQueued = 0;
  /** Datagrams each queued frame carries, in step with `queue` once a UDP run was merged; else empty (1 each). */
  private counts: number[] = [];
  /** UDP segmentation on transmit is in use (TapOptions.udpSegmentation, and the kernel takes it). */
  readonly udpSegmentation: boolean;
  /** UDP super-frames written and the datagrams they carried. */
  readonly usoStats = { superFrames: 0, datagrams: 0 };
  /** Received frames whose slot the receiver kept (adopt): handed up without a copy. */
  rxAdopted = 0;
  private flushScheduled = false;
  /** Frames are being handed up (deliver): a flush they need comes at the end of it. */
  private delivering = false;
  private flushAfterDelivery = false;
  private eagainRuns = 0;
  private readonly writeOut = new Uint32Array(3);
  private readonly queueLimit: number;
  private readonly flushMode: "microtask" | "immediate";
  private readonly onError: (err: NetifError) => void;
  private readonly st: NetifStats = netifCounters();
  private closing: Promise<void> | undefined;
  private rx: NetifReceiver | undefined;
  private paused = false;
  private refed = true;
  /** The addon writes the duration (ms) of the last onBatch call here, follow-up work included. */
  private readonly timing = new Float64Array(1);
  /** Frames [restFrom, restTo) of the last batch wait for the receiver's next turn (see poll()). */
  private restFrom = 0;
  private restTo = 0;
  private readonly meta: RxMeta = { csumValid: false };
  private readonly flushNow = (): void => this.flush();
  /** Transmit buffers used again once written (see FramePool and TX_POOL_KEEP). */
  private readonly txPool: FramePool;
  /** The kernel source limit's drop counter (a BPF map fd), -1 without one; drops of earlier ones. */
  private filterCounter = -1;
  private dropBase = 0;

  private constructor(
    readonly name: string,
    fd: number,
    readonly mtu: number,
    opts: TapOptions,
    addon: TapAddon,
    /** Frames the kernel holds for this stack to read before it drops (the TAP's txqueuelen); 0 if unknown. */
    readonly rxQueue: number,
    uso: boolean,
  ) {
    this.addon = addon;
    this.fd = fd;
    this.hdrLen = opts.vnetHdr || opts.offload ? VNET_HDR_LEN : 0;
    this.gso = !!opts.offload;
    this.udpSegmentation = this.gso && uso;
    const batch = opts.batch ?? DEFAULT_BATCH;
    const largest = this.gso ? GSO_MAX_FRAME : mtu + ETH_HEADER_LEN + VLAN_TAG_LEN;
    this.frameSize = opts.frameSize ?? Math.max(2048, roundUp(largest + this.hdrLen + 1, 64));
    // io_uring (TapOptions.ioUring and the kernel) reads into twice the batch's slots.
    const uring = (opts.ioUring ?? process.env.PAF_TAP_IO_URING !== "0") && addon.uringSupported();
    this.slots = Array.from({ length: uring ? 2 * batch : batch }, () => Buffer.allocUnsafeSlow(this.frameSize));
    // And writes a flush's frames through io_uring, up to 64 per system call (see writerMode).
    this.writer = uring ? (addon.openWriter(fd) ?? undefined) : undefined;
    this.ids = new Uint16Array(batch);
    this.lengths = new Uint32Array(batch);
    this.queueLimit = opts.queueLimit ?? DEFAULT_QUEUE_LIMIT;
    this.flushMode = opts.flush ?? "microtask";
    this.onError = opts.onError ?? ((e) => process.emitWarning(`TAP ${this.name}: ${e.message}`, { code: e.code }));
    // With offloads the kernel takes TCP super-segments and cuts them itself (TSO on transmit).
    // A slot is read into again only at the next read, after the batch has ended.
    // With the virtio-net header the kernel completes checksums (NEEDS_CSUM, TxMeta.csumPartial).
    this.features = { checksumOffload: this.hdrLen > 0, maxFrameSize: mtu + ETH_HEADER_LEN, tso: this.gso ? 65535 : 0, rxKeptUntilBatchEnd: true };
    const small = roundUp(mtu + ETH_HEADER_LEN, 64);
    this.txPool = this.gso ? new FramePool([small, roundUp(GSO_MAX_FRAME, 64)], [TX_POOL_KEEP, TX_POOL_KEEP_TSO]) : new FramePool([small], [TX_POOL_KEEP]);
  }

  /**
   * Drop, in the kernel, frames of any one source (an IPv4/IPv6 source address with its protocol)
   * past `perSec` frames per second with `burst` saved up, tracking at most `maxSources` (the
   * least recently seen forgotten first): an eBPF filter on the TAP (TUNSETFILTEREBPF) runs
   * before a frame is queued for us, so a flood costs this process nothing. Replaces an earlier
   * limit. Needs CAP_BPF and CAP_NET_ADMIN; throws NetifError (EPERM, EINVAL, ...) otherwise.
   */
  limitSources(perSec: number, burst: number, maxSources: number): void {
    const int = (v: number, lo: number, hi: number, what: string) => {
      if (!Number.isInteger(v) || v < lo || v > hi) throw new NetifError(`limitSources: ${what} must be a whole number in ${lo}..${hi} (got ${v})`, "EINVAL");
    };
    int(perSec, 1, 10_000_000, "perSec");
    int(burst, 1, 10_000_000, "burst");
    int(maxSources, 1, 1 << 20, "maxSources");
    if (this.fd < 0 || this.closing) throw new NetifError(`TAP ${this.name} is closed`, "EBADF");
    let counter: number;
    try {
      counter = this.addon.setSourceFilter(this.fd, perSec, burst, maxSources);
    } catch (e) {
      throw toNetifError(e);
    }
    this.dropBase = this.sourceLimitDrops();
    if (this.filterCounter >= 0) this.addon.close(this.filterCounter);
    this.filterCounter = counter;
  }

  /** Frames the kernel's source limit dropped (all limits set on this netif so far). */
  sourceLimitDrops(): number {
    if (this.filterCounter < 0) return this.dropBase;
    try {
      return this.dropBase + this.addon.sourceFilterDrops(this.filterCounter);
    } catch {
      return this.dropBase;
    }
  }

  allocFrame(len: number): Uint8Array {
    return this.txPool.alloc(len);
  }

  /** Transmit buffers made, and handed out again after a write (see FramePool). */
  txBufferStats(): { made: number; reused: number } {
    return { made: this.txPool.made, reused: this.txPool.reused };
  }

  /**
   * Create the TAP, or attach to an existing one (a persistent TAP owned by the user needs no
   * privilege). Throws NetifError with code ENOENT / EPERM / EACCES / EBUSY / EINVAL and a
   * message that says what to do.
   */
  static open(name: string, opts: TapOptions = {}): TapNetif {
    const mtu = opts.mtu ?? DEFAULT_MTU;
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65521) throw new NetifError(`invalid MTU ${mtu}: 68..65521`, "EINVAL");
    const batch = opts.batch ?? DEFAULT_BATCH;
    if (!Number.isInteger(batch) || batch < 1 || batch > 4096) throw new NetifError(`invalid batch ${batch}: 1..4096`, "EINVAL");
    const fs = opts.frameSize;
    if (fs !== undefined && (!Number.isInteger(fs) || fs < ETH_HEADER_LEN + 1 || fs > 1 << 20)) throw new NetifError(`invalid frameSize ${fs}`, "EINVAL");
    const ql = opts.queueLimit;
    if (ql !== undefined && (!Number.isInteger(ql) || ql < 1)) throw new NetifError(`invalid queueLimit ${ql}`, "EINVAL");
    const rq = opts.rxQueue ?? DEFAULT_RX_QUEUE;
    if (!Number.isInteger(rq) || rq < 0 || rq > MAX_RX_QUEUE) throw new NetifError(`invalid rxQueue ${rq}: 0..${MAX_RX_QUEUE}`, "EINVAL");
    const addon = loadTapAddon();
    tuneMalloc(addon);
    let r: { fd: number; name: string; rxQueue: number };
    const attempt = (offload: boolean) =>
      addon.open(name, {
        vnetHdr: !!(opts.vnetHdr || offload),
        offload: offload ? OFFLOADS : 0,
        multiQueue: !!opts.multiQueue,
        up: !!opts.up,
        rxQueue: rq,
        ...(opts.netns ? { netns: opts.netns } : {}),
      });
    let effective = opts;
    try {
      try {
        r = attempt(!!opts.offload);
      } catch (e) {
        // A kernel (or a user) that may not set the offloads (TUNSETOFFLOAD): carry on without them.
        if (!opts.offload || !["EINVAL", "EPERM"].includes(String((e as { code?: string }).code)) || !/TUNSETOFFLOAD/.test(String((e as Error).message))) throw e;
        r = attempt(false);
        effective = { ...opts, offload: false };
      }
    } catch (e) {
      throw toNetifError(e);
    }
    // UDP segmentation: the kernel knows it if it takes the flags (it refuses unknown ones with
    // EINVAL); then they are set back off, since what they promise is that paf takes UDP
    // super-frames in, which it does not.
    let uso = false;
    if (effective.offload && opts.udpSegmentation !== false) {
      uso = addon.setOffload(r.fd, OFFLOADS | TUN_F_USO4 | TUN_F_USO6) === 0;
      if (uso && addon.setOffload(r.fd, OFFLOADS) !== 0) {
        addon.close(r.fd);
        throw new NetifError(`TAP ${r.name}: cannot set the offloads back after probing UDP segmentation`, "EIO");
      }
    }
    return new TapNetif(r.name, r.fd, mtu, effective, addon, r.rxQueue, uso);
  }

  start(rx: NetifReceiver): void {
    if (this.reader || this.closing) return;
    this.rx = rx;
    this.reader = this.addon.startReading(this.fd, this.slots, this.frameSize, this.lengths.length, this.lengths, (n, err) => this.onBatch(n, err), this.timing, this.ids);
    if (this.paused) this.addon.setReading(this.reader, false);
    if (!this.refed) this.addon.setRef(this.reader, false);
  }

  inputPending(): boolean {
    if (this.restFrom < this.restTo) return true;
    if (this.fd < 0 || this.closing) return false;
    return this.reader ? this.addon.pending(this.reader) : this.addon.readable(this.fd);
  }

  /** How frames are read: "io_uring" (Linux 6.7+, see TapOptions.ioUring) or "read" (read(2), one per call); "stopped". */
  get readerMode(): "io_uring" | "read" | "stopped" {
    return this.reader ? this.addon.readerMode(this.reader) : "stopped";
  }

  /** How frames are written: "io_uring" (a flush's frames, up to 64 per system call) or "writev" (one per call). */
  get writerMode(): "io_uring" | "writev" {
    return this.writer ? "io_uring" : "writev";
  }

  /**
   * Stop reading for now: frames wait in the TAP's kernel queue (the kernel drops beyond its
   * length); with io_uring the slots in the kernel's ring (at most `batch`) are still read into
   * meanwhile and wait in memory, handed up in order on resume.
   */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    if (this.reader) this.addon.setReading(this.reader, false);
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.reader && this.restFrom >= this.restTo) this.addon.setReading(this.reader, true);
  }

  /** The TAP keeps the process alive while it is open (the default), like a socket. */
  ref(): void {
    this.refed = true;
    if (this.reader) this.addon.setRef(this.reader, true);
  }

  /** The open TAP alone no longer keeps the process alive. */
  unref(): void {
    this.refed = false;
    if (this.reader) this.addon.setRef(this.reader, false);
  }

  private onBatch(n: number, err?: Error): void {
    const rx = this.rx;
    // What the last batch really cost: its own processing and the nextTicks and microtasks it left.
    if (this.timing[0]! > 0) {
      rx?.afterBatch?.(this.timing[0]!);
      this.timing[0] = 0;
    }
    if (rx && n > 0) {
      const stop = this.deliver(rx, 0, n);
      if (stop < n && this.rx === rx) {
        // The receiver used its share of this turn: the rest of the batch waits for its next
        // turn (poll()), and reading stops meanwhile, so its slots are not overwritten.
        this.restFrom = stop;
        this.restTo = n;
        if (this.reader) this.addon.setReading(this.reader, false);
        rx.ready?.();
      }
    }
    if (err) {
      // The addon has stopped polling; release it and tell the owner once.
      if (this.reader) this.addon.stopReading(this.reader);
      this.reader = undefined;
      const e = toNetifError(err);
      this.lastError = e;
      if (!this.closing) this.onError(e);
    }
  }

  /**
   * Frames of the last batch that were left for the receiver's next turn: deliver up to `max` of them;
   * once none is left, reading resumes. True if some are still left.
   */
  poll(max: number): boolean {
    const rx = this.rx;
    if (!rx || this.restFrom >= this.restTo) return false;
    const end = Math.min(this.restTo, this.restFrom + max);
    const stop = this.deliver(rx, this.restFrom, end);
    this.restFrom = stop;
    if (stop < this.restTo) return true;
    this.restFrom = this.restTo = 0;
    if (this.reader && !this.paused && this.rx === rx) this.addon.setReading(this.reader, true);
    return false;
  }

  /**
   * The receiver keeps a view into the frame being handed up (TCP gives in-order data to the
   * application as it is) instead of copying it: the frame's slot is given up, replaced by a new
   * buffer once this delivery ends (before the next read), and never written again. Only views of
   * at least ADOPT_MIN bytes (TSO super-frames), so a kept slot is at most twice the data it
   * holds, the kept memory is about what Node keeps for a 64 KB socket read, and a small frame (a
   * request, an ACK) is copied, its slot kept.
   */
  adopt(view: Uint8Array): boolean {
    const i = this.current;
    if (i < 0) return false;
    const id = this.ids[i]!;
    if (view.length < ADOPT_MIN || view.buffer !== this.slots[id]!.buffer) return false;
    // Asked again for the same frame: it is the last one given (frames go up in batch order).
    if (this.given[this.given.length - 1] !== id) {
      this.given.push(id);
      this.rxAdopted++;
      // The application reaches the whole buffer (`.buffer`): past the frame it held whatever
      // the allocator had there (a new slot is not zeroed), so that part is cleared, as a socket
      // read's buffer is cut to what was read.
      this.slots[id]!.fill(0, this.lengths[i]!);
    }
    return true;
  }

  /** New buffers for the slots given up (adopt), for the reader to use from its next read on. */
  private replaceGiven(): void {
    for (const i of this.given) {
      const b = Buffer.allocUnsafeSlow(this.frameSize);
      this.slots[i] = b;
      // Refused only by a reader already stopped (it reads no more): then stop it here too, so
      // that nothing can read into the buffer the receiver kept.
      if (this.reader && !this.addon.setSlot(this.reader, i, b)) {
        this.addon.stopReading(this.reader);
        this.reader = undefined;
      }
    }
    this.given.length = 0;
  }

  /**
   * Hand the batch's frames [from, to) to the receiver, then end the batch; stops early (returns where)
   * when the receiver says it is over its share (asked before every frame but the first: one
   * HTTP request's work is tens of microseconds, so every 8 frames could overshoot a share by
   * eight requests).
   */
  private deliver(rx: NetifReceiver, from: number, to: number): number {
    this.delivering = true;
    try {
      return this.deliverFrames(rx, from, to);
    } finally {
      this.delivering = false;
      this.current = -1;
      if (this.given.length > 0) this.replaceGiven();
      // What the batch sent (its ACKs, answers made at once) is written now, not in a microtask
      // of its own (156 bytes each, one per batch).
      if (this.flushAfterDelivery) {
        this.flushAfterDelivery = false;
        this.flushNow();
      }
    }
  }

  private deliverFrames(rx: NetifReceiver, from: number, to: number): number {
    const slots = this.slots;
    const ids = this.ids;
    const lengths = this.lengths;
    const fs = this.frameSize;
    const h = this.hdrLen;
    const meta = h ? this.meta : undefined;
    let i = from;
    for (; i < to; i++) {
      if (i > from && rx.overBudget?.()) break;
      const len = lengths[i]!;
      // A frame that fills its slot was cut by read() (the kernel does not say by how much).
      if (len >= fs || len < h + ETH_HEADER_LEN) {
        this.st.rxDropped++;
        continue;
      }
      const slot = slots[ids[i]!]!;
      if (h) {
        const flags = slot[0]!;
        // A TSO super-frame is only expected when we asked for it; it goes up as one large
        // TCP segment (its IP length covers the whole frame). Anything else cannot be split.
        const gso = slot[1]! & ~VIRTIO_NET_HDR_GSO_ECN;
        if (gso !== VIRTIO_NET_HDR_GSO_NONE && !(this.gso && (gso === VIRTIO_NET_HDR_GSO_TCPV4 || gso === VIRTIO_NET_HDR_GSO_TCPV6))) {
          this.st.rxDropped++;
          continue;
        }
        // NEEDS_CSUM: the kernel made the data and left the checksum to "hardware"; the bytes
        // are as trustworthy as DATA_VALID ones (virtio-net drivers treat both alike).
        this.meta.csumValid = (flags & (VIRTIO_NET_HDR_F_DATA_VALID | VIRTIO_NET_HDR_F_NEEDS_CSUM)) !== 0;
      }
      this.st.rxFrames++;
      this.st.rxBytes += len - h;
      this.current = i;
      rx.frame(slot.subarray(h, len), meta);
      this.current = -1;
      if (this.rx !== rx) return to; // closed by the receiver
    }
    rx.batchEnd?.();
    return i;
  }

  send(frame: Uint8Array, meta?: TxMeta): boolean {
    if (this.closing) {
      this.st.txDropped++;
      return false;
    }
    if (this.queue.length >= this.queueLimit) {
      this.st.txDropped++;
      return false;
    }
    this.queue.push(frame);
    let g = this.gso ? (meta?.gsoSize ?? 0) : 0;
    if (!g && meta?.csumPartial && this.hdrLen) g = MARK_CSUM;
    this.gsoSizes.push(g);
    if (this.counts.length > 0) this.counts.push(1); // counts kept since a partial write: in step
    if (g) this.gsoQueued++;
    // A burst sent in one go (a timer storm, a batch answered frame by frame) is written as it
    // grows, not dropped at queueLimit before the end-of-tick flush. (While the kernel pushes
    // back with EAGAIN, a retry is scheduled already: no write from here then.)
    if (this.queue.length >= WRITE_EARLY && this.eagainRuns === 0 && !this.writeQueued()) this.eagainRuns = 1;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      if (this.flushMode !== "microtask") setImmediate(this.flushNow);
      else if (this.delivering) this.flushAfterDelivery = true;
      else queueMicrotask(this.flushNow);
    }
    return true;
  }

  /** Write what is queued; returns true if the queue is now empty. */
  private writeQueued(): boolean {
    if (this.udpSegmentation && this.queue.length > 1) this.mergeUdpRuns();
    const q = this.queue;
    if (q.length === 0 || this.fd < 0) return true;
    const out = this.writeOut;
    const n = this.addon.writeFrames(this.fd, q, 0, this.hdrLen, out, this.gsoQueued > 0 ? this.vnetHeaders(q) : undefined, this.writer);
    const refused = out[0]!;
    const counts = this.counts;
    let datagrams = n;
    if (counts.length > 0) {
      datagrams = 0;
      for (let i = 0; i < n; i++) datagrams += counts[i] ?? 1;
    }
    this.st.txFrames += datagrams - refused;
    this.st.txBytes += out[2]!;
    if (refused) {
      this.st.txDropped += refused;
      this.lastError = new NetifError(`TAP ${this.name}: the kernel refused ${refused} frame(s): errno ${out[1]}`, "EIO");
    }
    // The kernel has copied what was written (refused frames are done with too).
    const pool = this.txPool;
    for (let i = 0; i < n; i++) pool.release(q[i]!);
    if (n === q.length) {
      q.length = 0; // the addon is done with the frames: reuse the arrays
      this.gsoSizes.length = 0;
      this.gsoQueued = 0;
      counts.length = 0;
      return true;
    }
    this.queue = q.slice(n);
    this.gsoSizes = this.gsoSizes.slice(n);
    if (counts.length > 0) this.counts = counts.slice(n);
    this.gsoQueued = 0;
    for (const g of this.gsoSizes) if (g) this.gsoQueued++;
    return false;
  }

  /**
   * Runs of datagrams of one UDP flow among the queued frames become UDP super-frames
   * (coalesceUdp), once a look without allocating found two in a row that start one (a server
   * answering many peers, one datagram each, allocates nothing here).
   */
  private mergeUdpRuns(): void {
    const q = this.queue;
    const marks = this.gsoSizes;
    let found = false;
    for (let i = 1; i < q.length && !found; i++) found = isPlain(marks[i - 1]) && isPlain(marks[i]) && startsRun(q[i - 1]!, q[i]!);
    if (!found) return;
    const pool = this.txPool;
    // Super-frames left by a partial write keep their counts (and, marked, never merge again).
    const r = coalesceUdp(
      q,
      marks,
      (len) => pool.alloc(len),
      (f) => pool.release(f),
      this.counts.length > 0 ? this.counts : undefined,
    );
    if (r.superFrames === 0) return;
    this.queue = r.frames;
    this.gsoSizes = r.marks;
    this.counts = r.counts;
    this.gsoQueued = 0;
    for (const g of r.marks) if (g) this.gsoQueued++;
    this.usoStats.superFrames += r.superFrames;
    this.usoStats.datagrams += r.merged;
  }

  /**
   * Virtio-net headers for a batch with TSO frames: zero for a plain frame; for a frame sent with
   * a gsoSize, "cut into gso_size-byte TCP segments and complete the checksum from csum_start"
   * (the TCP header already holds the pseudo-header sum).
   */
  private vnetHeaders(q: readonly Uint8Array[]): Uint8Array {
    const need = q.length * VNET_HDR_LEN;
    if (this.txHdrs.length < need) this.txHdrs = Buffer.alloc(Math.max(need, this.txHdrs.length * 2));
    const h = this.txHdrs;
    h.fill(0, 0, need);
    for (let i = 0; i < q.length; i++) {
      const f = q[i]!;
      const size = this.gsoSizes[i]!;
      if (!size) continue;
      const v4 = f[12] === 0x08 && f[13] === 0x00;
      const l4 = ETH_HEADER_LEN + (v4 ? (f[ETH_HEADER_LEN]! & 0x0f) * 4 : 40);
      const o = i * VNET_HDR_LEN;
      h[o] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
      if (size === MARK_CSUM) {
        // A plain TCP or UDP packet: only the checksum, from the L4 header on.
        h.writeUInt16LE(l4, o + 6); // csum_start
        h.writeUInt16LE(f[v4 ? ETH_HEADER_LEN + 9 : ETH_HEADER_LEN + 6] === IPPROTO_TCP ? 16 : 6, o + 8); // csum_offset
        continue;
      }
      if (size < 0) {
        // A UDP super-frame (stack/netif/uso.ts): cut into -size-byte datagrams, each checksummed.
        h[o + 1] = VIRTIO_NET_HDR_GSO_UDP_L4;
        h.writeUInt16LE(l4 + 8, o + 2); // hdr_len: Ethernet + IP + UDP headers
        h.writeUInt16LE(-size, o + 4); // gso_size
        h.writeUInt16LE(l4, o + 6); // csum_start
        h.writeUInt16LE(6, o + 8); // csum_offset: the UDP checksum field
        continue;
      }
      h[o + 1] = v4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6;
      h.writeUInt16LE(l4 + (f[l4 + 12]! >> 4) * 4, o + 2); // hdr_len: Ethernet + IP + TCP headers
      h.writeUInt16LE(size, o + 4); // gso_size
      h.writeUInt16LE(l4, o + 6); // csum_start
      h.writeUInt16LE(16, o + 8); // csum_offset: the TCP checksum field
    }
    return h;
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.closing) return;
    if (this.writeQueued()) {
      this.eagainRuns = 0;
      return;
    }
    // The kernel's socket buffer is full (EAGAIN): keep the rest and retry once I/O had a turn;
    // if that keeps happening, back off to a timer rather than spin the loop.
    this.flushScheduled = true;
    if (++this.eagainRuns <= EAGAIN_SPIN_LIMIT) setImmediate(this.flushNow);
    else setTimeout(this.flushNow, 1);
  }

  stats(): NetifStats {
    return netifStatsOf(this.st);
  }

  /** Stop delivering, write what is queued (waiting up to 100 ms for room), close the fd. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    if (this.reader) this.addon.stopReading(this.reader);
    this.reader = undefined;
    this.rx = undefined;
    const deadline = Date.now() + CLOSE_DRAIN_MS;
    while (!this.writeQueued() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
    this.st.txDropped += this.queue.length;
    this.queue = [];
    this.gsoSizes = [];
    this.gsoQueued = 0;
    const fd = this.fd;
    this.fd = -1;
    if (this.writer) this.addon.closeWriter(this.writer);
    this.writer = undefined;
    if (this.filterCounter >= 0) {
      this.dropBase = this.sourceLimitDrops();
      // A persistent TAP outlives us: it must not keep filtering for the next user.
      try {
        this.addon.clearSourceFilter(fd);
      } catch {}
      this.addon.close(this.filterCounter);
      this.filterCounter = -1;
    }
    this.addon.close(fd);
  }
}

/**
 * Once per process, at the first TAP opened: glibc keeps up to MALLOC_TRIM_BYTES of freed heap
 * instead of returning it to the kernel at every free (its default is 128 KiB). Received TCP data
 * is copied into a new buffer per segment for the application; each garbage collection freed a
 * burst of them, glibc trimmed the heap, and the next buffers were fresh pages, faulted in: a
 * 3 GB upload into the stack ran at 4.0-6.3 Gbit/s, 6.9-7.7 with the heap kept. Process-wide;
 * `PAF_MALLOC_TRIM=off` leaves malloc alone, `PAF_MALLOC_TRIM=<bytes>` sets another bound.
 */
const MALLOC_TRIM_BYTES = 64 * 1024 * 1024;
let mallocTuned = false;
/**
 * The tuning above, for a program that serves on kernel sockets as well (`paf serve --host` calls
 * it, so that its figures are measured with the same allocator). Once per process; without the
 * addon built, nothing. Throws NetifError EINVAL for a bad PAF_MALLOC_TRIM.
 */
export function tuneMalloc(addon?: TapAddon): void {
  if (mallocTuned) return;
  const env = process.env.PAF_MALLOC_TRIM;
  const bytes = env === undefined || env === "" || env === "off" ? MALLOC_TRIM_BYTES : Number(env);
  if (!Number.isInteger(bytes) || bytes < 0 || bytes > 2 ** 31 - 1) throw new NetifError(`PAF_MALLOC_TRIM=${env}: expected "off" or a number of bytes (0..2147483647)`, "EINVAL");
  mallocTuned = true;
  if (env === "off") return;
  let a = addon;
  if (!a) {
    try {
      a = loadTapAddon();
    } catch {
      return;
    }
  }
  if (typeof a.setMallocTrim === "function") a.setMallocTrim(bytes);
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

function toNetifError(e: unknown): NetifError {
  if (e instanceof NetifError) return e;
  const err = e as Error & { code?: string };
  return new NetifError(err.message ?? String(e), typeof err.code === "string" ? err.code : "EIO");
}
