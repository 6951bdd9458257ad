// Counters (stack/core/stats.ts): the per-packet counters kept as fields (`hot`) read and list
// like the others, and a stack's per-packet counts land there.
import { describe, expect, it } from "vitest";
import { Counters } from "../../stack/core/stats.js";
import { Stack } from "../../stack/stack.js";
import { VirtualSwitch } from "../../stack/netif/vswitch.js";

describe("Counters", () => {
  it("hot fields are read by get() and listed by snapshot() once counted, beside the named ones", () => {
    const c = new Counters("ipv4", { rx_packets: 0, delivered: 0, tx_packets: 0 });
    expect(c.snapshot()).toEqual({});
    c.hot.rx_packets++;
    c.hot.rx_packets++;
    c.inc("rx_fragments");
    c.drop("bad_checksum");
    expect(c.get("rx_packets")).toBe(2);
    expect(c.get("delivered")).toBe(0);
    expect(c.get("rx_fragments")).toBe(1);
    expect(c.get("nonexistent")).toBe(0);
    expect(c.snapshot()).toEqual({ rx_packets: 2, rx_fragments: 1, dropped: 1, drop_bad_checksum: 1 });
  });

  it("a ping between two stacks counts frames, packets and deliveries in stats()", async () => {
    const sw = new VirtualSwitch();
    const a = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.1/24" } });
    const b = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" } });
    await a.ping("198.18.0.2");
    const sa = a.stats();
    const sb = b.stats();
    // a: its ARP request and the echo request out, the ARP reply and the echo reply in (and the
    // stacks' announcements of their addresses).
    expect(sa.ethernet!.tx_frames).toBeGreaterThanOrEqual(2);
    expect(sa.ethernet!.rx_frames).toBeGreaterThanOrEqual(2);
    expect(sb.ethernet!.rx_frames).toBeGreaterThanOrEqual(2);
    expect(sa.ipv4!.tx_packets).toBe(1);
    expect(sa.ipv4!.rx_packets).toBe(1);
    expect(sa.ipv4!.delivered).toBe(1);
    expect(sb.ipv4!.rx_packets).toBe(1);
    expect(sb.ipv4!.tx_packets).toBe(1);
    await Promise.all([a.close(), b.close()]);
  });
});
