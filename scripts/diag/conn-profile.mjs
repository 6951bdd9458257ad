// New TCP connections on paf over a TAP, alone (the paf half of scripts/bench/conn.mjs), to
// profile: node --cpu-prof --cpu-prof-dir=DIR scripts/diag/conn-profile.mjs [seconds] [in flight]
// PAF_HEAPPROF=FILE: a sampling profile of everything allocated meanwhile (what the GC collects).
import { cleanup } from "../bench/lib.mjs";
import { pafAccepting, tcpconnect } from "../bench/conn.mjs";
import { profilePhase } from "../bench/inspect.mjs";

const SECS = Number(process.argv[2] ?? 3);
const CONC = Number(process.argv[3] ?? 64);
try {
  const { ns, stack } = await pafAccepting("cp", "pafcp");
  const prof = await profilePhase({ heap: process.env.PAF_HEAPPROF, young: true, samplingInterval: 1024 });
  const r = await tcpconnect(ns, "198.18.0.2", SECS, CONC);
  await prof?.();
  console.log(JSON.stringify({ ...r, tcp: stack.stats().tcp }));
  await stack.close();
} finally {
  cleanup();
}
