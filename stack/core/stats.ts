/**
 * Counters for what was received, sent and dropped, and why (like `netstat -s`).
 * Each layer owns one Counters; the stack collects them into a snapshot by layer name.
 * Counter names are stable, snake_case, and documented where they are incremented.
 */
export class Counters {
  /** Made at the first count: a layer of an idle stack (of thousands) holds none. */
  private c: Record<string, number> | undefined;
  /** "drop_" + reason, made once per reason (a flood drops millions of frames for a few reasons). */
  private dropKeys: Map<string, string> | undefined;
  constructor(readonly layer: string) {}

  inc(name: string, n = 1): void {
    const c = (this.c ??= Object.create(null) as Record<string, number>);
    c[name] = (c[name] ?? 0) + n;
  }

  /** Count a dropped packet under `drop_<reason>` and in the `dropped` total. */
  drop(reason: string): void {
    const c = (this.c ??= Object.create(null) as Record<string, number>);
    c["dropped"] = (c["dropped"] ?? 0) + 1;
    const keys = (this.dropKeys ??= new Map());
    let k = keys.get(reason);
    if (k === undefined) keys.set(reason, (k = "drop_" + reason));
    c[k] = (c[k] ?? 0) + 1;
  }

  get(name: string): number {
    return this.c?.[name] ?? 0;
  }

  snapshot(): Record<string, number> {
    return { ...this.c };
  }
}

export type StatsSnapshot = Record<string, Record<string, number>>;
