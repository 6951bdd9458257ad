// pcap output is readable by tcpdump and round-trips byte for byte.
import { describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { PcapNetif, readPcap } from "../../../stack/netif/pcap.js";
import { VirtualSwitch } from "../../../stack/netif/vswitch.js";
import { Stack } from "../../../stack/stack.js";

describe("pcap (LINKTYPE_ETHERNET, microsecond timestamps)", () => {
  it("records both directions of a ping; tcpdump reads it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "paf-pcap-"));
    const file = join(dir, "a.pcap");
    const sw = new VirtualSwitch();
    const pn = new PcapNetif(sw.port(), file);
    const a = Stack.create({ netif: pn, ipv4: { address: "198.18.0.1/24" } });
    const b = Stack.create({ netif: sw.port(), ipv4: { address: "198.18.0.2/24" } });
    await a.ping("198.18.0.2");
    await a.close();
    await b.close();
    const recs = readPcap(file);
    // gratuitous ARPs (ours, theirs), ARP request+reply, echo request+reply
    expect(recs.length).toBeGreaterThanOrEqual(5);
    expect(recs.some((r) => r.data[12] === 0x08 && r.data[13] === 0x00 && r.data[14 + 20] === 8)).toBe(true);
    expect(recs.some((r) => r.data[12] === 0x08 && r.data[13] === 0x00 && r.data[14 + 20] === 0)).toBe(true);
    let out: string;
    try {
      out = execFileSync("tcpdump", ["-r", file, "-nn"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    } catch (e) {
      if ((e as { code?: string }).code === "ENOENT") {
        if (process.env.PAF_ALLOW_SKIP_PRIVILEGED === "1") return console.warn("!!! tcpdump missing: skipped the tcpdump half");
        throw new Error("tcpdump is required for this test (apt-get install tcpdump)");
      }
      throw e;
    }
    expect(out.trim().split("\n").length).toBe(recs.length);
    expect(out).toMatch(/198\.18\.0\.1 > 198\.18\.0\.2: ICMP echo request/);
    expect(out).toMatch(/198\.18\.0\.2 > 198\.18\.0\.1: ICMP echo reply/);
  });
});
