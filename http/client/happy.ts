/**
 * Happy eyeballs (RFC 8305): connection attempts to the addresses of a name, IPv6 first and the
 * families interleaved (§4), each started `delayMs` (the Connection Attempt Delay, default 250 ms,
 * §5) after the previous one or at once when the previous one fails; the first to connect wins and
 * the others are cancelled. All failing gives one error listing each address's failure.
 */
export interface Address {
  address: string;
  family: 4 | 6;
}

/** §4: interleave the families, starting with IPv6 (the preferred family). */
export function interleave(addrs: readonly Address[]): Address[] {
  const v6 = addrs.filter((a) => a.family === 6);
  const v4 = addrs.filter((a) => a.family === 4);
  const out: Address[] = [];
  for (let i = 0; i < Math.max(v6.length, v4.length); i++) {
    if (v6[i]) out.push(v6[i]!);
    if (v4[i]) out.push(v4[i]!);
  }
  return out;
}

/**
 * `later`: addresses still being resolved (the slower of the AAAA / A queries, §3): they join the
 * remaining attempts, interleaved, when they arrive.
 */
export async function happyEyeballs<T extends { destroy(): unknown }>(
  addrs: readonly Address[],
  attempt: (a: Address, signal: AbortSignal) => Promise<T>,
  opts: { delayMs?: number; signal?: AbortSignal; later?: Promise<Address[]> } = {},
): Promise<T> {
  let order = interleave(addrs);
  const delay = Math.max(10, opts.delayMs ?? 250); // §5: no less than 10 ms
  if (order.length === 1 && !opts.later) return new Promise<T>((res) => res(attempt(order[0]!, opts.signal ?? new AbortController().signal)));
  return new Promise<T>((resolve, reject) => {
    const controllers: AbortController[] = [];
    const errors: Error[] = [];
    let next = 0;
    let running = 0;
    let settled = false;
    let waitingForLater = opts.later !== undefined;
    let timer: NodeJS.Timeout | undefined;
    const failAll = () => {
      finish();
      const err = new AggregateError(errors, `every address failed: ${errors.map((x) => `${(x as Error & { address?: string }).address}: ${x.message}`).join("; ")}`);
      reject(Object.assign(err, { code: (errors[0] as { code?: string } | undefined)?.code }));
    };
    opts.later?.then(
      (more) => {
        waitingForLater = false;
        if (settled) return;
        order = [...order.slice(0, next), ...interleave([...order.slice(next), ...more])];
        if (running === 0)
          start(); // idle: every earlier attempt already failed
        else if (!timer && next < order.length) {
          timer = setTimeout(start, delay);
          timer.unref?.();
        }
      },
      () => {
        waitingForLater = false;
        if (!settled && running === 0 && next >= order.length) failAll();
      },
    );
    const finish = () => {
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      for (const c of controllers) c.abort();
    };
    const onAbort = () => {
      if (settled) return;
      finish();
      reject(Object.assign(new Error("connect aborted"), { code: "ABORT_ERR" }));
    };
    const start = () => {
      clearTimeout(timer);
      timer = undefined;
      if (settled || next >= order.length) return;
      const a = order[next++]!;
      const c = new AbortController();
      controllers.push(c);
      running++;
      // A synchronous throw (e.g. no route for that family) is a failed attempt like any other.
      new Promise<T>((res) => res(attempt(a, c.signal))).then(
        (flow) => {
          running--;
          if (settled) return void flow.destroy();
          finish();
          resolve(flow);
        },
        (e: Error) => {
          running--;
          if (settled) return;
          errors.push(Object.assign(e, { address: a.address }));
          if (next < order.length)
            start(); // a failure starts the next attempt at once
          else if (running === 0 && !waitingForLater) failAll();
        },
      );
      if (next < order.length) {
        timer = setTimeout(start, delay);
        timer.unref?.();
      }
    };
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    start();
  });
}
