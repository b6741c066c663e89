import { LIMITS, LOG_LEVELS, envDuration, envInt, parseEnv } from "@unbroken/protocol";
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
    REPLICAS: envInt(1, 1).refine((n) => n <= 5, "must be 1 to 5 (JetStream replicas)"),
    QUEUE_TIMEOUT: envDuration("60s"),
    WORKER_TIMEOUT: envDuration("30s"),
    DRAIN_TIMEOUT: envDuration("10s"),
    // Limits (README "Configuration", docs/protocol.md "Limits").
    MAX_SOCKET_BUFFER: envInt(1_048_576, 1024),
    MAX_PROMPT_BYTES: envInt(32_768, 1),
    MAX_TOKENS_CEILING: envInt(LIMITS.maxTokens, 1).refine((n) => n <= LIMITS.maxTokens, `must be at most ${LIMITS.maxTokens}`),
    MAX_GENERATIONS_PER_SOCKET: envInt(16, 1),
    MAX_GENERATIONS_PER_OWNER: envInt(2048, 1),
    MAX_SUBSCRIPTIONS_PER_SOCKET: envInt(256, 1),
    STEER_RATE: envRate(5),
    STEER_BURST: envInt(10, 1),
    CONNECTION_RATE: envRate(100, true),
    CONNECTION_BURST: envInt(20_000, 1),
    TRUST_PROXY: z.enum(["true", "false", "1", "0"], "must be true or false").default("false"),
    CAPABILITY_MAX_TTL: envDuration("24h"),
  })
  .refine((e) => e.AUTH !== "jwt" || (e.JWT_SECRET !== undefined && e.JWT_SECRET.length > 0), {
    message: "AUTH=jwt needs JWT_SECRET (the HS256 secret that signs client tokens)",
    path: ["JWT_SECRET"],
  });

/** A rate per second (decimals allowed, e.g. 0.5); with `zeroIsOff`, 0 turns the limit off. */
function envRate(def: number, zeroIsOff = false) {
  return z
    .string()
    .default(String(def))
    .transform((s, ctx) => {
      const n = Number(s.trim());
      if (!/^\d+(\.\d+)?$/.test(s.trim()) || !Number.isFinite(n) || (n === 0 && !zeroIsOff)) {
        ctx.addIssue({ code: "custom", message: `must be a number of events per second${zeroIsOff ? " (0 = no limit)" : " > 0"}, got ${JSON.stringify(s)}` });
        return z.NEVER;
      }
      return n;
    });
}

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
  /** Replicas of the streams and the bucket this edge creates (3 on a 3-node cluster). */
  replicas: number;
  queueTimeoutMs: number;
  workerTimeoutMs: number;
  drainTimeoutMs: number;
  limits: EdgeLimits;
  /** Take the client address from the last `X-Forwarded-For` entry (behind a load balancer). */
  trustProxy: boolean;
  /** The longest lifetime (`exp` − `iat`, and `exp` − now) a response-scoped token may have. */
  capabilityMaxTtlMs: number;
}

/** Per-socket, per-owner and per-address limits; each breach gets a clear error code. */
export interface EdgeLimits {
  /** Bytes waiting to be sent to one socket (or SSE stream) before it is closed as a slow consumer. */
  maxSocketBuffer: number;
  /** UTF-8 bytes of a prompt, or of all message contents together: `too_large` beyond. */
  maxPromptBytes: number;
  /** Highest `max_tokens` (`bad_request` beyond); below 32768 it is also the default. */
  maxTokensCeiling: number;
  /** Generations started on one socket and not ended. */
  generationsPerSocket: number;
  /** Generations of one owner not ended, counted by each edge on its own. */
  generationsPerOwner: number;
  subscriptionsPerSocket: number;
  /** Steers per second per response (token bucket), with this burst. */
  steerRate: number;
  steerBurst: number;
  /** New connections (and /v1 HTTP requests) per second per client address; 0 = unlimited. */
  connectionRate: number;
  connectionBurst: number;
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
    replicas: e.REPLICAS,
    queueTimeoutMs: e.QUEUE_TIMEOUT,
    workerTimeoutMs: e.WORKER_TIMEOUT,
    drainTimeoutMs: e.DRAIN_TIMEOUT,
    limits: {
      maxSocketBuffer: e.MAX_SOCKET_BUFFER,
      maxPromptBytes: e.MAX_PROMPT_BYTES,
      maxTokensCeiling: e.MAX_TOKENS_CEILING,
      generationsPerSocket: e.MAX_GENERATIONS_PER_SOCKET,
      generationsPerOwner: e.MAX_GENERATIONS_PER_OWNER,
      subscriptionsPerSocket: e.MAX_SUBSCRIPTIONS_PER_SOCKET,
      steerRate: e.STEER_RATE,
      steerBurst: e.STEER_BURST,
      connectionRate: e.CONNECTION_RATE,
      connectionBurst: e.CONNECTION_BURST,
    },
    trustProxy: e.TRUST_PROXY === "true" || e.TRUST_PROXY === "1",
    capabilityMaxTtlMs: e.CAPABILITY_MAX_TTL,
  };
}

/** `WEB_ROOT=none` serves no page; unset serves the built demo page when it is there. */
function webRootFrom(value: string | undefined): string | undefined {
  if (value === "none") return undefined;
  if (value !== undefined) return value;
  const built = fileURLToPath(new URL("../../../web/dist/", import.meta.url));
  return existsSync(built) ? built.replace(/\/$/, "") : undefined;
}
