"""A WebSocket peer nobody in paf wrote: Debian's python3-websockets, as client or server.

  ws_peer.py client URL [CAFILE]   run the checks against an echo server at URL, print one JSON line
  ws_peer.py server PORT TLSPORT CERT KEY
                                   echo server on ws://0.0.0.0:PORT and wss://0.0.0.0:TLSPORT; a text
                                   message "close CODE REASON" makes it close with that code; prints
                                   "ready", then "closed CODE REASON" for every connection that ends

Every wait is bounded (asyncio.wait_for), so a stuck peer fails the test instead of hanging it.
"""
import asyncio
import hashlib
import json
import os
import ssl
import sys
import time

import websockets

MESSAGES = 10_000
BIG = 16 * 1024 * 1024
MAX_SIZE = 64 * 1024 * 1024
LIMIT = 60


async def client(url, cafile):
    ctx = ssl.create_default_context(cafile=cafile) if url.startswith("wss:") else None
    out = {"websockets": websockets.__version__}
    async with websockets.connect(url, ssl=ctx, max_size=MAX_SIZE, open_timeout=10) as ws:
        # 10,000 messages, sent while the echoes are read back, in order.
        started = time.monotonic()

        async def send_all():
            for i in range(MESSAGES):
                await ws.send(f"message {i}")

        sender = asyncio.create_task(send_all())
        echoed = 0
        for i in range(MESSAGES):
            m = await asyncio.wait_for(ws.recv(), LIMIT)
            if m != f"message {i}":
                raise AssertionError(f"echo {i}: got {m!r}")
            echoed += 1
        await sender
        out["echoed"] = echoed
        out["echo_ms"] = round((time.monotonic() - started) * 1000)
        # Binary stays binary, text stays text.
        await ws.send(b"\x00\x01binary\xff")
        b = await asyncio.wait_for(ws.recv(), LIMIT)
        out["binary_type"] = type(b).__name__
        # A 16 MB binary message, back intact.
        big = os.urandom(BIG)
        started = time.monotonic()
        await ws.send(big)
        back = await asyncio.wait_for(ws.recv(), LIMIT)
        out["big_len"] = len(back)
        out["big_same"] = hashlib.sha256(back).hexdigest() == hashlib.sha256(big).hexdigest()
        out["big_ms"] = round((time.monotonic() - started) * 1000)
        # Ping: the pong carries the same data back (RFC 6455 §5.5.3).
        waiter = await ws.ping(b"paf-ping")
        await asyncio.wait_for(waiter, 10)
        out["pong"] = True
        # Close with a code of our own and a reason: the server answers with the same (§5.5.1).
        await asyncio.wait_for(ws.close(4001, "bye from python"), 10)
        out["close_4001"] = [ws.close_code, ws.close_reason]
    async with websockets.connect(url, ssl=ctx, open_timeout=10) as ws:
        await ws.send("one more")
        out["second"] = await asyncio.wait_for(ws.recv(), LIMIT)
        await asyncio.wait_for(ws.close(1000), 10)
        out["close_1000"] = [ws.close_code, ws.close_reason]
    print(json.dumps(out), flush=True)


async def echo(ws, *_path):
    try:
        async for m in ws:
            if isinstance(m, str) and m.startswith("close "):
                _, code, reason = m.split(" ", 2)
                await ws.close(int(code), reason)
                break
            await ws.send(m)
    finally:
        await ws.wait_closed()
        print(f"closed {ws.close_code} {ws.close_reason}", flush=True)


async def server(port, tls_port, cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    async with websockets.serve(echo, "0.0.0.0", port, max_size=MAX_SIZE), websockets.serve(echo, "0.0.0.0", tls_port, ssl=ctx, max_size=MAX_SIZE):
        print("ready", flush=True)
        await asyncio.sleep(300)  # bounded: the test kills it long before


if __name__ == "__main__":
    if sys.argv[1] == "client":
        asyncio.run(client(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
    else:
        asyncio.run(server(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]))
