// TCP behaviour between two stacks on the virtual clock: states, closing, resets, bounds,
// backpressure and the net.Socket-like surface of flows.
import { describe, expect, it } from "vitest";
import { connected, pair, pattern, sha256, collect } from "./helpers.js";
import type { TcpFlow } from "../../../stack/tcp/flow.js";

describe("RFC 9293 connection states", () => {
  it("three-way handshake: both ends ESTABLISHED, addresses and ports like net.Socket", async () => {
    const { client, server, close } = await connected();
    expect(client.tcpState).toBe("ESTABLISHED");
    expect(server.tcpState).toBe("ESTABLISHED");
    expect(client.remoteAddress).toBe("198.18.0.2");
    expect(client.remotePort).toBe(80);
    expect(server.remotePort).toBe(client.localPort);
    expect(client.localPort).toBeGreaterThanOrEqual(49152);
    expect(client.address()).toEqual({ address: "198.18.0.1", family: "IPv4", port: client.localPort });
    await close();
  });

  it("half-close: the side that ended can still receive; then FIN-WAIT-2 -> TIME-WAIT, CLOSE-WAIT -> LAST-ACK -> CLOSED", async () => {
    const { client, server, until, close } = await connected();
    const got = collect(client);
    const sg = collect(server);
    client.end("request");
    await until(() => sg.ended && client.tcpState === "FIN-WAIT-2", "server sees FIN, client's FIN acknowledged");
    expect(server.tcpState).toBe("CLOSE-WAIT");
    server.end("response after half-close");
    await until(() => got.ended, "client sees FIN");
    expect(got.data().toString()).toBe("response after half-close");
    expect(sg.data().toString()).toBe("request");
    await until(() => client.tcpState === "TIME-WAIT", "TIME-WAIT");
    await until(() => server.tcpState === "CLOSED", "server CLOSED");
    await close();
  });

  it("simultaneous close: both FIN-WAIT-1 -> CLOSING -> TIME-WAIT", async () => {
    const { client, server, until, close } = await connected();
    client.resume();
    server.resume();
    client.end();
    server.end();
    await until(() => client.tcpState === "TIME-WAIT" && server.tcpState === "TIME-WAIT", "both TIME-WAIT");
    await close();
  });

  it("TIME-WAIT lasts 2 x MSL", async () => {
    const { a, client, server, until, clock, close } = await connected({ limits: { tcp: { mslMs: 1000 } } });
    client.resume();
    server.resume();
    client.end();
    server.end();
    await until(() => client.tcpState === "TIME-WAIT" || server.tcpState === "TIME-WAIT", "TIME-WAIT");
    const t0 = clock.now();
    await until(() => a.tcp.layer.connectionCount === 0, "TIME-WAIT expiry");
    expect(clock.now() - t0).toBeGreaterThanOrEqual(1999);
    expect(clock.now() - t0).toBeLessThan(2100);
    await close();
  });

  it("simultaneous open (§3.10.7.3): two active opens meet", async () => {
    const p = await pair();
    const fa = p.a.tcp.connectFlow({ host: "198.18.0.2", port: 6000, localPort: 5000 });
    const fb = p.b.tcp.connectFlow({ host: "198.18.0.1", port: 5000, localPort: 6000 });
    let ca = false;
    let cb = false;
    fa.on("connect", () => (ca = true));
    fb.on("connect", () => (cb = true));
    fa.on("error", () => {});
    fb.on("error", () => {});
    await p.until(() => fa.tcpState === "ESTABLISHED" && fb.tcpState === "ESTABLISHED", "both ESTABLISHED");
    fa.write("hi");
    const got = await new Promise<string>((r) => fb.once("data", (d: Buffer) => r(d.toString())));
    expect(got).toBe("hi");
    expect(ca || cb).toBe(true);
    await p.close();
  });
});

