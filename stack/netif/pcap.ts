/**
 * Classic libpcap files (LINKTYPE_ETHERNET, microsecond timestamps), readable by Wireshark and
 * tcpdump, and a netif wrapper that records everything crossing any netif.
 * Writing is buffered and bounded: at most `maxBuffered` bytes wait for the disk; beyond that
 * frames are not recorded (counted in `dropped`) rather than growing memory.
 */
import { openSync, writeSync, closeSync, readFileSync } from "node:fs";
import { ETH_HEADER_LEN, type Netif, type NetifReceiver, type NetifStats, type RxMeta, type TxMeta } from "./netif.js";
import { completeChecksum } from "../wire/checksum.js";

const MAGIC = 0xa1b2c3d4;
const LINKTYPE_ETHERNET = 1;
// As tcpdump: whole frames, including 64 KB TSO super-frames from a TAP with offloads.
const SNAPLEN = 262144;

export class PcapWriter {
  private fd: number | undefined;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private flushScheduled = false;
  /** Frames not recorded because the write buffer was full. */
  dropped = 0;
  /** Frames recorded. */
  count = 0;

  constructor(
    readonly path: string,
    private readonly now: () => number = () => Date.now(),
    private readonly maxBuffered = 8 * 1024 * 1024,
  ) {
    this.fd = openSync(path, "w");
    const h = Buffer.alloc(24);
    h.writeUInt32LE(MAGIC, 0);
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeInt32LE(0, 8);
    h.writeUInt32LE(0, 12);
    h.writeUInt32LE(SNAPLEN, 16);
    h.writeUInt32LE(LINKTYPE_ETHERNET, 20);
    writeSync(this.fd, h);
  }

  /** Record one frame (copied). `timeMs` defaults to the writer's clock (wall time, ms). */
  write(frame: Uint8Array, timeMs = this.now()): void {
    if (this.fd === undefined) return;
    const cap = Math.min(frame.length, SNAPLEN);
    if (this.buffered + 16 + cap > this.maxBuffered) {
      this.dropped++;
      return;
    }
    const rec = Buffer.allocUnsafe(16 + cap);
    const sec = Math.floor(timeMs / 1000);
    const usec = Math.floor((timeMs - sec * 1000) * 1000);
    rec.writeUInt32LE(sec >>> 0, 0);
    rec.writeUInt32LE(usec, 4);
    rec.writeUInt32LE(cap, 8);
    rec.writeUInt32LE(frame.length, 12);
    rec.set(frame.subarray(0, cap), 16);
    this.chunks.push(rec);
    this.buffered += rec.length;
    this.count++;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  flush(): void {
    this.flushScheduled = false;
    if (this.fd === undefined || this.chunks.length === 0) return;
    writeSync(this.fd, Buffer.concat(this.chunks));
    this.chunks = [];
    this.buffered = 0;
  }

  close(): void {
    if (this.fd === undefined) return;
    this.flush();
    closeSync(this.fd);
    this.fd = undefined;
  }
}

export interface PcapRecord {
  timeMs: number;
  origLen: number;
  data: Uint8Array;
}

/** Read a classic pcap file (either byte order) back into records. */
export function readPcap(path: string): PcapRecord[] {
  const b = readFileSync(path);
  if (b.length < 24) throw new Error(`${path}: not a pcap file (too short)`);
  const magic = b.readUInt32LE(0);
  const le = magic === MAGIC;
  if (!le && b.readUInt32BE(0) !== MAGIC) throw new Error(`${path}: not a pcap file (magic ${magic.toString(16)})`);
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const out: PcapRecord[] = [];
  let o = 24;
  while (o + 16 <= b.length) {
    const incl = u32(o + 8);
    if (o + 16 + incl > b.length) break;
    out.push({ timeMs: u32(o) * 1000 + u32(o + 4) / 1000, origLen: u32(o + 12), data: new Uint8Array(b.subarray(o + 16, o + 16 + incl)) });
    o += 16 + incl;
  }
  return out;
}

/**
 * A copy of a frame whose TCP or UDP checksum was left to the netif (TxMeta.csumPartial), with the
 * checksum completed as the netif will: the record shows what goes on the wire. (A TSO
 * super-frame is recorded as it is, larger than the MTU and with its pseudo-header sum.)
 */
function completed(frame: Uint8Array): Uint8Array {
  const f = frame.slice();
  const v4 = f[12] === 0x08 && f[13] === 0x00;
  const l4 = ETH_HEADER_LEN + (v4 ? (f[ETH_HEADER_LEN]! & 0x0f) * 4 : 40);
  completeChecksum(f, l4, f.length, f[ETH_HEADER_LEN + (v4 ? 9 : 6)]!);
  return f;
}

/** Wraps any netif and records every frame received and sent to a pcap file. */
export class PcapNetif implements Netif {
  readonly writer: PcapWriter;
  constructor(
    private readonly inner: Netif,
    path: string,
    now?: () => number,
  ) {
    this.writer = new PcapWriter(path, now);
    // The record is copied at send(), so the inner netif's reused transmit buffers are safe here.
    if (inner.allocFrame) this.allocFrame = (len) => inner.allocFrame!(len);
  }
  /** The inner netif's (a TAP's reused transmit buffers), when it has one. */
  allocFrame?: (len: number) => Uint8Array;
  get name(): string {
    return this.inner.name;
  }
  get mtu(): number {
    return this.inner.mtu;
  }
  get features() {
    return this.inner.features;
  }
  start(rx: NetifReceiver): void {
    this.inner.start({
      frame: (buf: Uint8Array, meta?: RxMeta) => {
        this.writer.write(buf);
        rx.frame(buf, meta);
      },
      batchEnd: () => rx.batchEnd?.(),
    });
  }
  send(frame: Uint8Array, meta?: TxMeta): boolean {
    this.writer.write(meta?.csumPartial ? completed(frame) : frame);
    return this.inner.send(frame, meta);
  }
  inputPending(): boolean {
    return this.inner.inputPending?.() ?? false;
  }
  /** The receiver sees the inner netif's frames as they are (the record is a copy). */
  adopt(view: Uint8Array): boolean {
    return this.inner.adopt?.(view) ?? false;
  }
  stats(): NetifStats {
    return this.inner.stats();
  }
  async close(): Promise<void> {
    await this.inner.close();
    this.writer.close();
  }
}
