// The parent's handle on one load process: fork, run one job, read its CPU, stop it.

import { fork, type ChildProcess } from "node:child_process";
import path from "node:path";
import { track } from "./cleanup.js";
import { cpuSeconds, raiseNofile } from "./proc.js";
import { BENCH_DIST } from "./targets/target.js";
import type { IdleResult, Job, LoadMessage, StreamsResult } from "./load/types.js";

export class LoadProcess {
  private constructor(
    private readonly child: ChildProcess,
    private readonly untrack: () => void,
  ) {}

  /** Forks bench/dist/load/main.js; raises its open-files limit to `nofile` when that is needed. */
  static async start(nofile = 0): Promise<LoadProcess> {
    const child = fork(path.join(BENCH_DIST, "load", "main.js"), [], {
      serialization: "advanced",
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const untrack = track(child);
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", reject);
    });
    if (nofile > 0) raiseNofile(child.pid ?? 0, nofile);
    return new LoadProcess(child, untrack);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  cpu(): number {
    return cpuSeconds(this.pid);
  }

  /** Runs a job; `onIdleReady` is called for an idle job once every socket is open, and must resolve to release them. */
  run(job: Exclude<Job, { kind: "idle" }>): Promise<StreamsResult>;
  run(job: Extract<Job, { kind: "idle" }>, onIdleReady: (opened: number, failed: number) => Promise<void>): Promise<IdleResult>;
  run(job: Job, onIdleReady?: (opened: number, failed: number) => Promise<void>): Promise<StreamsResult | IdleResult> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null, signal: string | null): void => reject(new Error(`load process exited (${code ?? signal})`));
      this.child.once("exit", onExit);
      this.child.on("message", (m: LoadMessage) => {
        if (m.type === "idle-ready") {
          void (onIdleReady?.(m.opened, m.failed) ?? Promise.resolve()).then(() => this.child.send("release"));
          return;
        }
        this.child.off("exit", onExit);
        if (m.type === "result") resolve(m.result);
        else reject(new Error(`load process failed: ${m.error}`));
      });
      this.child.send(job);
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((r) => this.child.once("exit", r));
      this.child.disconnect();
      const t = setTimeout(() => this.child.kill("SIGKILL"), 3_000);
      await exited;
      clearTimeout(t);
    }
    this.untrack();
  }
}