describe("resets and errors", () => {
  it("connect to a closed port: RST -> ECONNREFUSED", async () => {
    const p = await pair();
    const c = p.a.tcp.connect({ host: "198.18.0.2", port: 81 });
    let err: (Error & { code?: string }) | undefined;
    c.catch((e) => (err = e));
    await p.until(() => err !== undefined, "refusal");
    expect(err!.code).toBe("ECONNREFUSED");
    expect(p.b.stats().tcp!["rst_sent"]).toBe(1);
    await p.close();
  });

  it("resetAndDestroy() sends RST: the peer gets ECONNRESET", async () => {
    const { client, server, until, close } = await connected();
    let err: (Error & { code?: string }) | undefined;
    server.on("error", (e) => (err = e));
    client.resetAndDestroy();
    await until(() => err !== undefined, "reset");
    expect(err!.code).toBe("ECONNRESET");
    await close();
  });

  it("destroy() closes like net.Socket#destroy(): FIN after the queued data, the peer reads a clean end", async () => {
    const { client, server, until, close, a } = await connected();
    const got = collect(server);
    client.write("last words");
    client.destroy();
    await until(() => got.ended, "end");
    expect(got.data().toString()).toBe("last words");
    expect(got.error).toBeUndefined();
    server.end();
    await until(() => a.tcp.layer.connectionCount === 0, "closed");
    expect(a.stats().tcp!["aborts"] ?? 0).toBe(0);
    await close();
  });

  it("destroy() with received data unread sends RST (RFC 2525 §2.17), as close() of a kernel socket does", async () => {
    const { client, server, until, close, a } = await connected();
    let err: (Error & { code?: string }) | undefined;
    client.on("error", (e) => (err = e));
    server.pause();
    client.write("nobody reads this");
    await until(() => server.readableLength > 0, "data arrives");
    server.destroy();
    await until(() => err !== undefined, "reset");
    expect(err!.code).toBe("ECONNRESET");
    expect(a.tcp.layer.connectionCount).toBe(0);
    await close();
  });

  it("data arriving after the application closed gets RST (RFC 1122 §4.2.2.13), not a window's worth of buffering", async () => {
    const { client, server, until, close, b } = await connected();
    let err: (Error & { code?: string }) | undefined;
    client.on("error", (e) => (err = e));
    server.destroy(); // FIN; the client's side stays open and keeps sending
    await until(() => b.tcp.layer.connections()[0]?.state === "FIN-WAIT-2", "our FIN acknowledged");
    client.write("more for a closed socket");
    await until(() => err !== undefined, "reset");
    expect(err!.code).toBe("ECONNRESET");
    expect(b.stats().tcp!["aborts_on_data"]).toBe(1);
    expect(b.tcp.layer.connectionCount).toBe(0);
    await close();
  });

  it("an orphan that reaches TIME-WAIT is no longer counted as one", async () => {
    const { client, server, until, close, b } = await connected();
    client.resume();
    server.destroy();
    await until(() => b.stats().tcp!["orphans"] === 1 || b.tcp.layer.connections()[0]?.state === "FIN-WAIT-2", "orphaned");
    client.end();
    await until(() => b.stats().tcp!["time_wait_connections"] === 1, "TIME-WAIT");
    expect(b.stats().tcp).toMatchObject({ orphans: 0, time_wait_connections: 1 });
    await close();
  });

  it("an orphan whose peer never finishes closing is reset after orphanTimeoutMs", async () => {
    const { client, server, until, close, b, clock } = await connected({ limits: { tcp: { orphanTimeoutMs: 10_000, finWait2TimeoutMs: 0 } } });
    let err: (Error & { code?: string }) | undefined;
    client.on("error", (e) => (err = e));
    client.pause(); // the peer never reads our FIN, never closes
    const t0 = clock.now();
    server.destroy();
    await until(() => b.stats().tcp!["orphans"] === 1, "orphaned");
    await until(() => err !== undefined, "reaped");
    expect(err!.code).toBe("ECONNRESET");
    expect(clock.now() - t0).toBeGreaterThanOrEqual(10_000);
    expect(clock.now() - t0).toBeLessThan(11_000);
    expect(b.stats().tcp).toMatchObject({ orphans_reaped: 1, orphans: 0, connections: 0 });
    await close();
  });

  it("an orphan still delivering to a slow reader lives on: orphanTimeoutMs counts from the peer's last acknowledgement", async () => {
    // The client closes its side once it has read to the end (no half-open): the orphan then ends.
    const { client, server, until, close, b, clock } = await connected({ limits: { tcp: { orphanTimeoutMs: 10_000, receiveBufferSize: 16384, maxReceiveBufferSize: 16384 } } }, false);
    let err: (Error & { code?: string }) | undefined;
    client.on("error", (e) => (err = e));
    client.pause();
    const size = 200_000;
    server.write(Buffer.alloc(size, 7));
    await until(() => server.writableLength === 0, "all of it queued in the connection");
    const t0 = clock.now();
    server.destroy(); // FIN after the queued data, in the background
    // The reader takes 4 KB per (virtual) second, on the virtual clock: 200 KB take ~50 s, five
    // orphan timeouts.
    let got = 0;
    const readSome = () => {
      const n = Math.min(4096, client.readableLength);
      if (n > 0) got += (client.read(n) as Buffer).length;
      if (got < size && !err) clock.setTimer(1000, readSome);
    };
    clock.setTimer(1000, readSome);
    await until(() => got === size || err !== undefined, "the reader", 200_000);
    expect(err).toBeUndefined();
    expect(got).toBe(size);
    expect(clock.now() - t0).toBeGreaterThan(30_000);
    client.resume();
    await until(() => client.readableEnded && b.tcp.layer.connections()[0]?.state !== "FIN-WAIT-2", "both FINs");
    expect(b.stats().tcp!["orphans_reaped"] ?? 0).toBe(0);
    await close();
  });

  it("TIME-WAIT is bounded (maxTimeWait): beyond it a closing connection acknowledges the FIN and is gone at once", async () => {
    const p = await pair({ limits: { tcp: { maxTimeWait: 2 } } });
    const accepted: TcpFlow[] = [];
    p.b.tcp.listen({ port: 80 }, (f) => accepted.push(f));
    const clients = await Promise.all(Array.from({ length: 4 }, () => p.a.tcp.connect({ host: "198.18.0.2", port: 80 })));
    await p.until(() => accepted.length === 4, "accept");
    for (const c of clients) c.resume();
    for (const f of accepted) f.end(); // the server closes first: its side would go to TIME-WAIT
    await p.until(() => p.a.tcp.layer.connectionCount === 0, "clients closed");
    await p.until(() => p.b.tcp.layer.connectionCount === 2, "two in TIME-WAIT");
    expect(p.b.stats().tcp).toMatchObject({ time_wait: 2, time_wait_connections: 2, drop_time_wait_overflow: 2 });
    await p.until(() => p.b.tcp.layer.connectionCount === 0, "TIME-WAIT over");
    expect(p.b.stats().tcp!["time_wait_connections"]).toBe(0);
    await p.close();
  });

  it("write after end fails with EPIPE", async () => {
    const { client, close } = await connected();
    client.on("error", () => {});
    client.end();
    const err = await new Promise<Error & { code?: string }>((r) => client.write("late", (e) => r(e as Error & { code?: string })));
    expect(err.code).toMatch(/EPIPE|ERR_STREAM_WRITE_AFTER_END/);
    await close();
  });

  it("connect timeout: the peer is known but never answers -> ETIMEDOUT", async () => {
    const p = await pair();
    // The neighbour is resolved first (a ping), then the link goes silent: only the SYNs are lost.
    let pinged = false;
    void p.a.ping("198.18.0.2").then(() => (pinged = true));
    await p.until(() => pinged, "ping");
    p.fa.setFaults({ tx: { drop: 1 } });
    const c = p.a.tcp.connect({ host: "198.18.0.2", port: 80, timeout: 3000 });
    let err: (Error & { code?: string }) | undefined;
    c.catch((e) => (err = e));
    await p.until(() => err !== undefined, "timeout");
    expect(err!.code).toBe("ETIMEDOUT");
    await p.close();
  });

  for (const family of [4, 6] as const) {
    it(`a next hop that never answers address resolution (IPv${family}): connect fails with EHOSTUNREACH after ~3 s, as on Linux`, async () => {
      const p = await pair({ faults: { drop: 1 }, family });
      const t0 = p.clock.now();
      const c = p.a.tcp.connect({ host: family === 4 ? "198.18.0.2" : "2001:db8::2", port: 80 });
      let err: (Error & { code?: string }) | undefined;
      let at = 0;
      c.catch((e) => {
        err = e;
        at = p.clock.now() - t0;
      });
      await p.until(() => err !== undefined, "unreachable");
      expect(err!.code).toBe("EHOSTUNREACH");
      expect(at).toBeGreaterThanOrEqual(3000);
      expect(at).toBeLessThan(3500);
      const st = p.a.stats();
      const [nd, icmp] = family === 4 ? [st.arp!, st.icmpv4!] : [st.ndp!, st.icmpv6!];
      expect(nd["resolution_failed"]).toBe(1);
      // The SYN and its retransmissions waited for the neighbour: each is reported.
      expect(icmp["link_failures"]).toBe(nd["drop_unresolved"]);
      await p.close();
    });
  }

  it("keepalive: probes, then ETIMEDOUT when the peer stops answering", async () => {
    const { client, until, fa, fb, a, close } = await connected({ limits: { tcp: { keepAliveIntervalMs: 1000, keepAliveProbes: 3 } } });
    let err: (Error & { code?: string }) | undefined;
    client.on("error", (e) => (err = e));
    client.setKeepAlive(true, 5000);
    fb.setFaults({ tx: { drop: 1 } });
    fa.setFaults({ tx: { drop: 1 } });
    await until(() => err !== undefined, "keepalive timeout");
    expect(err!.code).toBe("ETIMEDOUT");
    expect(a.stats().tcp!["keepalive_probes"]).toBe(3);
    await close();
  });
});

