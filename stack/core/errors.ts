/**
 * The stack's errors, in Node's conventions (after lib/internal/errors.js): system errors carry
 * `code` (ECONNREFUSED ...), `errno` (negative, as libuv reports it) and `syscall`; argument
 * errors are TypeError/RangeError with an `ERR_*` code and Node's wording. Every module of the
 * stack makes its errors here, so a caller can rely on `err.code` whatever layer failed.
 *
 * Also the one policy for bugs: an exception while processing a frame or firing a timer is
 * counted (`internal_errors`), logged once per kind, and never takes the process down.
 */
import { constants } from "node:os";
import type { Counters } from "./stats.js";

export type SystemError = Error & { code: string; errno: number; syscall: string };

/** A system error like libuv's: `connect ECONNREFUSED 198.18.0.2:80`, with code, errno and syscall. */
export function errnoError(code: string, syscall: string, detail?: string): SystemError {
  const e = new Error(`${syscall} ${code}${detail ? ` ${detail}` : ""}`) as SystemError;
  e.code = code;
  e.errno = -((constants.errno as Record<string, number>)[code] ?? 0);
  e.syscall = syscall;
  return e;
}

/** An error with a code and a message of our own (for conditions Node has no errno for). */
export function codedError(code: string, message: string): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}

/**
 * What every operation on a closed stack fails with (connect, listen, UDP bind and send, ping,
 * DNS): `code` ERR_STACK_CLOSED, like Node's ERR_SOCKET_DGRAM_NOT_RUNNING or
 * ERR_SERVER_NOT_RUNNING for a closed socket or server. Connections the close cut off end with
 * ECONNABORTED instead, as a kernel socket does.
 */
export function stackClosedError(what: string): Error & { code: string } {
  return codedError("ERR_STACK_CLOSED", `${what}: the stack is closed`);
}

function describe(v: unknown): string {
  if (typeof v === "string") return `type string ('${v.length > 28 ? v.slice(0, 25) + "..." : v}')`;
  if (typeof v === "number") return Number.isNaN(v) ? "NaN" : String(v);
  if (v === null || v === undefined) return String(v);
  return `type ${typeof v} (${String(v).slice(0, 28)})`;
}

export class ERR_OUT_OF_RANGE extends RangeError {
  readonly code = "ERR_OUT_OF_RANGE";
  constructor(name: string, range: string, received: unknown) {
    super(`The value of "${name}" is out of range. It must be ${range}. Received ${describe(received)}`);
  }
}

export class ERR_INVALID_ARG_TYPE extends TypeError {
  readonly code = "ERR_INVALID_ARG_TYPE";
  constructor(name: string, expected: string, received: unknown) {
    super(`The "${name}" argument must be ${expected}. Received ${describe(received)}`);
  }
}

export class ERR_INVALID_ARG_VALUE extends TypeError {
  readonly code = "ERR_INVALID_ARG_VALUE";
  constructor(name: string, value: unknown, reason = "is invalid") {
    super(`The argument '${name}' ${reason}. Received ${describe(value)}`);
  }
}

export class ERR_SOCKET_BAD_PORT extends RangeError {
  readonly code = "ERR_SOCKET_BAD_PORT";
  constructor(name: string, port: unknown, allowZero = true) {
    super(`${name} should be ${allowZero ? ">=" : ">"} 0 and < 65536. Received ${describe(port)}.`);
  }
}

export class ERR_INVALID_IP_ADDRESS extends TypeError {
  readonly code = "ERR_INVALID_IP_ADDRESS";
  constructor(value: unknown) {
    super(`Invalid IP address: ${String(value)}`);
  }
}

/** Kinds of internal error remembered (so each is logged once); beyond it, only counted. */
const MAX_KINDS = 64;

/**
 * Bugs met while processing input or firing timers: counted under `internal_errors`, printed
 * once per kind (where + error name + message), and swallowed, so one bad frame pattern can
 * neither flood the console nor crash the process.
 */
export class InternalErrors {
  private seen: Set<string> | undefined;
  constructor(
    private readonly counters: Counters,
    private readonly log: (msg: string, err: unknown) => void = (m, e) => console.error(m, e),
  ) {}

  report(where: string, err: unknown): void {
    this.counters.inc("internal_errors");
    const e = err as { name?: string; message?: string };
    const kind = `${where}: ${e?.name ?? typeof err}: ${String(e?.message ?? err).slice(0, 120)}`;
    const seen = (this.seen ??= new Set());
    if (seen.has(kind) || seen.size >= MAX_KINDS) return;
    seen.add(kind);
    this.log(`paf: internal error in ${where} (counted as internal_errors; this kind is logged once):`, err);
  }
}
