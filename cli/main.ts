#!/usr/bin/env -S node --initial-old-space-size=64
/**
 * The `paf` command.
 *
 * Its first line starts Node with V8's old generation limit at 64 MB at least, which only a
 * flag given at start can set. Without it V8 may, after a full collection that leaves the limit
 * close to the live heap (a small growth factor, as after an idle moment), count the Buffers a
 * fast receiver allocates since that collection toward the limit and start marking again at
 * once: a collection every 30-40 ms for as long as data flows (3 GB into `serve --tap` at
 * 6 Gbit/s instead of 8.5, twice the CPU; `serve --host` receiving an upload falls in as well).
 * README "Tuning V8 for fast receivers". `node dist/cli/main.js` runs without it unless given the flag.
 */
import { UsageError } from "./args.js";
import { disableAllocationSitePretenuring } from "../stack/core/tuning.js";

// Before anything is made: a burst of connections must not teach V8 to allocate every later
// request's state in the old generation (stack/core/tuning.ts; README "Tenants").
if (process.env.PAF_V8_PRETENURING !== "1") disableAllocationSitePretenuring();

const USAGE = `usage: paf <command> [options]

commands:
  serve     run a userspace TCP/IP stack on a TAP device and serve on it
  certify   obtain an ACME (Let's Encrypt) certificate over the stack and write its files
  get       fetch a URL over a userspace stack on a TAP (or the host's sockets), like curl
  bench     load-test an HTTP(S) URL: latency histogram, errors by kind (over kernel TCP or a TAP)
  lab       run a command in a network namespace whose path to a paf stack (or to a kernel
            routed through paf) has loss, delay, rate limits ... (run, up NAME, down NAME)
  help      show this help

Run "paf <command> --help" for a command's options.`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case "serve": {
      const { serve } = await import("./serve.js");
      return serve(rest);
    }
    case "certify": {
      const { certify } = await import("./certify.js");
      return certify(rest);
    }
    case "get":
      return (await import("./get.js")).get(rest);
    case "bench":
      return (await import("./bench.js")).bench(rest);
    case "lab":
      return (await import("./lab.js")).labCommand(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      console.log(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${cmd}"\n${USAGE}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      // `paf CMD --help` asked for the usage text: it goes to stdout, and it is no error.
      const argv = process.argv.slice(3);
      if ((argv.includes("--help") || argv.includes("-h")) && err.message.startsWith("usage:")) {
        console.log(err.message);
        process.exit(0);
      }
      console.error(`paf: ${err.message}`);
      process.exit(2);
    }
    const e = err as Error & { code?: string };
    console.error(`paf: ${e.code ? e.code + ": " : ""}${e.message ?? String(err)}`);
    process.exit(1);
  },
);