describe("flow control and buffers", () => {
  it("write() returns false beyond the send buffer, then 'drain'", async () => {
    const { client, server, until, close } = await connected({ limits: { tcp: { sendBufferSize: 64 * 1024 } } });
    server.resume();
    const big = pattern(256 * 1024);
    expect(client.write(big)).toBe(false);
    let drained = false;
    client.once("drain", () => (drained = true));
    await until(() => drained, "drain");
    await close();
  });

  it("an application that stops reading closes the window (zero window) instead of buffering; reading reopens it", async () => {
    const { client, server, until, a, b, close } = await connected({ limits: { tcp: { receiveBufferSize: 64 * 1024 } } });
    server.pause();
    const data = pattern(1_000_000);
    const ended = new Promise<void>((r) => client.end(data, () => r()));
    await until(() => a.tcp.layer.connections()[0]!.sndWnd === 0, "zero window");
    const tcb = b.tcp.layer.connections()[0]!;
    // The buffer, give or take the rounding of the closing window's edge to the scale (each ACK
    // rounds it up, as Linux's does): never more than the buffer and an eighth.
    expect(tcb.unread).toBeLessThanOrEqual(64 * 1024 * (9 / 8));
    expect(server.readableLength).toBeLessThanOrEqual(64 * 1024 * (9 / 8));
    await until(() => (a.stats().tcp!["window_probes"] ?? 0) > 0, "a window probe");
    const got = collect(server);
    server.resume();
    await until(() => got.ended, "all data after resume").catch((e) => {
      const t = b.tcp.layer.connections()[0]!;
      const s = a.tcp.layer.connections()[0]!;
      throw new Error(
        `${(e as Error).message}: got ${got.bytes}; receiver unread ${t.unread} readable ${server.readableLength} flowing ${server.readableFlowing}; sender wnd ${s.sndWnd} una ${s.sndUna - s.iss} max ${s.sndMax - s.iss} ${JSON.stringify(a.stats().tcp)}`,
      );
    });
    expect(sha256(got.data())).toBe(sha256(data));
    await ended;
    await close();
  });

  it("Nagle coalesces small writes while data is in flight; setNoDelay sends each at once", async () => {
    const run = async (noDelay: boolean) => {
      const { client, server, until, a, close } = await connected({ faults: { delayMs: 20 } });
      client.setNoDelay(noDelay);
      const got = collect(server);
      const before = a.stats().tcp!["tx_segments"] ?? 0;
      for (let i = 0; i < 20; i++) {
        client.write("x");
        await new Promise((r) => setImmediate(r)); // separate ticks: no write coalescing
      }
      await until(() => got.bytes === 20, "20 bytes");
      const segs = (a.stats().tcp!["tx_segments"] ?? 0) - before;
      await close();
      return segs;
    };
    const nagle = await run(false);
    const nodelay = await run(true);
    expect(nodelay).toBeGreaterThanOrEqual(20);
    expect(nagle).toBeLessThan(10);
  });

  it("setTimeout emits 'timeout' after idle time; bytesRead/bytesWritten count", async () => {
    const { client, server, until, close } = await connected();
    let timedOut = false;
    client.setTimeout(5000, () => (timedOut = true));
    server.write("12345");
    client.write("abc");
    await until(() => client.bytesRead === 5 && server.bytesRead === 3, "bytes");
    expect(client.bytesWritten).toBe(3);
    await until(() => timedOut, "timeout");
    await close();
  });

  it("SYN cookies (RFC 4987) answer when the SYN queue is full, and those connections work", async () => {
    const p = await pair({ limits: { tcp: { synQueueSize: 2 } } });
    const accepted: TcpFlow[] = [];
    p.b.tcp.listen({ port: 80, backlog: 2 }, (f) => {
      accepted.push(f);
      f.pipe(f);
    });
    const conns = Array.from({ length: 8 }, () => p.a.tcp.connect({ host: "198.18.0.2", port: 80 }));
    await p.until(() => accepted.length === 8, "8 accepted");
    expect(p.b.stats().tcp!["syn_cookies_sent"]).toBeGreaterThan(0);
    expect(p.b.stats().tcp!["syn_cookies_validated"]).toBeGreaterThan(0);
    const flows = await Promise.all(conns);
    const echoes = flows.map((f, i) => new Promise<string>((r) => f.once("data", (d: Buffer) => r(d.toString()))).then((s) => expect(s).toBe(`c${i}`)));
    for (const [i, f] of flows.entries()) f.write(`c${i}`);
    await p.until(() => false, "echoes", 100).catch(() => undefined);
    await Promise.all(echoes);
    await p.close();
  });

  it("SACK (RFC 2018): one lost segment is repaired by retransmitting only the hole", async () => {
    const { client, server, until, a, fa, close } = await connected();
    const got = collect(server);
    let n = 0;
    fa.setFaults({ tx: {} });
    // Drop exactly the 5th data frame the client sends.
    const orig = fa.send.bind(fa);
    fa.send = (f: Uint8Array) => (++n === 5 ? true : orig(f));
    const data = pattern(200_000);
    client.end(data);
    await until(() => got.ended, "transfer");
    expect(sha256(got.data())).toBe(sha256(data));
    expect(a.stats().tcp!["retransmitted_segments"]).toBe(1);
    await close();
  });
});

