// Last-resort cleanup for child processes (and their temp dirs) started by the
// helpers in this package.
//
// The registry below is the package's only module-level state. It has to be
// module-level: a test that throws, forgets `stop()`, or whose process is told
// to exit must still not leave a nats-server or service running, and
// `process.on('exit')` can only reach state that outlives every handle.
// Callbacks must be synchronous because 'exit' listeners cannot await.

const cleanups = new Set<() => void>();
let hooked = false;

/** Register a synchronous cleanup to run if this process exits first. Returns an unregister function. */
export function registerCleanup(fn: () => void): () => void {
  hook();
  cleanups.add(fn);
  return () => {
    cleanups.delete(fn);
  };
}

function runAll(): void {
  for (const fn of [...cleanups]) {
    cleanups.delete(fn);
    try {
      fn();
    } catch {
      // Best effort: one failing cleanup must not prevent the others.
    }
  }
}

function hook(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", runAll);
  // 'exit' does not fire when the process dies from a signal (the node:test
  // runner SIGTERMs a timed-out test file), so clean up on those too.
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = (): void => {
      runAll();
      process.off(sig, onSignal);
      // Installing a listener disables Node's default "die on signal". Restore
      // it by re-raising, unless the code under test handles the signal itself.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}
