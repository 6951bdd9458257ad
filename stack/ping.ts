/**
 * ICMP echo (ping) for both families: requests we send and the replies we wait for. Echo
 * *replies* to others' requests are answered in icmpv4.ts / icmpv6.ts.
 */
import type { TimerQueue, Timer } from "./core/timers.js";
import type { IpOutput } from "./ip.js";
import { sendIcmp } from "./icmp.js";
import { formatIP } from "./wire/addr.js";
import { codedError, stackClosedError } from "./core/errors.js";

export interface PingOptions {
  /** Bytes of echo data. Default 56 (like ping(8)). */
  size?: number;
  /** Give up after this many ms. Default 1000. */
  timeoutMs?: number;
  /** TTL / hop limit to send with. */
  ttl?: number;
}

export interface PingResult {
  /** Round-trip time in ms (by the stack's clock). */
  rtt: number;
  /** Echo data bytes received back. */
  bytes: number;
  ttl: number;
  seq: number;
  from: string;
}

interface Outstanding {
  sent: number;
  data: Uint8Array;
  resolve: (r: PingResult) => void;
  reject: (e: Error) => void;
  timer: Timer;
}

/** Matches replies to requests by (identifier, sequence); at most `limit` pings in flight. */
export class PingTable {
  private outstandingMap: Map<number, Outstanding> | undefined;
  /** Requests in flight; made at first use: an idle stack (of thousands) holds none. */
  private get outstanding(): Map<number, Outstanding> {
    return (this.outstandingMap ??= new Map());
  }
  private seq = 0;
  constructor(
    private readonly timers: TimerQueue,
    readonly ident: number,
    private readonly limit = 1024,
  ) {}

  /** Register a request; returns its sequence number and the promise of its reply. */
  start(data: Uint8Array, timeoutMs: number): { seq: number; promise: Promise<PingResult> } {
    if (this.outstanding.size >= this.limit) {
      const e = codedError("ENOBUFS", `too many pings in flight (limit ${this.limit})`);
      return { seq: -1, promise: Promise.reject(e) };
    }
    let seq = this.seq;
    for (let i = 0; i < 65536 && this.outstanding.has(seq); i++) seq = (seq + 1) & 0xffff;
    this.seq = (seq + 1) & 0xffff;
    let resolve!: (r: PingResult) => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<PingResult>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const timer = this.timers.timer(() => {
      this.outstanding.delete(seq);
      reject(codedError("ETIMEDOUT", `ping timed out after ${timeoutMs} ms (seq ${seq})`));
    });
    this.timers.arm(timer, timeoutMs);
    this.outstanding.set(seq, { sent: this.timers.now(), data, resolve, reject, timer });
    return { seq, promise };
  }

  /** Feed an echo reply; returns true if it matched an outstanding request with identical data. */
  reply(ident: number, seq: number, body: Uint8Array, ttl: number, from: string): boolean {
    if (ident !== this.ident) return false;
    const o = this.outstanding.get(seq);
    if (!o) return false;
    if (body.length !== o.data.length) return false;
    for (let i = 0; i < body.length; i++) if (body[i] !== o.data[i]) return false;
    this.outstanding.delete(seq);
    this.timers.cancel(o.timer);
    o.resolve({ rtt: this.timers.now() - o.sent, bytes: body.length, ttl, seq, from });
    return true;
  }

  /** Fail a request early (e.g. no route). */
  fail(seq: number, err: Error): void {
    const o = this.outstanding.get(seq);
    if (!o) return;
    this.outstanding.delete(seq);
    this.timers.cancel(o.timer);
    o.reject(err);
  }

  close(): void {
    for (const [seq] of this.outstanding) this.fail(seq, stackClosedError("ping"));
  }
}

/** Send an echo request through `ip` and return the promise of its reply (both ICMP versions). */
export function sendEchoRequest(pings: PingTable, ip: IpOutput, dst: Uint8Array, opts: PingOptions, echoType: number): Promise<PingResult> {
  const size = opts.size ?? 56;
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i + 0x10) & 0xff;
  const { seq, promise } = pings.start(data, opts.timeoutMs ?? 1000);
  if (seq < 0) return promise;
  const route = ip.route(dst);
  if (!route) {
    pings.fail(seq, codedError("EHOSTUNREACH", `no route to ${formatIP(dst)}`));
    return promise;
  }
  sendIcmp(ip, route, echoType, 0, ((pings.ident << 16) | seq) >>> 0, data, opts.ttl !== undefined ? { ttl: opts.ttl } : {});
  return promise;
}