describe("RFC 5681 §3.2 fast retransmit", () => {
  it("one loss inside a short transfer is repaired by fast retransmit, never by a timeout", async () => {
    const { client, server, until, a, fa, close } = await connected();
    const got = collect(server);
    let n = 0;
    const send = fa.send.bind(fa);
    fa.send = (f: Uint8Array) => (f.length > 1000 && ++n === 2 ? true : send(f)); // lose the 2nd data segment
    // 6 segments go out at once (IW10); the 4 behind the hole produce the duplicate ACKs (and
    // SACK blocks) that trigger the retransmission.
    const data = pattern(6 * 1448);
    client.end(data);
    await until(() => got.ended, "transfer");
    expect(sha256(got.data())).toBe(sha256(data));
    expect(a.stats().tcp!["fast_retransmits"] ?? 0).toBe(1);
    expect(a.stats().tcp!["rto_timeouts"] ?? 0).toBe(0);
    await close();
  });
});

describe("RFC 3042 limited transmit", () => {
  const run = async (limitedTransmit: boolean) => {
    const { client, server, until, a, fa, close } = await connected({ limits: { tcp: { limitedTransmit, tailLossProbe: false } } });
    const tcb = a.tcp.layer.connections()[0]!;
    tcb.cc.cwnd = 3 * tcb.mss; // a window of three segments
    const got = collect(server);
    let n = 0;
    const send = fa.send.bind(fa);
    fa.send = (f: Uint8Array) => (f.length > 1000 && ++n === 1 ? true : send(f)); // lose the first segment
    const data = pattern(10 * 1448);
    client.end(data);
    await until(() => got.ended, "transfer");
    expect(sha256(got.data())).toBe(sha256(data));
    const st = a.stats().tcp!;
    await close();
    return { rto: st["rto_timeouts"] ?? 0, fast: st["fast_retransmits"] ?? 0 };
  };
  it("with a 3-segment window, new segments sent on the first two duplicate ACKs bring the third: fast retransmit, no timeout", async () => {
    expect(await run(true)).toEqual({ rto: 0, fast: 1 });
  });
  it("without it the same loss waits for the retransmission timeout", async () => {
    const r = await run(false);
    expect(r.rto).toBeGreaterThanOrEqual(1);
  });
});
