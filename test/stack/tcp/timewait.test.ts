// TIME-WAIT as small records (stack/tcp/timewait.ts): a connection that reaches it lets go of its
// control block, the record keeps the 4-tuple for 2 x MSL (a connect() avoids it), and a stack's
// close() ends every record. Two stacks on the virtual switch, virtual clock.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import type { TcpFlow } from "../../../stack/tcp/flow.js";
import { pair } from "./helpers.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

describe("TIME-WAIT records", () => {
  it("connections that reach TIME-WAIT are collected; the records hold their 4-tuples for 2 x MSL, then go", async () => {
    const p = await pair({ limits: { tcp: { mslMs: 1000 } } });
    const N = 40;
    const refs: WeakRef<object>[] = [];
    let accepted = 0;
    // The server closes first: its side of every connection goes to TIME-WAIT.
    p.b.tcp.listen({ port: 80 }, (f: TcpFlow) => {
      accepted++;
      refs.push(new WeakRef(f), new WeakRef((f as unknown as { tcb: object }).tcb));
      f.end();
    });
    for (let i = 0; i < N; i++) p.a.tcp.connect({ host: "198.18.0.2", port: 80 }).then((c) => c.resume());
    await p.until(() => accepted === N && p.a.tcp.layer.connectionCount === 0, "all closed");
    await p.until(() => p.b.stats().tcp!["time_wait_connections"] === N, "TIME-WAIT");
    expect(p.b.tcp.layer.connections()).toEqual([]); // no control block left in the table
    expect(p.b.stats().tcp).toMatchObject({ connections: N, time_wait: N, time_wait_connections: N });
    // Nothing but the test's WeakRefs holds the flows and their control blocks now.
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((r) => setImmediate(r));
    }
    expect(refs.filter((r) => r.deref() !== undefined).length).toBe(0);
    // 2 x MSL later the records are gone too.
    await p.until(() => p.b.stats().tcp!["time_wait_connections"] === 0, "TIME-WAIT over", 2500);
    expect(p.b.tcp.layer.connectionCount).toBe(0);
    await p.close();
  });

  it("an active opener's ephemeral ports skip its TIME-WAIT records; close() ends them", async () => {
    const p = await pair({ limits: { tcp: { ephemeralLow: 50000, ephemeralHigh: 50003 } } });
    let accepted = 0;
    p.b.tcp.listen({ port: 80 }, (f: TcpFlow) => {
      accepted++;
      f.resume();
      f.on("end", () => f.end());
    });
    // The client (a) closes first: its four ports go to TIME-WAIT, and the fifth connect finds none free.
    for (let i = 0; i < 4; i++) {
      const c = await p.a.tcp.connect({ host: "198.18.0.2", port: 80 });
      c.resume();
      c.end();
      await p.until(() => p.a.stats().tcp!["time_wait_connections"] === i + 1, "TIME-WAIT");
    }
    expect(accepted).toBe(4);
    await expect(p.a.tcp.connect({ host: "198.18.0.2", port: 80 })).rejects.toMatchObject({ code: "EADDRNOTAVAIL" });
    await p.a.close();
    expect(p.a.stats().tcp).toMatchObject({ time_wait_connections: 0, connections: 0 });
    await p.b.close();
  });
});
