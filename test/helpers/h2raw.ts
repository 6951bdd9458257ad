/**
 * HTTP/2 frames by hand (RFC 9113 §4, §6), for tests that must control exactly what a client sends
 * and when (flow-control windows, a broken connection preface) and see every frame the server
 * sends back, in order. Headers use HPACK's static table and literals without indexing
 * (RFC 7541 §6.1, §6.2.2), so no encoder state is needed.
 */
import type { Duplex } from "node:stream";

export const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
export const ERROR = { NO_ERROR: 0, PROTOCOL_ERROR: 1 } as const;

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

export function settings(entries: Array<[id: number, value: number]> = []): Buffer {
  const p = Buffer.alloc(entries.length * 6);
  entries.forEach(([id, v], i) => {
    p.writeUInt16BE(id, i * 6);
    p.writeUInt32BE(v, i * 6 + 2);
  });
  return frame(FRAME.SETTINGS, 0, 0, p);
}

export function windowUpdate(streamId: number, increment: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(increment);
  return frame(FRAME.WINDOW_UPDATE, 0, streamId, p);
}

/** A GET request with no body: one HEADERS frame carrying END_STREAM and END_HEADERS. */
export function getRequest(streamId: number, path: string, authority = "paf.test"): Buffer {
  // RFC 7541 Appendix A: 1 :authority, 2 :method GET, 4 :path, 6 :scheme http.
  const literal = (nameIndex: number, value: string) => Buffer.concat([Buffer.from([nameIndex, value.length]), Buffer.from(value, "latin1")]);
  const block = Buffer.concat([Buffer.from([0x82, 0x86]), literal(4, path), literal(1, authority)]);
  return frame(FRAME.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, streamId, block);
}

/** Collects the frames arriving on a connection, in order (after `skip` bytes, e.g. none). */
export class FrameReader {
  readonly frames: Frame[] = [];
  private buf = Buffer.alloc(0);
  ended = false;

  constructor(conn: Duplex) {
    conn.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 9) {
        const len = this.buf.readUIntBE(0, 3);
        if (this.buf.length < 9 + len) break;
        this.frames.push({ type: this.buf[3]!, flags: this.buf[4]!, streamId: this.buf.readUInt32BE(5) & 0x7fffffff, payload: this.buf.subarray(9, 9 + len) });
        this.buf = this.buf.subarray(9 + len);
      }
    });
    conn.on("end", () => (this.ended = true));
    conn.on("close", () => (this.ended = true));
  }

  /** Resolves once `cond` holds over the frames received so far; rejects after `ms`. */
  async until(cond: (frames: Frame[]) => boolean, ms: number, what: string): Promise<void> {
    const end = Date.now() + ms;
    while (!cond(this.frames)) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; frames: ${this.describe()}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  describe(): string {
    return this.frames.map((f) => `${f.type}/${f.flags}/${f.streamId}/${f.payload.length}`).join(" ");
  }
}
