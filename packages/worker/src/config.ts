import { LOG_LEVELS, envDuration, envInt, parseEnv } from "@unbroken/protocol";
import { z } from "zod";
import { availableParallelism } from "node:os";

export const GENERATORS = ["scripted", "llama", "openai"] as const;
export type GeneratorName = (typeof GENERATORS)[number];

export const workerEnvSchema = z
  .object({
    NATS_URL: z.string().min(1).default("nats://127.0.0.1:4222"),
    LOG_LEVEL: z.enum(LOG_LEVELS).default("info"),
    GENERATOR: z.enum(GENERATORS).optional(),
    SCRIPTED_TPS: envInt(30),
    MODEL_PATH: z.string().optional(),
    MODEL: z.string().optional(),
    LLAMA_THREADS: envInt(availableParallelism(), 1),
    LLAMA_GPU: z.enum(["auto", "false", "cuda", "vulkan", "metal"]).default("auto"),
    LLAMA_CONTEXT_SIZE: envInt(4096, 64),
    OPENAI_BASE_URL: z.url({ protocol: /^https?$/ }).optional(),
    OPENAI_API_KEY: z.string().optional(),
    OPENAI_MODEL: z.string().optional(),
    CONCURRENCY: envInt(Math.max(4, availableParallelism() * 4), 1),
    RETENTION: envDuration("24h"),
    REPLICAS: envInt(1, 1).refine((n) => n <= 5, "must be 1 to 5 (JetStream replicas)"),
    QUEUE_TIMEOUT: envDuration("60s"),
    // The request queue's ack wait: a worker silent this long (killed, stopped, cut off)
    // loses its responses to another worker, which continues them. Keep it below the
    // edges' WORKER_TIMEOUT (30 s), whose probe only ends responses no worker took over.
    WORKER_TIMEOUT: envDuration("10s"),
    STALL_TIMEOUT: envDuration("60s"),
    DRAIN_TIMEOUT: envDuration("30s"),
    // Token coalescing (README "Performance"): the longest a token waits to share an event
    // with the next ones while the worker is busy (0 = one event per token), and the event
    // loop utilization above which it counts as busy.
    COALESCE_MS: envDuration("20ms"),
    COALESCE_BUSY: z
      .string()
      .default("0.4")
      .transform((s, ctx) => {
        const n = Number(s.trim());
        if (s.trim() === "" || !Number.isFinite(n) || n < 0 || n > 1) {
          ctx.addIssue({ code: "custom", message: `must be a share of time from 0 to 1 (0 = always busy), got ${JSON.stringify(s)}` });
          return z.NEVER;
        }
        return n;
      }),
    WORKER_ID: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).optional(),
    // Prometheus GET /metrics on a small HTTP server of the worker's own (it has no other).
    METRICS_PORT: envMetricsPort(9464),
    METRICS_HOST: z.string().min(1).default("127.0.0.1"),
  })
  .refine((e) => e.GENERATOR !== "llama" || e.MODEL_PATH !== undefined || e.MODEL !== undefined, {
    message: "GENERATOR=llama needs MODEL_PATH (a GGUF file) or MODEL (a model URI node-llama-cpp can resolve)",
    path: ["MODEL_PATH"],
  })
  .refine((e) => e.GENERATOR !== "openai" || e.OPENAI_BASE_URL !== undefined, {
    message: "GENERATOR=openai needs OPENAI_BASE_URL (e.g. http://127.0.0.1:8000/v1)",
    path: ["OPENAI_BASE_URL"],
  });

/** A port (0 = any free one), or `off` for no metrics server. */
function envMetricsPort(def: number) {
  return z
    .string()
    .default(String(def))
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
}

export type WorkerEnv = z.infer<typeof workerEnvSchema>;

export interface WorkerConfig {
  natsUrl: string;
  logLevel: WorkerEnv["LOG_LEVEL"];
  generator: GeneratorName;
  /** Why this generator: named in the `ready` log line. */
  generatorReason: string;
  scriptedTps: number;
  llama: { model: string; threads: number; gpu: WorkerEnv["LLAMA_GPU"]; contextSize: number };
  openai: { baseUrl: string; apiKey: string | undefined; model: string | undefined };
  concurrency: number;
  retentionMs: number;
  /** Replicas of the streams and the bucket this worker creates (3 on a 3-node cluster). */
  replicas: number;
  queueTimeoutMs: number;
  workerTimeoutMs: number;
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
}

/** GENERATOR when given; otherwise a model file or URI means llama, an upstream means openai. */
function chooseGenerator(e: WorkerEnv): { generator: GeneratorName; reason: string } {
  if (e.GENERATOR) return { generator: e.GENERATOR, reason: "GENERATOR is set" };
  if (e.MODEL_PATH !== undefined) return { generator: "llama", reason: "MODEL_PATH is set" };
  if (e.MODEL !== undefined) return { generator: "llama", reason: "MODEL is set" };
  if (e.OPENAI_BASE_URL !== undefined) return { generator: "openai", reason: "OPENAI_BASE_URL is set" };
  return { generator: "scripted", reason: "no MODEL_PATH, MODEL or OPENAI_BASE_URL" };
}

/** Reads the worker's configuration; every problem is named with its variable. */
export function workerConfigFromEnv(env: Record<string, string | undefined>): WorkerConfig {
  const e = parseEnv(workerEnvSchema, env, "worker");
  const { generator, reason } = chooseGenerator(e);
  return {
    natsUrl: e.NATS_URL,
    logLevel: e.LOG_LEVEL,
    generator,
    generatorReason: reason,
    scriptedTps: e.SCRIPTED_TPS,
    llama: { model: e.MODEL_PATH ?? e.MODEL ?? "", threads: e.LLAMA_THREADS, gpu: e.LLAMA_GPU, contextSize: e.LLAMA_CONTEXT_SIZE },
    openai: { baseUrl: (e.OPENAI_BASE_URL ?? "").replace(/\/+$/, ""), apiKey: e.OPENAI_API_KEY, model: e.OPENAI_MODEL },
    concurrency: e.CONCURRENCY,
    retentionMs: e.RETENTION,
    replicas: e.REPLICAS,
    queueTimeoutMs: e.QUEUE_TIMEOUT,
    workerTimeoutMs: e.WORKER_TIMEOUT,
    stallTimeoutMs: e.STALL_TIMEOUT,
    drainTimeoutMs: e.DRAIN_TIMEOUT,
    coalesceMs: e.COALESCE_MS,
    coalesceBusy: e.COALESCE_BUSY,
    workerId: e.WORKER_ID,
    metrics: e.METRICS_PORT === "off" ? undefined : { port: e.METRICS_PORT, host: e.METRICS_HOST },
  };
}
