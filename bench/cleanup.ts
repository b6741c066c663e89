// Every child the bench starts itself (load processes) is killed when the bench exits, is
// interrupted (Ctrl-C) or terminated. nats-server, edge, worker and the baseline servers
// are started through @unbroken/testing, whose own exit hook kills them (SIGKILL) too.

import type { ChildProcess } from "node:child_process";

const children = new Set<ChildProcess>();
const files = new Set<() => void>();

/** A synchronous cleanup (e.g. removing a temp file) to run at exit; returns its remover. */
export function atExit(fn: () => void): () => void {
  files.add(fn);
  return () => files.delete(fn);
}

export function track(child: ChildProcess): () => void {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return () => children.delete(child);
}

function killAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  children.clear();
  for (const fn of files) {
    try {
      fn();
    } catch {
      // best effort
    }
  }
  files.clear();
}

/** Installs the hooks; `onSignal` runs (once) on SIGINT/SIGTERM/SIGHUP before the exit. */
export function installCleanup(onSignal: (sig: NodeJS.Signals) => Promise<void>): void {
  process.on("exit", killAll);
  let stopping = false;
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      if (stopping) return;
      stopping = true;
      killAll();
      process.stderr.write(`\n[bench] ${sig}: stopping every process it started\n`);
      const hardStop = setTimeout(() => process.exit(130), 15_000);
      onSignal(sig).finally(() => {
        clearTimeout(hardStop);
        process.exit(130);
      });
    });
  }
}
