// Which parts of a stack keep the process alive, like Node's handles: a listening server does
// (net.Server), unless it or its stack is unref()'d; an idle stack on a virtual switch does not.
import { describe, expect, it } from "vitest";
import { lives } from "../helpers/lives.js";

const SERVER = `
const sw = new paf.VirtualSwitch();
const stack = paf.Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" } });
const server = stack.tcp.listen({ port: 80 }, (f) => f.end());`;

describe("ref / unref", () => {
  it("a listening server keeps the process alive, as a net.Server does", async () => {
    expect(await lives(SERVER, 1500)).toBe("alive");
  });

  it("server.unref() lets it exit; so does stack.unref(), and closing the server", async () => {
    expect(await lives(SERVER + "\nserver.unref();", 3000)).toBe("exited");
    expect(await lives(SERVER + "\nstack.unref();", 3000)).toBe("exited");
    expect(await lives(SERVER + "\nserver.unref(); server.ref(); stack.unref(); stack.ref();", 1500)).toBe("alive");
    expect(await lives(SERVER + "\nserver.close();", 3000)).toBe("exited");
  });

  it("an idle stack alone does not keep the process alive; its work in progress does until done", async () => {
    expect(await lives(`const s = paf.Stack.create({ netif: new paf.VirtualSwitch().port(), ipv4: { address: "198.18.0.2/24" } });`, 3000)).toBe("exited");
    // A ping nobody answers: the process waits for its timeout (1.5 s), then exits.
    const ping = `const s = paf.Stack.create({ netif: new paf.VirtualSwitch().port(), ipv4: { address: "198.18.0.2/24" } });
s.ping("198.18.0.1", { timeoutMs: 1500 }).catch(() => console.log("timed out"));`;
    expect(await lives(ping, 800)).toBe("alive");
    expect(await lives(ping, 4000)).toBe("exited");
    expect(await lives(ping + "\ns.unref();", 1000)).toBe("exited");
  });
});
