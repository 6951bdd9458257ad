// One TCP connection alone (a Tcb) through its narrow environment (stack/tcp/env.ts), for tests
// that drive it segment by segment: segments go in as parsed segments and come out as header
// reprs, with time from a virtual clock.
import { Tcb } from "../../../stack/tcp/tcb.js";
import type { TcpEnv, Flushable } from "../../../stack/tcp/env.js";
import { resolveTcpOptions, type TcpOptions } from "../../../stack/tcp/options.js";
import { TcpMemory } from "../../../stack/tcp/memory.js";
import { TimerQueue } from "../../../stack/core/timers.js";
import { VirtualClock } from "../../../stack/core/clock.js";
import { SeededRandom } from "../../../stack/core/random.js";
import { Counters } from "../../../stack/core/stats.js";
import { ACK, SYN, newSegment, type TcpEmit, type TcpSegment } from "../../../stack/wire/tcp.js";
import type { Route } from "../../../stack/ip.js";

export interface Sent {
  repr: TcpEmit;
  payload: Buffer;
}

export function harness(opts: TcpOptions = {}, seed = 7) {
  const clock = new VirtualClock();
  const timers = new TimerQueue(clock);
  const o = resolveTcpOptions(opts);
  const sent: Sent[] = [];
  const owed = new Set<Flushable>();
  const closed: Flushable[] = [];
  /** Whether received frames wait unread (what the netif would say); tests set it. */
  const pending = { value: false };
  const env: TcpEnv = {
    timers,
    counters: new Counters("tcp"),
    random: new SeededRandom(seed),
    memory: new TcpMemory(o),
    gsoMax: 0,
    transmit: (_r, repr, q, off, len) => {
      const payload = Buffer.alloc(len);
      if (q && len) q.copy(off, len, payload, 0);
      // repr is only valid during the call (the Tcb reuses it): keep a copy, options included.
      sent.push({ repr: { ...repr, ...(repr.ts ? { ts: { ...repr.ts } } : {}), ...(repr.sack ? { sack: [...repr.sack] } : {}) }, payload });
      return true;
    },
    reset: () => {},
    challengeAllowed: () => true,
    wantsOutput: (t) => owed.add(t),
    inputPending: () => pending.value,
    adopt: () => false,
    retryOutput: (t) => owed.add(t),
    closed: (t) => closed.push(t),
    timeWait: () => true,
  };
  const route: Route = { family: 4, src: new Uint8Array([198, 18, 0, 1]), dst: new Uint8Array([198, 18, 0, 2]), mtu: 1500, headroom: 34, broadcast: false };
  const tcb = new Tcb(env, route, 40000, 80, o, "k");
  const events: string[] = [];
  const data: Buffer[] = [];
  tcb.events = {
    onConnect: () => events.push("connect"),
    onData: (d) => data.push(Buffer.from(d)),
    onEnd: () => events.push("end"),
    onDrain: () => events.push("drain"),
    onClose: (e) => events.push(`close${e ? ":" + e.code : ""}`),
  };
  /** Run owed output (what the demux does at the end of a batch) and return what went out. */
  const out = (): Sent[] => {
    for (const t of [...owed]) {
      owed.delete(t);
      t.flush();
    }
    return sent.splice(0);
  };
  const seg = (f: Partial<TcpSegment>): TcpSegment => ({ ...newSegment(), srcPort: 80, dstPort: 40000, window: 65535, ...f });
  /** Connect (ISS 1000) and take the peer's SYN-ACK (IRS 5000, with `synAck`'s options): ESTABLISHED, output taken. */
  const establish = (synAck: Partial<TcpSegment> = {}): void => {
    tcb.connect(1000);
    const syn = out()[0]!;
    tcb.input(seg({ seq: 5000, ack: 1001, flags: SYN | ACK, mss: 1460, ...(synAck.hasTimestamp ? { tsEcr: syn.repr.ts!.val } : {}), ...synAck }));
    out();
  };
  return { clock, tcb, env, events, data, out, seg, closed, establish, pending };
}
