// What a workload needs from a system under test, and the pieces the three targets share.

import { rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { atExit } from "../cleanup.js";
import { readStamps, type Stamp } from "../stamps.js";

/** How the load client talks to it: our protocol, a raw ws server, or SSE over HTTP. */
export type Protocol = "unbroken" | "ws" | "sse";

export interface StartOptions {
  /** Tokens per second per response (0 = as fast as possible). */
  tps: number;
  /** Streams that may run at once (the worker's CONCURRENCY). */
  concurrency: number;
  /** Write V8 CPU profiles of our Node processes here (--cpu-prof). */
  profileDir?: string;
}

export interface RunningTarget {
  readonly name: string;
  readonly protocol: Protocol;
  /** ws://…/v1/ws, or http://host:port for SSE. */
  readonly url: string;
  /** Every server-side process, by role (edge, worker, nats-server, server). */
  readonly pids: Record<string, number>;
  /**
   * Our stack's single nats-server: its URL, its JetStream store dir (W7 fills it and weighs it)
   * and its profiling port when it has one (W7 reads its heap; --profile its CPU).
   */
  readonly broker?: { url: string; storeDir: string; profPort?: number };
  /** Per response: epoch ms at which its generator began pacing (see stamp-preload.ts). */
  stamps(): Promise<Map<string, Stamp>>;
  stop(): Promise<void>;
}

export interface Target {
  readonly name: string;
  readonly protocol: Protocol;
  /** Fresh server processes (a long-lived broker may be reused). */
  start(opts: StartOptions): Promise<RunningTarget>;
  /** Stops whatever outlives start() (the nats-server). */
  close(): Promise<void>;
}

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const BENCH_DIST = path.join(ROOT, "bench", "dist");

let stampFiles = 0;

/** A fresh stamp file path, removed again by the returned function. */
export function stampFile(): { file: string; remove: () => void } {
  const file = path.join(os.tmpdir(), `unbroken-bench-${process.pid}-${++stampFiles}.stamps`);
  const remove = (): void => rmSync(file, { force: true });
  const forget = atExit(remove);
  return {
    file,
    remove: () => {
      forget();
      remove();
    },
  };
}

/** NODE_OPTIONS for our processes: the CPU profiler when asked, and the stamp preload for generators. */
export function nodeEnv(opts: { stamps?: string; profileDir?: string }): Record<string, string> {
  const flags = [process.env.NODE_OPTIONS ?? ""];
  if (opts.stamps) flags.push(`--import="${pathToFileURL(path.join(BENCH_DIST, "stamp-preload.js")).href}"`);
  if (opts.profileDir) flags.push(`--import="${pathToFileURL(path.join(BENCH_DIST, "profile-preload.js")).href}"`);
  const env: Record<string, string> = { NODE_OPTIONS: flags.join(" ").trim() };
  if (opts.stamps) env.BENCH_STAMP_FILE = opts.stamps;
  if (opts.profileDir) env.BENCH_CPU_PROFILE_DIR = opts.profileDir;
  return env;
}

export const stampsOf = (file: string) => (): Promise<Map<string, Stamp>> => readStamps(file);
