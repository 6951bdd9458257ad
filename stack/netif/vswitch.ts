/**
 * An in-process Ethernet switch with MAC learning, so many stacks talk inside one process with
 * no kernel and no root; and a point-to-point link (a two-port switch without learning).
 *
 * Delivery semantics (tests rely on them): a frame passed to `port.send()` is delivered
 * asynchronously, in a setImmediate callback (the check phase after the current tick), together
 * with every other frame sent until then, in send order. Each receiving port gets its frames
 * followed by one `batchEnd()`. A port whose receiver has `ready()` (a stack) is pollable
 * instead: it keeps its frames and tells the receiver, whose scheduler polls them at its turn
 * (in a setImmediate too), a batch at a time. Nothing depends on a clock: tests on a VirtualClock only need
 * to `await new Promise(r => setImmediate(r))` for frames to cross. Received frames are read-only
 * (a flooded frame is the same buffer at every port).
 */
import { netifCounters, netifStatsOf, ETH_HEADER_LEN, type Netif, type NetifFeatures, type NetifReceiver, type NetifStats, DEFAULT_MTU } from "./netif.js";
import type { Clock } from "../core/clock.js";
import { copyBytes, ipKey } from "../wire/addr.js";

export interface VirtualSwitchOptions {
  /** L3 MTU of every port. Default 1500. */
  mtu?: number;
  /** MAC table entries; the oldest is evicted when full. Default 1024. */
  macTableSize?: number;
  /** Learned entries older than this are forgotten (ms). Default 300000. Needs `clock`. */
  macAgeMs?: number;
  /**
   * Frames waiting at a pollable port (one whose receiver is a stack, which takes them at its
   * turn); beyond it frames to that port are dropped (its `rxDropped`). Default 16384. They wait
   * while the receiving stack is over its CPU share.
   */
  portQueueLimit?: number;
  /** Clock for MAC ageing; without one entries never age (only the size bound applies). */
  clock?: Clock;
  /** Called for every frame entering the switch (for tests and traces). */
  onFrame?: (frame: Uint8Array, from: SwitchPort) => void;
}

export class SwitchPort implements Netif {
  readonly features: NetifFeatures;
  rx: NetifReceiver | undefined;
  closed = false;
  readonly st: NetifStats = netifCounters();
  inbox: Uint8Array[] = [];
  /** Next frame of `inbox` to deliver (poll() takes them a batch at a time). */
  head = 0;
  /** The receiver was told frames wait (pollable ports), and has not emptied the inbox since. */
  signalled = false;
  /**
   * The switch's entries for the source and the destination of the last frame this port sent: a
   * port mostly sends from one MAC to a few, so most frames are forwarded without making a key.
   */
  lastSrc: MacEntry | undefined;
  lastDst: MacEntry | undefined;
  /** The frame being handed to the receiver (what adopt() may give away). */
  current: Uint8Array | undefined;

  constructor(
    private readonly sw: VirtualSwitch,
    readonly name: string,
    readonly mtu: number,
  ) {
    this.features = { checksumOffload: false, maxFrameSize: mtu + ETH_HEADER_LEN };
  }

  start(rx: NetifReceiver): void {
    this.rx = rx;
  }

  send(frame: Uint8Array): boolean {
    if (this.closed) return false;
    if (frame.length > this.mtu + ETH_HEADER_LEN || frame.length < ETH_HEADER_LEN) {
      this.st.txDropped++;
      return false;
    }
    this.st.txFrames++;
    this.st.txBytes += frame.length;
    this.sw.forward(this, frame);
    return true;
  }

  stats(): NetifStats {
    return netifStatsOf(this.st);
  }

  inputPending(): boolean {
    return this.inbox.length > this.head;
  }

  /**
   * A received frame is the sender's, given up at send() and delivered to this port alone (a
   * flooded frame is copied for each port but the first): the receiver may keep views into it,
   * if the frame has its memory to itself (a small frame cut from a shared slab would keep the
   * whole pool slab alive with it; see newFrame).
   */
  adopt(view: Uint8Array): boolean {
    const f = this.current;
    // A frame that spans its whole buffer holds every view into that buffer.
    return f !== undefined && view.buffer === f.buffer && f.byteOffset === 0 && f.length === f.buffer.byteLength;
  }

  poll(max: number): boolean {
    const q = this.inbox;
    let i = this.head;
    const end = Math.min(q.length, i + max);
    const rx = this.rx;
    if (!rx || this.closed) return false;
    while (i < end) {
      const f = q[i++]!;
      this.st.rxFrames++;
      this.st.rxBytes += f.length;
      this.current = f;
      rx.frame(f);
      this.current = undefined;
      if (this.rx !== rx) return false; // closed by the receiver
    }
    rx.batchEnd?.();
    if (i < q.length) {
      this.head = i;
      return true;
    }
    q.length = 0; // reused: nothing allocated per poll
    this.head = 0;
    this.signalled = false;
    return false;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.rx = undefined;
    this.sw.detach(this);
  }
}

interface MacEntry {
  port: SwitchPort;
  seen: number;
  readonly key: string;
  /** Still in the table (an entry evicted or detached is dropped from the ports' caches by this). */
  live: boolean;
}

/** Does the MAC at `frame[off..off+6)` spell `key` (a MacEntry's, one char per byte)? */
function sameMac(frame: Uint8Array, off: number, key: string): boolean {
  for (let i = 0; i < 6; i++) if (frame[off + i] !== key.charCodeAt(i)) return false;
  return true;
}

