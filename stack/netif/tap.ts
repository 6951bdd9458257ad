/**
 * A Linux TAP device as a netif. Frames are read in batches into one reused slab by the native
 * addon (one JS call per batch), and frames sent during one tick are written in one native call.
 * The virtio-net header (IFF_VNET_HDR) can be switched on without changing the layers above:
 * it is stripped on receive (its DATA_VALID flag becomes RxMeta.csumValid) and prepended on send.
 */
import { loadTapAddon, type TapAddon } from "./tap/binding.js";
import { emptyNetifStats, NetifError, type Netif, type NetifFeatures, type NetifReceiver, type NetifStats, DEFAULT_MTU, ETH_HEADER_LEN, type RxMeta } from "./netif.js";

export interface TapOptions {
  /** L3 MTU of the link. Default 1500. */
  mtu?: number;
  /** Use the virtio-net header (offloads become possible later). Default false. */
  vnetHdr?: boolean;
  /** Open one queue of a multi-queue TAP. Default false. */
  multiQueue?: boolean;
  /** Create/attach the TAP inside this network namespace (a path such as /var/run/netns/NAME). */
  netns?: string;
  /** Bring the interface up (kernel side). Default false. */
  up?: boolean;
  /** Frames read per native call. Default 64. */
  batch?: number;
  /** Size of one slot in the receive slab. Default: MTU + headers, at least 2048. */
  frameSize?: number;
  /** Frames waiting to be written before send() drops (and TCP backs off). Default 2048. */
  queueLimit?: number;
}

const VNET_HDR_LEN = 10;
const VIRTIO_NET_HDR_F_DATA_VALID = 2;

export class TapNetif implements Netif {
  readonly features: NetifFeatures;
  private readonly addon: TapAddon;
  private fd: number;
  private reader: object | undefined;
  private readonly slab: Buffer;
  private readonly lengths: Uint32Array;
  private readonly frameSize: number;
  private readonly hdrLen: number;
  private queue: Uint8Array[] = [];
  private flushScheduled = false;
  private readonly queueLimit: number;
  private readonly st: NetifStats = emptyNetifStats();
  private closed = false;
  private rx: NetifReceiver | undefined;
  private readonly meta: RxMeta = { csumValid: false };

  private constructor(
    readonly name: string,
    fd: number,
    readonly mtu: number,
    opts: TapOptions,
    addon: TapAddon,
  ) {
    this.addon = addon;
    this.fd = fd;
    this.hdrLen = opts.vnetHdr ? VNET_HDR_LEN : 0;
    const batch = opts.batch ?? 64;
    this.frameSize = opts.frameSize ?? Math.max(2048, mtu + ETH_HEADER_LEN + this.hdrLen + 4);
    this.slab = Buffer.alloc(this.frameSize * batch);
    this.lengths = new Uint32Array(batch);
    this.queueLimit = opts.queueLimit ?? 2048;
    this.features = { checksumOffload: false, maxFrameSize: mtu + ETH_HEADER_LEN };
  }

  /** Create the TAP (or attach to an existing one). Throws NetifError with code ENOENT/EPERM/EBUSY/EINVAL and what to do. */
  static open(name: string, opts: TapOptions = {}): TapNetif {
    const mtu = opts.mtu ?? DEFAULT_MTU;
    if (!Number.isInteger(mtu) || mtu < 576 || mtu > 65521) throw new NetifError(`invalid MTU ${mtu} (576..65521)`, "EINVAL");
    const addon = loadTapAddon();
    let fd: number;
    let ifname: string;
    try {
      [fd, ifname] = addon.open(name, opts.vnetHdr ?? false, opts.multiQueue ?? false, opts.netns ?? null, opts.up ?? false);
    } catch (e) {
      const err = e as Error & { code?: string };
      throw new NetifError(err.message, err.code ?? "EIO");
    }
    return new TapNetif(ifname, fd, mtu, opts, addon);
  }

  start(rx: NetifReceiver): void {
    if (this.reader || this.closed) return;
    this.rx = rx;
    this.reader = this.addon.startReading(this.fd, this.slab, this.frameSize, this.lengths.length, this.lengths, (n) => this.onBatch(n));
  }

  private onBatch(n: number): void {
    const rx = this.rx;
    if (!rx) return;
    const fs = this.frameSize;
    const h = this.hdrLen;
    for (let i = 0; i < n; i++) {
      const len = this.lengths[i]!;
      if (len >= fs || len < h + ETH_HEADER_LEN) {
        // read() filled the whole slot: the frame was longer than a slot and got truncated.
        this.st.rxDropped++;
        continue;
      }
      const base = i * fs;
      this.st.rxFrames++;
      this.st.rxBytes += len - h;
      let meta: RxMeta | undefined;
      if (h) {
        this.meta.csumValid = (this.slab[base]! & VIRTIO_NET_HDR_F_DATA_VALID) !== 0;
        meta = this.meta;
      }
      rx.frame(this.slab.subarray(base + h, base + len), meta);
    }
    rx.batchEnd?.();
  }

  send(frame: Uint8Array): boolean {
    if (this.closed) return false;
    if (this.queue.length >= this.queueLimit) {
      this.st.txDropped++;
      return false;
    }
    this.queue.push(frame);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
    return true;
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.closed || this.queue.length === 0) return;
    const q = this.queue;
    const n = this.addon.writeFrames(this.fd, q, 0, this.hdrLen);
    for (let i = 0; i < n; i++) {
      this.st.txFrames++;
      this.st.txBytes += q[i]!.length;
    }
    if (n === q.length) {
      this.queue = [];
      return;
    }
    // The kernel's queue is full (EAGAIN): keep the rest and retry after I/O has had a turn.
    this.queue = q.slice(n);
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  stats(): NetifStats {
    return { ...this.st };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    if (this.reader) this.addon.stopReading(this.reader);
    this.reader = undefined;
    this.rx = undefined;
    this.addon.close(this.fd);
    this.fd = -1;
    this.queue = [];
  }
}
