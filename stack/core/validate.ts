/**
 * Argument and option checks with Node's error codes (after lib/internal/validators.js). Every
 * bound of the stack is an option with a default and a range: `resolveOptions` fills the
 * defaults and range-checks what the user gave, so `limits: { tcp: { maxConnections: -1 } }`
 * fails at Stack.create with ERR_OUT_OF_RANGE naming `limits.tcp.maxConnections`, instead of
 * misbehaving later.
 */
import { ERR_INVALID_ARG_TYPE, ERR_INVALID_ARG_VALUE, ERR_OUT_OF_RANGE, ERR_SOCKET_BAD_PORT } from "./errors.js";

export function validateInteger(value: unknown, name: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== "number") throw new ERR_INVALID_ARG_TYPE(name, "of type number", value);
  if (!Number.isInteger(value)) throw new ERR_OUT_OF_RANGE(name, "an integer", value);
  if (value < min || value > max) throw new ERR_OUT_OF_RANGE(name, `>= ${min} && <= ${max}`, value);
  return value;
}

export function validateNumber(value: unknown, name: string, min = -Infinity, max = Infinity): number {
  if (typeof value !== "number") throw new ERR_INVALID_ARG_TYPE(name, "of type number", value);
  if (Number.isNaN(value) || value < min || value > max) throw new ERR_OUT_OF_RANGE(name, `>= ${min} && <= ${max}`, value);
  return value;
}

/** A port number (Node's rules: an integer, or a string of digits, 0-65535; 0 only if allowed). */
export function validatePort(port: unknown, name = "Port", allowZero = true): number {
  const n = typeof port === "string" && /^\s*\d+\s*$/.test(port) ? Number(port) : port;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > 0xffff || (n === 0 && !allowZero)) throw new ERR_SOCKET_BAD_PORT(name, port, allowZero);
  return n;
}

export function validateBoolean(value: unknown, name: string): boolean {
  if (typeof value !== "boolean") throw new ERR_INVALID_ARG_TYPE(name, "of type boolean", value);
  return value;
}

export function validateOneOf<T extends string>(value: unknown, name: string, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) throw new ERR_INVALID_ARG_VALUE(name, value, `must be one of: ${allowed.map((a) => `'${a}'`).join(", ")}`);
  return value as T;
}

/** How one option is checked: [default, min, max] for integers; a default alone for booleans or strings (with `oneOf`). */
export type OptionSpec<V> = [V] extends [number]
  ? readonly [number, number, number] | { default: number; min: number; max: number; integer?: boolean }
  : [V] extends [boolean]
    ? readonly [boolean]
    : { default: V; oneOf: readonly V[] };

/**
 * Defaults for what is missing, checks for what is given. `prefix` names the option in errors
 * ("limits.tcp"). Numbers in the tuple form must be integers; the object form can allow reals.
 * An option not in `spec` is an error (a typo must not pass silently) unless `allowOthers`
 * (options shared with another spec, resolved there).
 */
export function resolveOptions<T extends object>(prefix: string, given: Partial<T> | undefined, spec: { [K in keyof T]-?: OptionSpec<NonNullable<T[K]>> }, allowOthers = false): Required<T> {
  const out = {} as Record<string, unknown>;
  const g = (given ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(spec)) {
    const s = (spec as Record<string, unknown>)[key] as unknown;
    const v = g[key];
    const name = `${prefix}.${key}`;
    if (Array.isArray(s)) {
      if (s.length === 1) out[key] = v === undefined ? s[0] : validateBoolean(v, name);
      else out[key] = v === undefined ? s[0] : validateInteger(v, name, s[1] as number, s[2] as number);
    } else if (s && typeof s === "object" && "oneOf" in s) {
      const o = s as { default: string; oneOf: readonly string[] };
      out[key] = v === undefined ? o.default : validateOneOf(v, name, o.oneOf);
    } else {
      const o = s as { default: number; min: number; max: number; integer?: boolean };
      out[key] = v === undefined ? o.default : o.integer === false ? validateNumber(v, name, o.min, o.max) : validateInteger(v, name, o.min, o.max);
    }
  }
  if (!allowOthers) for (const key of Object.keys(g)) if (!(key in spec) && g[key] !== undefined) throw new ERR_INVALID_ARG_VALUE(`${prefix}.${key}`, g[key], "is not a known option");
  return out as Required<T>;
}
