// Small shared pieces for managing spawned children.
//
// Children are unref()'d so that a test which forgets to stop one (or fails
// before it can) does not keep its process alive forever; the exit hook in
// cleanup.ts then kills it. Anything that *waits* on a child must therefore
// hold it open explicitly, or Node may exit mid-await.

import type { ChildProcess } from "node:child_process";
import type { Socket } from "node:net";

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export function isRunning(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

/** Resolves on `event` ('close' also waits for stdio to drain). Also resolves if spawning failed. */
export function exitPromise(child: ChildProcess, event: "exit" | "close"): Promise<ExitInfo> {
  return new Promise((resolve) => {
    child.once(event, (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal }));
    child.once("error", () => {
      if (child.pid === undefined) resolve({ code: null, signal: null });
    });
  });
}

/** Unref a child and its stdio pipes (see top of file). */
export function release(child: ChildProcess): void {
  child.unref();
  // stdio pipes are net.Sockets at runtime; the typings only say Readable.
  for (const p of [child.stdout, child.stderr] as unknown as (Socket | null)[]) p?.unref();
}

/**
 * Keep the event loop alive until the returned function is called. A private
 * timer per waiter (rather than re-ref()ing the child) lets overlapping waits
 * on the same child end independently.
 */
export function keepAlive(): () => void {
  const timer = setInterval(() => {}, 1 << 30);
  return () => clearInterval(timer);
}

/** Send `signal`, escalate to SIGKILL after `graceMs`, and wait for `exited`. */
export async function terminate(
  child: ChildProcess,
  exited: Promise<ExitInfo>,
  signal: NodeJS.Signals,
  graceMs: number,
): Promise<ExitInfo> {
  const done = keepAlive();
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  try {
    if (isRunning(child)) child.kill(signal);
    return await exited;
  } finally {
    clearTimeout(timer);
    done();
  }
}

/** Keeps the last `max` characters written to it (enough context for error messages). */
export class Tail {
  private text = "";
  constructor(private readonly max = 16_384) {}
  push(chunk: string | Buffer): void {
    this.text = (this.text + chunk.toString()).slice(-this.max);
  }
  toString(): string {
    return this.text;
  }
}
