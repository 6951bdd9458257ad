/**
 * Counters for what was received, sent and dropped, and why (like `netstat -s`).
 * Each layer owns one Counters; the stack collects them into a snapshot by layer name.
 * Counter names are stable, snake_case, and documented where they are incremented.
 */
export class Counters {
  private readonly c: Record<string, number> = Object.create(null);
  constructor(readonly layer: string) {}

  inc(name: string, n = 1): void {
    this.c[name] = (this.c[name] ?? 0) + n;
  }

  /** Count a dropped packet under `drop_<reason>` and in the `dropped` total. */
  drop(reason: string): void {
    this.c["dropped"] = (this.c["dropped"] ?? 0) + 1;
    const k = "drop_" + reason;
    this.c[k] = (this.c[k] ?? 0) + 1;
  }

  get(name: string): number {
    return this.c[name] ?? 0;
  }

  snapshot(): Record<string, number> {
    return { ...this.c };
  }
}

export type StatsSnapshot = Record<string, Record<string, number>>;
