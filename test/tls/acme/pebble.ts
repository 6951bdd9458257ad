/**
 * A real ACME server for the tests: pebble and pebble-challtestsrv (Debian's `pebble` package)
 * inside a test namespace, on the kernel side of a TAP (198.18.0.1). challtestsrv's DNS answers
 * every A query with the paf stack's address, so pebble validates HTTP-01 over the TAP.
 * challtestsrv's DNS listens on the kernel side too, so a paf stack can use it as its resolver.
 * Pebble's own listener gets a certificate made here with openssl (its CA file is `caPath`); the
 * root that signs the issued certificates comes from pebble's management port (`rootPem()`).
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import { waitFor, type Netns } from "../../helpers/netns.js";
import { opensslCert } from "../../helpers/certs.js";

export interface Pebble {
  directoryUrl: string;
  /** The CA file for pebble's own HTTPS listener (its self-signed certificate). */
  caPath: string;
  dir: string;
  /** Pebble's current issuing root (fetched from the management port, inside the namespace). */
  rootPem(): Promise<string>;
  /** challtestsrv's DNS server (every A query answered with `answer`, except names added). */
  dnsServer: string;
  /** Make challtestsrv answer `host`'s A queries with `address` (its management API). */
  addA(host: string, address: string): Promise<void>;
  /** Everything pebble and challtestsrv printed (for failure messages). */
  output(): string;
  stop(): void;
}

export interface PebbleOptions {
  /** Address of the kernel side (pebble listens there). Default 198.18.0.1. */
  address?: string;
  /** What challtestsrv answers for every A query. Default 198.18.0.2 (the paf stack). */
  answer?: string;
  /** Port pebble validates HTTP-01 on. Default 80. */
  httpPort?: number;
  /** Percentage of good nonces pebble rejects as badNonce. Default: pebble's own (5). */
  nonceReject?: number;
}

export async function startPebble(ns: Netns, o: PebbleOptions = {}): Promise<Pebble> {
  const address = o.address ?? "198.18.0.1";
  const dir = mkdtempSync(join(tmpdir(), "paf-pebble-"));
  const { certPath: caPath, keyPath } = opensslCert(dir, "pebble-tls", { cn: "pebble.test", san: `DNS:pebble.test,IP:${address},IP:127.0.0.1` });
  const config = join(dir, "pebble.json");
  writeFileSync(
    config,
    JSON.stringify({
      pebble: {
        listenAddress: `${address}:14000`,
        managementListenAddress: `${address}:15000`,
        certificate: caPath,
        privateKey: keyPath,
        httpPort: o.httpPort ?? 80,
        tlsPort: 5001,
        ocspResponderURL: "",
        externalAccountBindingRequired: false,
      },
    }),
  );
  let out = "";
  const collect = (name: string, c: ChildProcess) => {
    c.stdout?.on("data", (d) => (out += `[${name}] ${d}`));
    c.stderr?.on("data", (d) => (out += `[${name}] ${d}`));
  };
  const cts = ns.spawn("pebble-challtestsrv", [
    "-defaultIPv4",
    o.answer ?? "198.18.0.2",
    "-defaultIPv6",
    "",
    "-dns01",
    `${address}:8053`,
    "-http01",
    "",
    "-https01",
    "",
    "-tlsalpn01",
    "",
    "-management",
    "127.0.0.1:8055",
  ]);
  collect("challtestsrv", cts);
  const env: Record<string, string> = { PEBBLE_VA_NOSLEEP: "1" };
  if (o.nonceReject !== undefined) env.PEBBLE_WFE_NONCEREJECT = String(o.nonceReject);
  const pebble = ns.spawn("pebble", ["-config", config, "-dnsserver", `${address}:8053`, "-strict"], { env });
  collect("pebble", pebble);
  const stop = () => {
    pebble.kill("SIGKILL");
    cts.kill("SIGKILL");
  };
  const directoryUrl = `https://${address}:14000/dir`;
  try {
    await waitFor(
      async () => {
        if (pebble.exitCode !== null) throw new Error(`pebble exited (${pebble.exitCode}):\n${out}`);
        try {
          await ns.exec("curl", ["-sSf", "--max-time", "2", "--cacert", caPath, directoryUrl], 4000);
          return true;
        } catch {
          return false;
        }
      },
      "pebble's directory",
      15_000,
      200,
    );
  } catch (e) {
    stop();
    throw new Error(`${(e as Error).message}\n${out}`);
  }
  return {
    directoryUrl,
    caPath,
    dir,
    rootPem: async () => (await ns.exec("curl", ["-sSf", "--max-time", "5", "--cacert", caPath, `https://${address}:15000/roots/0`])).stdout,
    dnsServer: `${address}:8053`,
    addA: async (host, addr) => {
      await ns.exec("curl", ["-sSf", "--max-time", "5", "-X", "POST", "-d", JSON.stringify({ host: host.endsWith(".") ? host : host + ".", addresses: [addr] }), "http://127.0.0.1:8055/add-a"]);
    },
    output: () => out,
    stop,
  };
}