export class VirtualSwitch {
  private readonly ports: SwitchPort[] = [];
  private readonly table = new Map<string, MacEntry>();
  private readonly mtu: number;
  private readonly tableSize: number;
  private readonly ageMs: number;
  private readonly queueLimit: number;
  private pendingPorts = new Set<SwitchPort>();
  private scheduled = false;
  private seq = 0;
  /** Counters: frames forwarded, flooded, dropped (oversize), MAC entries evicted. */
  readonly counters = { forwarded: 0, flooded: 0, evicted: 0 };

  constructor(
    private readonly opts: VirtualSwitchOptions = {},
    private readonly learning = true,
  ) {
    this.mtu = opts.mtu ?? DEFAULT_MTU;
    this.tableSize = opts.macTableSize ?? 1024;
    this.ageMs = opts.macAgeMs ?? 300_000;
    this.queueLimit = opts.portQueueLimit ?? 16384;
  }

  /** A point-to-point cable: two netifs, each delivering to the other. */
  static pair(opts: Omit<VirtualSwitchOptions, "macTableSize" | "macAgeMs"> = {}): [Netif, Netif] {
    const sw = new VirtualSwitch(opts, false);
    return [sw.port("p2p:0"), sw.port("p2p:1")];
  }

  port(name?: string): SwitchPort {
    const p = new SwitchPort(this, name ?? `vswitch:${this.ports.length}`, this.mtu);
    this.ports.push(p);
    return p;
  }

  /** True when no frame waits for delivery (tests driving a VirtualClock use it to know the wire is quiet). */
  get idle(): boolean {
    if (this.scheduled) return false;
    for (const p of this.ports) if (p.inbox.length > p.head) return false;
    return true;
  }

  /** Number of learned MAC entries. */
  get macEntries(): number {
    return this.table.size;
  }

  detach(p: SwitchPort): void {
    const i = this.ports.indexOf(p);
    if (i >= 0) this.ports.splice(i, 1);
    for (const e of this.table.values()) if (e.port === p) this.drop(e);
    p.lastSrc = p.lastDst = undefined;
    p.inbox = [];
    p.head = 0;
  }

  forward(from: SwitchPort, frame: Uint8Array): void {
    this.opts.onFrame?.(frame, from);
    const now = this.opts.clock?.now() ?? this.seq++;
    if (this.learning && (frame[6]! & 1) === 0) this.learn(frame, from, now);
    if (this.learning && (frame[0]! & 1) === 0) {
      let e = from.lastDst;
      if (!e?.live || !sameMac(frame, 0, e.key)) from.lastDst = e = this.table.get(ipKey(frame, 0, 6));
      if (e && (!this.opts.clock || now - e.seen <= this.ageMs)) {
        if (e.port !== from) this.enqueue(e.port, frame);
        this.counters.forwarded++;
        return;
      }
    }
    // Broadcast, multicast or unknown unicast: flood to every other port.
    this.counters.flooded++;
    // Each receiver owns what it gets (it may hand views up, see SwitchPort.adopt): a copy each
    // but for the first.
    let copy = false;
    for (const p of this.ports) {
      if (p === from) continue;
      this.enqueue(p, copy ? copyBytes(frame) : frame);
      copy = true;
    }
  }

  /** Learn (or refresh) the frame's source MAC as reachable through `port`. */
  private learn(frame: Uint8Array, port: SwitchPort, now: number): void {
    let e = port.lastSrc;
    if (!e?.live || !sameMac(frame, 6, e.key)) e = this.table.get(ipKey(frame, 6, 6));
    if (e) {
      e.port = port;
      e.seen = now;
      port.lastSrc = e;
      // Map order is the eviction order (oldest first): an entry seen again moves to the back,
      // but only once eviction is near (half full): a re-insertion leaves a hole that makes the
      // Map rebuild its table now and then, in the old generation for a long-lived switch.
      if (this.table.size >= this.tableSize / 2) {
        this.table.delete(e.key);
        this.table.set(e.key, e);
      }
      return;
    }
    if (this.table.size >= this.tableSize) {
      this.drop(this.table.values().next().value as MacEntry);
      this.counters.evicted++;
    }
    const key = ipKey(frame, 6, 6);
    e = { port, seen: now, key, live: true };
    this.table.set(key, e);
    port.lastSrc = e;
  }

  private drop(e: MacEntry): void {
    this.table.delete(e.key);
    e.live = false;
  }

  private enqueue(p: SwitchPort, frame: Uint8Array): void {
    if (p.closed) return;
    const rx = p.rx;
    if (rx?.ready) {
      if (p.inbox.length - p.head >= this.queueLimit) {
        p.st.rxDropped++;
        return;
      }
      p.inbox.push(frame);
      if (!p.signalled) {
        p.signalled = true;
        rx.ready();
      }
      return;
    }
    p.inbox.push(frame);
    this.pendingPorts.add(p);
    if (!this.scheduled) {
      this.scheduled = true;
      // setImmediate, not a microtask: two stacks answering each other must not starve the
      // event loop (timers, I/O) the way an endless microtask chain would.
      setImmediate(() => this.deliver());
    }
  }

  private deliver(): void {
    this.scheduled = false;
    const ports = this.pendingPorts;
    this.pendingPorts = new Set();
    for (const p of ports) {
      const batch = p.inbox;
      p.inbox = [];
      const rx = p.rx;
      if (!rx || p.closed) {
        p.st.rxDropped += batch.length;
        continue;
      }
      for (const f of batch) {
        p.st.rxFrames++;
        p.st.rxBytes += f.length;
        p.current = f;
        rx.frame(f);
        p.current = undefined;
      }
      rx.batchEnd?.();
    }
  }
}
