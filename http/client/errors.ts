/** Client errors name the stage that failed, so a caller (and a person) knows where to look. */
export type Stage = "resolve" | "connect" | "tls" | "protocol" | "timeout";

export class ClientError extends Error {
  readonly stage: Stage;
  /** A Node-style code when one applies (ENOTFOUND, ECONNREFUSED, ETIMEDOUT, ERR_TLS_...). */
  readonly code: string | undefined;
  /** For "connect": why each candidate protocol / address failed. */
  readonly causes: Array<{ protocol: string; error: Error }>;

  constructor(stage: Stage, message: string, opts: { cause?: unknown; code?: string; causes?: Array<{ protocol: string; error: Error }> } = {}) {
    super(`${stage}: ${message}`, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "ClientError";
    this.stage = stage;
    this.code = opts.code;
    this.causes = opts.causes ?? [];
  }
}
