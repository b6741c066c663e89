import { checkGeneratorEnv, generatorConfig, generatorEnv, type GeneratorConfig } from "@unbroken/generators";
import { deprecatedAlias, durationSchema, envDuration, envVar, parseEnv } from "@unbroken/protocol";
import { sharedEnv } from "@unbroken/store";
import * as z from "zod";

/** A port (0 = any free one), or `off` for no metrics server. */
const metricsPort = z
  .string()
  .default("9464")
  .transform((s, ctx) => {
    const text = s.trim();
    if (text === "off") return "off" as const;
    const n = Number(text);
    if (!/^\d+$/.test(text) || n > 65535) {
      ctx.addIssue({ code: "custom", message: `must be a port number (0 = any free port) or off, got ${JSON.stringify(s)}` });
      return z.NEVER;
    }
    return n;
  });

/** A share of time, 0 to 1. */
const share = (def: string) =>
  z
    .string()
    .default(def)
    .transform((s, ctx) => {
      const n = Number(s.trim());
      if (s.trim() === "" || !Number.isFinite(n) || n < 0 || n > 1) {
        ctx.addIssue({ code: "custom", message: `must be a share of time from 0 to 1 (0 = always busy), got ${JSON.stringify(s)}` });
        return z.NEVER;
      }
      return n;
    });

/** The worker's own variables (besides sharedEnv and generatorEnv). */
export const workerOwnEnv = {
  TAKEOVER_TIMEOUT: envVar(
    durationSchema.optional(),
    "the request queue's ack wait: a worker silent this long (killed, frozen, cut off) has its responses taken over and continued by another worker. All workers should share it; keep it below the edges' ORPHAN_TIMEOUT",
    { default: "10s" },
  ),
  STALL_TIMEOUT: envVar(
    envDuration("60s"),
    "a generation that produces nothing for this long ends with `end` `error` `stalled`, freeing its slot",
    { default: "60s" },
  ),
  COALESCE_MS: envVar(
    envDuration("20ms"),
    "how long a token may wait to share a `token` event with the tokens after it while the worker is busy (5 × that while saturated); `0` = one event per token, the latency-first setting",
    { default: "20ms" },
  ),
  COALESCE_BUSY: envVar(
    share("0.4"),
    "the worker counts as busy (and gathers tokens for COALESCE_MS) while its event loop works more than this share of the time (sampled every 100 ms); `0` = always gather",
  ),
  WORKER_ID: envVar(
    z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/)
      .optional(),
    "the worker's name in logs and response records",
    { default: "random" },
  ),
  METRICS_PORT: envVar(
    metricsPort,
    "port of the worker's Prometheus `GET /metrics`; `0` = any free port, `off` = none. When the port is taken (a second worker on this host) the worker warns and serves on any free port (logged as `metricsPort` in `ready`)",
  ),
  METRICS_HOST: envVar(
    z.string().min(1).default("127.0.0.1"),
    "address of that server (`0.0.0.0` in a container to be scraped from outside it)",
  ),
};

export const workerEnvSchema = z.object({ ...sharedEnv, ...generatorEnv, ...workerOwnEnv }).superRefine(checkGeneratorEnv);

export type WorkerEnv = z.infer<typeof workerEnvSchema>;

export interface WorkerConfig extends GeneratorConfig {
  natsUrl: string;
  logLevel: WorkerEnv["LOG_LEVEL"];
  retentionMs: number;
  /** Replicas of the streams and buckets this worker creates (3 on a 3-node cluster). */
  replicas: number;
  queueTimeoutMs: number;
  /** TAKEOVER_TIMEOUT: the request queue's ack wait. */
  takeoverTimeoutMs: number;
  /** A generation that produces nothing for this long ends with `stalled`. */
  stallTimeoutMs: number;
  drainTimeoutMs: number;
  /** See TokenCoalescer: 0 = one event per token. */
  coalesceMs: number;
  /** Event loop utilization (0..1) above which the worker gathers tokens for coalesceMs. */
  coalesceBusy: number;
  workerId: string | undefined;
  /** Where GET /metrics is served (port 0: any free one); undefined with METRICS_PORT=off. */
  metrics: { port: number; host: string } | undefined;
  /** Said once the worker has a logger (deprecated names in use). */
  warnings: string[];
}

/** Reads the worker's configuration; every problem is named with its variable. */
export function workerConfigFromEnv(env: Record<string, string | undefined>): WorkerConfig {
  const e = parseEnv(workerEnvSchema, env, "worker");
  const warnings: string[] = [];
  return {
    ...generatorConfig(e),
    natsUrl: e.NATS_URL,
    logLevel: e.LOG_LEVEL,
    retentionMs: e.RETENTION,
    replicas: e.REPLICAS,
    queueTimeoutMs: e.QUEUE_TIMEOUT,
    takeoverTimeoutMs: deprecatedAlias(e.TAKEOVER_TIMEOUT, e.WORKER_TIMEOUT, "WORKER_TIMEOUT", "TAKEOVER_TIMEOUT", warnings) ?? 10_000,
    stallTimeoutMs: e.STALL_TIMEOUT,
    drainTimeoutMs: e.DRAIN_TIMEOUT ?? 30_000,
    coalesceMs: e.COALESCE_MS,
    coalesceBusy: e.COALESCE_BUSY,
    workerId: e.WORKER_ID,
    metrics: e.METRICS_PORT === "off" ? undefined : { port: e.METRICS_PORT, host: e.METRICS_HOST },
    warnings,
  };
}
