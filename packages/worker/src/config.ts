import { LOG_LEVELS, envDuration, envInt, parseEnv } from "@unbroken/protocol";
import { z } from "zod";
import { availableParallelism } from "node:os";

export const workerEnvSchema = z.object({
  NATS_URL: z.string().min(1).default("nats://127.0.0.1:4222"),
  LOG_LEVEL: z.enum(LOG_LEVELS).default("info"),
  GENERATOR: z.enum(["scripted", "llama", "openai"]).default("scripted"),
  SCRIPTED_TPS: envInt(30),
  CONCURRENCY: envInt(Math.max(4, availableParallelism() * 4), 1),
  RETENTION: envDuration("24h"),
  QUEUE_TIMEOUT: envDuration("60s"),
  WORKER_TIMEOUT: envDuration("30s"),
  DRAIN_TIMEOUT: envDuration("30s"),
  WORKER_ID: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).optional(),
});

export type WorkerEnv = z.infer<typeof workerEnvSchema>;

export interface WorkerConfig {
  natsUrl: string;
  logLevel: WorkerEnv["LOG_LEVEL"];
  generator: WorkerEnv["GENERATOR"];
  scriptedTps: number;
  concurrency: number;
  retentionMs: number;
  queueTimeoutMs: number;
  workerTimeoutMs: number;
  drainTimeoutMs: number;
  workerId: string | undefined;
}

/** Reads the worker's configuration; every problem is named with its variable. */
export function workerConfigFromEnv(env: Record<string, string | undefined>): WorkerConfig {
  const e = parseEnv(workerEnvSchema, env, "worker");
  return {
    natsUrl: e.NATS_URL,
    logLevel: e.LOG_LEVEL,
    generator: e.GENERATOR,
    scriptedTps: e.SCRIPTED_TPS,
    concurrency: e.CONCURRENCY,
    retentionMs: e.RETENTION,
    queueTimeoutMs: e.QUEUE_TIMEOUT,
    workerTimeoutMs: e.WORKER_TIMEOUT,
    drainTimeoutMs: e.DRAIN_TIMEOUT,
    workerId: e.WORKER_ID,
  };
}
