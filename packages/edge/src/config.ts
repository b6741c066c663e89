import { LOG_LEVELS, envDuration, envInt, parseEnv } from "@unbroken/protocol";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { z } from "zod";

export const edgeEnvSchema = z
  .object({
    NATS_URL: z.string().min(1).default("nats://127.0.0.1:4222"),
    LOG_LEVEL: z.enum(LOG_LEVELS).default("info"),
    PORT: envInt(8787).refine((n) => n <= 65535, "must be a port number (0 = any free port)"),
    HOST: z.string().min(1).default("127.0.0.1"),
    AUTH: z.enum(["none", "jwt"]).default("none"),
    JWT_SECRET: z.string().optional(),
    MAX_FRAME_BYTES: envInt(65_536, 64),
    MAX_BODY_BYTES: envInt(65_536, 64),
    WEB_ROOT: z.string().optional(),
    HEARTBEAT: envDuration("15s"),
    HELLO_TIMEOUT: envDuration("10s"),
    RETENTION: envDuration("24h"),
    QUEUE_TIMEOUT: envDuration("60s"),
    WORKER_TIMEOUT: envDuration("30s"),
    DRAIN_TIMEOUT: envDuration("10s"),
  })
  .refine((e) => e.AUTH !== "jwt" || (e.JWT_SECRET !== undefined && e.JWT_SECRET.length > 0), {
    message: "AUTH=jwt needs JWT_SECRET (the HS256 secret that signs client tokens)",
    path: ["JWT_SECRET"],
  });

export interface EdgeConfig {
  natsUrl: string;
  logLevel: (typeof LOG_LEVELS)[number];
  port: number;
  host: string;
  auth: { mode: "none" } | { mode: "jwt"; secret: string };
  maxFrameBytes: number;
  maxBodyBytes: number;
  /** The demo page's directory; undefined serves none. */
  webRoot: string | undefined;
  heartbeatMs: number;
  helloTimeoutMs: number;
  retentionMs: number;
  queueTimeoutMs: number;
  workerTimeoutMs: number;
  drainTimeoutMs: number;
}

export function edgeConfigFromEnv(env: Record<string, string | undefined>): EdgeConfig {
  const e = parseEnv(edgeEnvSchema, env, "edge");
  return {
    natsUrl: e.NATS_URL,
    logLevel: e.LOG_LEVEL,
    port: e.PORT,
    host: e.HOST,
    auth: e.AUTH === "jwt" ? { mode: "jwt", secret: e.JWT_SECRET as string } : { mode: "none" },
    maxFrameBytes: e.MAX_FRAME_BYTES,
    maxBodyBytes: e.MAX_BODY_BYTES,
    webRoot: webRootFrom(e.WEB_ROOT),
    heartbeatMs: e.HEARTBEAT,
    helloTimeoutMs: e.HELLO_TIMEOUT,
    retentionMs: e.RETENTION,
    queueTimeoutMs: e.QUEUE_TIMEOUT,
    workerTimeoutMs: e.WORKER_TIMEOUT,
    drainTimeoutMs: e.DRAIN_TIMEOUT,
  };
}

/** `WEB_ROOT=none` serves no page; unset serves the built demo page when it is there. */
function webRootFrom(value: string | undefined): string | undefined {
  if (value === "none") return undefined;
  if (value !== undefined) return value;
  const built = fileURLToPath(new URL("../../../web/dist/", import.meta.url));
  return existsSync(built) ? built.replace(/\/$/, "") : undefined;
}
