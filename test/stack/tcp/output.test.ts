import { describe, expect, it } from "vitest";
import type { Flushable } from "../../../stack/tcp/env.js";
import { OutputScheduler } from "../../../stack/tcp/output.js";

/** A connection that records its flushes, and may owe more output while it flushes. */
function conn(log: string[], name: string, onFlush?: () => void): Flushable {
  return {
    state: "ESTABLISHED",
    outputDue: false,
    retryDue: false,
    flush() {
      log.push(name);
      onFlush?.();
    },
  };
}

describe("OutputScheduler", () => {
  it("flushes each connection once per batch, in the order they asked, however often they asked", () => {
    const out = new OutputScheduler();
    const log: string[] = [];
    const a = conn(log, "a");
    const b = conn(log, "b");
    out.want(a);
    out.want(b);
    out.want(a);
    out.run();
    expect(log).toEqual(["a", "b"]);
    out.run();
    expect(log).toEqual(["a", "b"]);
    out.want(b);
    out.run();
    expect(log).toEqual(["a", "b", "b"]);
  });

  it("skips a forgotten connection, and lists it again when it asks again", () => {
    const out = new OutputScheduler();
    const log: string[] = [];
    const a = conn(log, "a");
    out.want(a);
    out.forget(a);
    out.run();
    expect(log).toEqual([]);
    out.want(a);
    out.forget(a);
    out.want(a);
    out.run();
    expect(log).toEqual(["a"]);
  });

  it("output owed during a flush goes out at the next run, not in a loop", () => {
    const out = new OutputScheduler();
    const log: string[] = [];
    let again = 2;
    const a: Flushable = conn(log, "a", () => {
      if (again-- > 0) out.want(a);
    });
    out.want(a);
    out.run();
    expect(log).toEqual(["a"]);
    out.run();
    out.run();
    out.run();
    expect(log).toEqual(["a", "a", "a"]);
  });

  it("runs by itself at the end of the tick when no batch ends", async () => {
    const out = new OutputScheduler();
    const log: string[] = [];
    out.want(conn(log, "a"));
    expect(log).toEqual([]);
    await Promise.resolve();
    expect(log).toEqual(["a"]);
  });

  it("retries after I/O had a turn, once per connection, and not a closed one", async () => {
    const out = new OutputScheduler();
    const log: string[] = [];
    const a = conn(log, "a");
    const b = conn(log, "b");
    const c = conn(log, "c");
    out.retry(a);
    out.retry(a);
    out.retry(b);
    out.retry(c);
    out.forget(c);
    (b as { state: string }).state = "CLOSED";
    expect(log).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(log).toEqual(["a"]);
    // A connection refused again lists itself for the next round.
    const d: Flushable = conn(log, "d", () => {
      if (log.filter((x) => x === "d").length < 2) out.retry(d);
    });
    out.retry(d);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(log).toEqual(["a", "d", "d"]);
  });
});
