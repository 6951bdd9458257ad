// The port shared by HTTP/1.x and h2c tells them apart by the HTTP/2 connection preface
// (RFC 9113 §3.4). A client that opens with the preface's request line "PRI * HTTP/2.0" meant
// HTTP/2 (no HTTP/1.x request can be that line), so if the rest of the preface is wrong it gets
// what RFC 9113 §3.4 and §5.4.1 ask for: GOAWAY(PROTOCOL_ERROR) and the connection closed, not an
// HTTP/1.1 400. Anything else that is not the preface is HTTP/1.x, and h2spec's "invalid connection
// preface" case (3.5/2: "INVALID CONNECTION PREFACE\r\n\r\n", connection must close) is an
// HTTP/1.1 parse error answered with 400 and a close. h2spec itself is not packaged for Debian
// and cannot be built here (its Go modules are out of reach), so these are its cases by hand:
// in-process (no root) and from a network namespace over TAP with Python's sockets.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VirtualSwitch } from "../../stack/netif/vswitch.js";
import { TapNetif } from "../../stack/netif/tap.js";
import { Stack } from "../../stack/stack.js";
import { serve, type ServeHandle } from "../../http/serve.js";
import { stackListener } from "../../http/listener.js";
import { httpService } from "../../http/services.js";
import { demoApp } from "../../http/app.js";
import { Netns, privileged } from "../helpers/netns.js";
import { ERROR, FRAME, FrameReader, PREFACE, getRequest, settings } from "../helpers/h2raw.js";

/** Clients that begin HTTP/2 and then break the preface (RFC 9113 §3.4). */
const BROKEN: Array<[string, Buffer]> = [
  ["the magic's last line wrong", Buffer.from("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")],
  ["the magic cut short, then a frame", Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\n"), settings()])],
  ["HTTP/1.1 after the request line", Buffer.from("PRI * HTTP/2.0\r\nHost: paf.test\r\n\r\n")],
];

describe("connection preface on the shared HTTP/1.x + h2c port (in-process stacks)", () => {
  let server: Stack;
  let client: Stack;
  let h: ServeHandle;
  beforeAll(() => {
    const sw = new VirtualSwitch();
    server = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" } });
    client = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.1/24" } });
    h = serve(httpService(demoApp(), { log: () => {} }), stackListener(server, { port: 80 }));
  });
  afterAll(async () => {
    await h?.stop(200);
    await server?.close();
    await client?.close();
  });

  async function exchange(bytes: Buffer): Promise<{ reader: FrameReader; raw: () => string }> {
    const conn = client.tcp.connectFlow({ host: "198.18.0.2", port: 80 });
    await new Promise((res) => conn.once("connect", res));
    let raw = "";
    conn.on("data", (d: Buffer) => (raw += d.toString("latin1")));
    const reader = new FrameReader(conn);
    conn.write(bytes);
    return { reader, raw: () => raw };
  }

  for (const [what, bytes] of BROKEN) {
    it(`${what}: SETTINGS, GOAWAY(PROTOCOL_ERROR, last stream 0), connection closed`, async () => {
      const { reader } = await exchange(bytes);
      await reader.until(() => reader.ended, 3000, "the connection to close");
      expect(reader.frames.map((f) => f.type)).toEqual([FRAME.SETTINGS, FRAME.GOAWAY]);
      const goaway = reader.frames[1]!.payload;
      expect({ lastStreamId: goaway.readUInt32BE(0), code: goaway.readUInt32BE(4) }).toEqual({ lastStreamId: 0, code: ERROR.PROTOCOL_ERROR });
    });
  }

  it("h2spec 3.5/2 (not the preface at all): an HTTP/1.1 400, then the connection closes", async () => {
    const { reader, raw } = await exchange(Buffer.from("INVALID CONNECTION PREFACE\r\n\r\n"));
    await reader.until(() => reader.ended, 3000, "the connection to close");
    expect(raw()).toMatch(/^HTTP\/1\.1 400 /);
  });

  it("a valid preface and SETTINGS in small pieces still reaches HTTP/2", async () => {
    const conn = client.tcp.connectFlow({ host: "198.18.0.2", port: 80 });
    await new Promise((res) => conn.once("connect", res));
    const reader = new FrameReader(conn);
    const all = Buffer.concat([PREFACE, settings(), getRequest(1, "/")]);
    for (let i = 0; i < all.length; i += 5) {
      conn.write(all.subarray(i, i + 5));
      await new Promise((res) => setTimeout(res, 2));
    }
    await reader.until((fs) => fs.some((f) => f.type === FRAME.HEADERS && f.streamId === 1), 3000, "the response HEADERS");
    conn.destroy();
  });
});

const run = privileged();

describe.skipIf(!run)("connection preface over TAP, raw sockets from the namespace", () => {
  let ns: Netns;
  let stack: Stack;
  const TAP = "pafp" + (process.pid % 10000);
  beforeAll(async () => {
    ns = await Netns.create("preface");
    stack = Stack.create({ netif: TapNetif.open(TAP, { netns: ns.path, up: true }), ipv4: { address: "198.18.0.2/24" } });
    await ns.kernelSide(TAP, "198.18.0.1/24", undefined);
    serve(httpService(demoApp(), { log: () => {} }), stackListener(stack, { port: 80 }));
  });
  afterAll(async () => {
    try {
      await stack?.close();
    } finally {
      await ns?.destroy();
    }
  });

  // Sends the bytes, reads until the server closes (2 s at most, h2spec's default timeout), prints
  // what came back in hex and whether the connection was closed.
  const PY = `
import socket, sys, time
s = socket.create_connection(("198.18.0.2", 80), timeout=2)
s.sendall(bytes.fromhex(sys.argv[1]))
got, closed, end = b"", False, time.time() + 2
while time.time() < end:
    try:
        d = s.recv(65536)
    except socket.timeout:
        break
    except ConnectionResetError:
        closed = True
        break
    if not d:
        closed = True
        break
    got += d
print(got.hex(), "closed" if closed else "open")
`;
  const send = async (bytes: Buffer) => {
    const r = await ns.exec("python3", ["-c", PY, bytes.toString("hex")], 10_000);
    const [hex, state] = r.stdout.trim().split(" ");
    return { got: Buffer.from(hex ?? "", "hex"), closed: state === "closed" };
  };

  it("a broken preface after 'PRI * HTTP/2.0': SETTINGS then GOAWAY(PROTOCOL_ERROR), closed", async () => {
    const { got, closed } = await send(BROKEN[0]![1]);
    expect(closed).toBe(true);
    expect(got.subarray(0, 9).equals(settings())).toBe(true);
    // GOAWAY header (type 7, stream 0), then last stream 0 and the error code.
    expect({ type: got[12], stream: got.readUInt32BE(14), lastStreamId: got.readUInt32BE(18), code: got.readUInt32BE(22) }).toEqual({
      type: FRAME.GOAWAY,
      stream: 0,
      lastStreamId: 0,
      code: ERROR.PROTOCOL_ERROR,
    });
  });

  it("h2spec 3.5/2 'INVALID CONNECTION PREFACE': closed within 2 s", async () => {
    const { got, closed } = await send(Buffer.from("INVALID CONNECTION PREFACE\r\n\r\n"));
    expect(closed).toBe(true);
    expect(got.toString("latin1")).toMatch(/^HTTP\/1\.1 400 /);
  });
});
