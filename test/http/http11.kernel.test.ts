// HTTP/1.1 details over the userspace stack: pipelining, Expect: 100-continue, Upgrade.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Netns, privileged, sh } from "../helpers/netns.js";
import { TapNetif } from "../../stack/netif/tap.js";
import { Stack } from "../../stack/stack.js";
import { serve } from "../../http/serve.js";
import { stackListener } from "../../http/listener.js";
import { httpService } from "../../http/services.js";
import { demoApp } from "../../http/app.js";

const run = privileged();

describe.skipIf(!run)("HTTP/1.1 features over TAP", () => {
  let ns: Netns;
  let stack: Stack;
  const TAP = "pafq" + (process.pid % 10000);
  beforeAll(async () => {
    ns = await Netns.create("h11");
    stack = Stack.create({ netif: TapNetif.open(TAP, { netns: ns.path, up: true }), ipv4: { address: "198.18.0.2/24" } });
    await ns.kernelSide(TAP, "198.18.0.1/24", undefined);
    serve(
      httpService(demoApp(), {
        log: () => {},
        // A toy protocol behind Upgrade: after 101, echo bytes back upper-cased.
        upgrade: (req, socket, head) => {
          if (req.headers.upgrade !== "paf-shout") return void socket.destroy();
          socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: paf-shout\r\nConnection: Upgrade\r\n\r\n");
          if (head.length) socket.write(head.toString().toUpperCase());
          socket.on("data", (d: Buffer) => socket.write(d.toString().toUpperCase()));
          socket.on("end", () => socket.end());
        },
      }),
      stackListener(stack, { port: 80 }),
    );
  });
  afterAll(async () => {
    try {
      await stack?.close();
    } finally {
      await ns?.destroy();
    }
  });

  it("pipelining (RFC 9112 §9.3.2): three requests in one segment get three responses, in order", async () => {
    // Kept open: the responses come back in request order on one connection.
    const open = await ns.exec("bash", [
      "-c",
      `(printf 'GET /bytes/5 HTTP/1.1\\r\\nHost: p\\r\\n\\r\\nGET / HTTP/1.1\\r\\nHost: p\\r\\n\\r\\nGET /bytes/7 HTTP/1.1\\r\\nHost: p\\r\\n\\r\\n'; sleep 1) | timeout 5 nc -q 1 198.18.0.2 80`,
    ]);
    const lengths = [...open.stdout.matchAll(/Content-Length: (\d+)/gi)].map((m) => Number(m[1]));
    expect(open.stdout.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(3);
    expect(lengths[0]).toBe(5);
    expect(lengths[2]).toBe(7);
    // Half-closed right after the requests (FIN in the same batch as the data): no response is lost.
    const halfClosed = await ns.exec("bash", [
      "-c",
      `printf 'GET /bytes/5 HTTP/1.1\\r\\nHost: p\\r\\n\\r\\nGET / HTTP/1.1\\r\\nHost: p\\r\\n\\r\\nGET /bytes/7 HTTP/1.1\\r\\nHost: p\\r\\n\\r\\n' | timeout 5 nc -N 198.18.0.2 80`,
    ]);
    expect(halfClosed.stdout.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(3);
  });

  it("Expect: 100-continue gets an interim 100 before the body is sent", async () => {
    const r = await sh("bash", [
      "-c",
      `head -c 2000000 /dev/zero > /tmp/paf-100-$$ && ip netns exec ${ns.name} curl -sS -v --max-time 10 -H 'Expect: 100-continue' --data-binary @/tmp/paf-100-$$ http://198.18.0.2/sha256 2>&1; rm -f /tmp/paf-100-$$`,
    ]);
    expect(r.stdout).toMatch(/< HTTP\/1\.1 100 Continue/);
    expect(r.stdout).toMatch(/< HTTP\/1\.1 200 OK/);
    expect(r.stdout).toMatch(/13aea96040f2133033d103008d5d96cfe98b3361f7202d77bea97b2424a7a6cd/); // sha256 of 2 MB of zeros
  });

  it("Upgrade hands the raw connection to the application after a 101", async () => {
    const r = await ns.exec("bash", [
      "-c",
      `(printf 'GET /shout HTTP/1.1\\r\\nHost: paf\\r\\nConnection: Upgrade\\r\\nUpgrade: paf-shout\\r\\n\\r\\n'; sleep 0.3; printf 'hello over paf'; sleep 0.5) | timeout 5 nc -q 1 198.18.0.2 80`,
    ]);
    expect(r.stdout).toMatch(/^HTTP\/1\.1 101 Switching Protocols/);
    expect(r.stdout).toMatch(/HELLO OVER PAF/);
  });
});
