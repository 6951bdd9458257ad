/** Small helpers for CLI argument validation: every error names the option and what was expected. */
import { parseArgs, type ParseArgsConfig } from "node:util";

type Options = NonNullable<ParseArgsConfig["options"]>;
export type Parsed<T extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: T; strict: true; allowPositionals: boolean }>>;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export function parse<const T extends Options>(argv: string[], options: T, allowPositionals = false): Parsed<T> {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals });
  } catch (e) {
    const err = e as Error & { code?: string };
    // Node's messages already name the option ("Unknown option '--foo'"); keep them, drop the stack.
    throw new UsageError(err.message.replace(/\. To specify a positional argument.*$/s, ""));
  }
}

export function intOption(name: string, value: string | undefined, min: number, max: number, dflt: number): number {
  if (value === undefined) return dflt;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} expects a whole number, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

/**
 * A decimal number above 0 and at most `max` (e.g. "2.5"), or undefined when not given; `what`
 * names the unit in the error ("seconds").
 */
export function positiveNumberOption(name: string, value: string | undefined, max: number, what: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !(n > 0) || n > max) throw new UsageError(`--${name} expects ${what} (a number above 0, at most ${max}), got "${value}"`);
  return n;
}

export function listOption<T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T[] {
  if (value === undefined || value === "") return [];
  const out: T[] = [];
  for (const v of value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    if (!(allowed as readonly string[]).includes(v)) throw new UsageError(`--${name}: unknown value "${v}" (expected one of: ${allowed.join(", ")})`);
    out.push(v as T);
  }
  return out;
}
