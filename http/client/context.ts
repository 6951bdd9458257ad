/**
 * A typed, immutable context (after mimic's Mimic.Ctx): keys carry values that say how to reach a
 * peer (an endpoint, a Unix socket path, a TLS configuration, a userspace stack to use ...).
 * `ctx.with(key, value)` returns a new context; nothing is ever changed in place, so one context
 * can be shared by many requests and refined per request.
 */
export class Key<T> {
  /** Unique per key object: two keys with the same name are still different keys. */
  private readonly id: symbol;
  constructor(readonly name: string) {
    this.id = Symbol(name);
  }
  /** @internal the slot in a context's map. */
  get slot(): symbol {
    return this.id;
  }
  /** For type inference only. */
  declare readonly _type?: T;
}

export class Ctx {
  private constructor(private readonly values: ReadonlyMap<symbol, { key: Key<unknown>; value: unknown }>) {}

  static readonly empty = new Ctx(new Map());

  /** A new context with `key` bound to `value` (replacing an earlier binding). */
  with<T>(key: Key<T>, value: T): Ctx {
    const m = new Map(this.values);
    m.set(key.slot, { key: key as Key<unknown>, value });
    return new Ctx(m);
  }

  /** A new context without `key`. */
  without(key: Key<unknown>): Ctx {
    if (!this.values.has(key.slot)) return this;
    const m = new Map(this.values);
    m.delete(key.slot);
    return new Ctx(m);
  }

  get<T>(key: Key<T>): T | undefined {
    return this.values.get(key.slot)?.value as T | undefined;
  }

  has(key: Key<unknown>): boolean {
    return this.values.has(key.slot);
  }

  /** `get`, or an error naming the missing key. */
  need<T>(key: Key<T>): T {
    const e = this.values.get(key.slot);
    if (!e) throw new Error(`the context has no "${key.name}"`);
    return e.value as T;
  }

  /** The names of the keys present (for error messages and debugging). */
  keys(): string[] {
    return [...this.values.values()].map((e) => e.key.name);
  }
}

/** An empty context to start from. */
export const ctx = (): Ctx => Ctx.empty;
