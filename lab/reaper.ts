/**
 * What must not outlive this process (network namespaces, the processes started in them) is
 * registered here and removed synchronously on a normal exit, on an uncaught exception (Node runs
 * the 'exit' listeners then) and on SIGINT / SIGTERM / SIGHUP.
 *
 * Signals and exit are process-wide, so this registry is the one piece of module state in lab/.
 * Its listeners are installed only while something is registered: importing paf does not change
 * how a process reacts to signals. After cleaning up on a signal, if no one else listens for it,
 * the process dies of that signal as it would have without us.
 */
type Reap = () => void;

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
const pending = new Set<Reap>();
let installed = false;

function reapAll(): void {
  for (const fn of [...pending]) {
    pending.delete(fn);
    try {
      fn();
    } catch {
      /* best effort: the process is going away */
    }
  }
}

const onExit = (): void => reapAll();
const onSignal = (sig: NodeJS.Signals): void => {
  reapAll();
  uninstall();
  if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
};

function install(): void {
  if (installed) return;
  installed = true;
  process.on("exit", onExit);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  process.off("exit", onExit);
  for (const s of SIGNALS) process.off(s, onSignal);
}

/**
 * Run `fn` (synchronous, must not throw) if the process ends before the returned function is
 * called; calling that function forgets `fn` (the resource was released the ordinary way).
 */
export function atProcessEnd(fn: Reap): () => void {
  pending.add(fn);
  install();
  return () => {
    pending.delete(fn);
    if (pending.size === 0) uninstall();
  };
}
