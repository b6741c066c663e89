import {
  LIMITS,
  type LOG_LEVELS,
  deprecatedAlias,
  durationSchema,
  envDuration,
  envInt,
  envPort,
  envRate,
  envVar,
  parseEnv,
} from "@unbroken/protocol";
import { sharedEnv } from "@unbroken/store";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { allowedOriginsSchema, isLoopbackHost, type AllowedOrigins } from "./origin.js";

/** The shortest JWT_SECRET accepted: 256 bits, HS256's own size. */
export const MIN_SECRET_BYTES = 32;

/** The edge's own variables (besides sharedEnv). */
export const edgeOwnEnv = {
  PORT: envVar(
    envPort(8787),
    "listening port; `0` = any free port (the chosen one is logged as `port` in `listening`). Unset and 8787 taken (a second edge on this host): any free port, with a warning; a port that is set is never changed",
  ),
  HOST: envVar(z.string().min(1).default("127.0.0.1"), "listening address"),
  AUTH: envVar(
    z.enum(["none", "jwt"]).default("none"),
    "`none` (anyone who knows a rid may read it) or `jwt` (HS256 tokens, `sub` = owner)",
  ),
  JWT_SECRET: envVar(
    z.string().optional(),
    `the HS256 secret of client tokens; required with \`AUTH=jwt\`, at least ${MIN_SECRET_BYTES} bytes (UTF-8), e.g. \`openssl rand -base64 48\``,
  ),
  JWT_ISSUER: envVar(
    z.string().min(1).optional(),
    "when set, every token (owner or response-scoped) must carry this `iss`; others get `unauthorized`",
  ),
  JWT_AUDIENCE: envVar(
    z.string().min(1).optional(),
    "when set, every token (owner or response-scoped) must carry this `aud` (or a list holding it); others get `unauthorized`",
  ),
  ALLOW_ANONYMOUS: envVar(
    z.enum(["true", "false", "1", "0"], "must be true or false").default("false"),
    "`true` lets `AUTH=none` listen on a `HOST` other than loopback (anyone who reaches it may generate, read, steer and cancel); without it such an edge refuses to start",
  ),
  ALLOWED_ORIGINS: envVar(
    allowedOriginsSchema,
    "browser origins besides the edge's own that may use the WebSocket and `/v1/` (comma-separated `scheme://host[:port]`, or `*` for any); they get CORS headers. Unset: only pages the edge serves itself, and clients that send no `Origin` (servers, CLIs, SDKs); others get 403",
    { default: "— (own origin only)" },
  ),
  MAX_FRAME_BYTES: envVar(envInt(65_536, 64), "larger client frames close the socket with 1009"),
  MAX_BODY_BYTES: envVar(envInt(65_536, 64), "larger HTTP request bodies get 413 `too_large`"),
  WEB_ROOT: envVar(z.string().optional(), "directory served at `/` (the demo page); `none` serves nothing", {
    default: "packages/web/dist when built",
  }),
  HEARTBEAT: envVar(
    envDuration("15s"),
    "WebSocket ping interval (`heartbeat_ms` in `welcome`); two unanswered pings close the socket with 1011",
    { default: "15s" },
  ),
  HELLO_TIMEOUT: envVar(envDuration("10s"), "a socket without `hello` by then gets `unauthorized` and close 4401", { default: "10s" }),
  ORPHAN_TIMEOUT: envVar(
    durationSchema.optional(),
    "a subscribed response silent this long has its worker checked, and is ended with `worker_lost` when none answers; keep it above the workers' TAKEOVER_TIMEOUT, so it only ends what no worker took over",
    { default: "30s" },
  ),
  MAX_SOCKET_BUFFER: envVar(
    envInt(1_048_576, 1024),
    "bytes waiting to be sent to one socket (or SSE stream) before it is closed as a slow consumer (4008; an SSE stream is cut); the client resumes from its last seq",
  ),
  MAX_PROMPT_BYTES: envVar(
    envInt(32_768, 1),
    "UTF-8 bytes of what a generation is asked: the prompt or every message's content, the tool calls' names and arguments, the tool results, and the `tools` as JSON (their schemas), together; larger gets `too_large` (HTTP 413)",
  ),
  MAX_TURNS_PER_THREAD: envVar(
    envInt(1000, 1),
    "turns one thread may hold (each `generate` with `thread` appends one); more: `too_large` (HTTP 413), naming it: start a new thread",
  ),
  MAX_TURN_BYTES: envVar(
    envInt(65_536, 256),
    "UTF-8 bytes of the messages one turn stores in its thread (the messages after the last assistant message, as JSON); larger: `too_large` (HTTP 413)",
  ),
  MAX_TOKENS_CEILING: envVar(
    envInt(LIMITS.maxTokens, 1).refine((n) => n <= LIMITS.maxTokens, `must be at most ${LIMITS.maxTokens}`),
    "largest `max_tokens` a request may ask (more: `bad_request`); below 32768 it is also the `max_tokens` of requests that ask none",
  ),
  MAX_GENERATIONS_PER_SOCKET: envVar(envInt(16, 1), "generations started on one socket and not ended; more: `rate_limited`"),
  MAX_GENERATIONS_PER_OWNER: envVar(
    envInt(2048, 1),
    "generations of one owner not ended, counted by each edge for itself (with `AUTH=none` all clients are one owner); more: `rate_limited` (HTTP 429)",
  ),
  MAX_SUBSCRIPTIONS_PER_SOCKET: envVar(envInt(256, 1), "subscriptions on one socket (a `generate` opens one too); more: `rate_limited`"),
  STEER_RATE: envVar(envRate(5), "steers per second per response (decimals allowed); more: `rate_limited` (HTTP 429)"),
  STEER_BURST: envVar(envInt(10, 1), "steers one response may take at once, within STEER_RATE"),
  STEER_RATE_PER_OWNER: envVar(
    envRate(20),
    "steers per second of one owner over all its responses (decimals allowed), counted by each edge; more: `rate_limited` (HTTP 429)",
  ),
  STEER_BURST_PER_OWNER: envVar(envInt(100, 1), "steers one owner may send at once, within STEER_RATE_PER_OWNER"),
  MAX_STEERS_PER_RESPONSE: envVar(
    envInt(64, 1),
    "steers one response may take in all, counted by each edge (each one restarts an upstream request with the whole conversation); more: `rate_limited` (HTTP 429)",
  ),
  MAX_STREAMS_PER_OWNER: envVar(
    envInt(4096, 1),
    "open streams of one owner on this edge, of every kind: socket subscriptions (a `generate` opens one), SSE, chat completions, Responses API requests; a response-scoped token counts as its own client (with `AUTH=none` all clients are one owner); more: `rate_limited` (HTTP 429)",
  ),
  MAX_STREAMS_PER_ADDRESS: envVar(
    envInt(4096, 1),
    "open streams (as MAX_STREAMS_PER_OWNER) from one client address on this edge; more: `rate_limited` (HTTP 429)",
  ),
  FRAME_RATE: envVar(
    envRate(100),
    "frames per second a socket may send, pings included (decimals allowed); more: `rate_limited`, and 32 refusals in a row close the socket with 1008",
  ),
  FRAME_BURST: envVar(envInt(1024, 1), "frames one socket may send at once, within FRAME_RATE"),
  CONNECTION_RATE: envVar(
    envRate(100, true),
    "new WebSocket connections and `/v1` HTTP requests per second per client address (`0` = no limit); more: HTTP 429",
  ),
  CONNECTION_BURST: envVar(
    envInt(20_000, 1),
    "connections one address may open at once, within CONNECTION_RATE (large, so a NAT or the benchmark's 10,000 sockets pass; lower it on a public edge)",
  ),
  TRUST_PROXY: envVar(
    z.enum(["true", "false", "1", "0"], "must be true or false").default("false"),
    "`true` behind a load balancer: the client address is the last `X-Forwarded-For` entry",
  ),
  CAPABILITY_MAX_TTL: envVar(envDuration("24h"), "the longest a response-scoped token may live (`exp` − `iat`, and `exp` − now)", {
    default: "24h",
  }),
};

export const edgeEnvSchema = z
  .object({ ...sharedEnv, ...edgeOwnEnv })
  .refine((e) => e.AUTH !== "jwt" || (e.JWT_SECRET !== undefined && e.JWT_SECRET.length > 0), {
    message: "AUTH=jwt needs JWT_SECRET (the HS256 secret that signs client tokens)",
    path: ["JWT_SECRET"],
  })
  // A short HS256 secret can be found by brute force from any one token it signed.
  .refine((e) => e.AUTH !== "jwt" || !e.JWT_SECRET || Buffer.byteLength(e.JWT_SECRET, "utf8") >= MIN_SECRET_BYTES, {
    message: `JWT_SECRET must be at least ${MIN_SECRET_BYTES} bytes with AUTH=jwt (a short secret can be guessed from a token); e.g. openssl rand -base64 48`,
    path: ["JWT_SECRET"],
  })
  .refine((e) => e.AUTH !== "none" || isLoopbackHost(e.HOST) || e.ALLOW_ANONYMOUS === "true" || e.ALLOW_ANONYMOUS === "1", {
    message:
      "AUTH=none on a HOST that is not loopback would let anyone who reaches it generate, read, steer and cancel: set AUTH=jwt with JWT_SECRET, or ALLOW_ANONYMOUS=true to serve anonymous access on purpose (or HOST=127.0.0.1)",
    path: ["AUTH"],
  });

export interface EdgeConfig {
  natsUrl: string;
  logLevel: (typeof LOG_LEVELS)[number];
  port: number;
  /** PORT was not set: when 8787 is taken the edge listens on any free port instead. */
  portIsDefault: boolean;
  host: string;
  auth: { mode: "none" } | { mode: "jwt"; secret: string; issuer?: string | undefined; audience?: string | undefined };
  /** Foreign browser origins admitted besides the edge's own (ALLOWED_ORIGINS). */
  allowedOrigins: AllowedOrigins;
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
  /** ORPHAN_TIMEOUT: a subscribed response silent this long has its worker checked. */
  orphanTimeoutMs: number;
  drainTimeoutMs: number;
  limits: EdgeLimits;
  /** Take the client address from the last `X-Forwarded-For` entry (behind a load balancer). */
  trustProxy: boolean;
  /** The longest lifetime (`exp` − `iat`, and `exp` − now) a response-scoped token may have. */
  capabilityMaxTtlMs: number;
  /** Said once the edge has a logger (deprecated names in use). */
  warnings: string[];
}

/** Per-socket, per-owner and per-address limits; each breach gets a clear error code. */
export interface EdgeLimits {
  /** Bytes waiting to be sent to one socket (or SSE stream) before it is closed as a slow consumer. */
  maxSocketBuffer: number;
  /** UTF-8 bytes of the prompt or the messages (calls and tool results included) plus the tools' JSON: `too_large` beyond. */
  maxPromptBytes: number;
  /** Turns one thread may hold. */
  turnsPerThread: number;
  /** Bytes of one turn's messages as JSON. */
  maxTurnBytes: number;
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
  /** Steers per second of one owner over all its responses (token bucket), with this burst. */
  steerRatePerOwner: number;
  steerBurstPerOwner: number;
  /** Steers one response may take in all (each restarts the upstream request). */
  maxSteersPerResponse: number;
  /** Open streams of every kind per owner (or response-scoped token) and per client address. */
  streamsPerOwner: number;
  streamsPerAddress: number;
  /** Frames per second one socket may send (token bucket), with this burst. */
  frameRate: number;
  frameBurst: number;
  /** New connections (and /v1 HTTP requests) per second per client address; 0 = unlimited. */
  connectionRate: number;
  connectionBurst: number;
}

export function edgeConfigFromEnv(env: Record<string, string | undefined>): EdgeConfig {
  const e = parseEnv(edgeEnvSchema, env, "edge");
  const warnings: string[] = [];
  return {
    natsUrl: e.NATS_URL,
    logLevel: e.LOG_LEVEL,
    port: e.PORT,
    portIsDefault: env.PORT === undefined || env.PORT === "",
    host: e.HOST,
    auth:
      e.AUTH === "jwt" ? { mode: "jwt", secret: e.JWT_SECRET as string, issuer: e.JWT_ISSUER, audience: e.JWT_AUDIENCE } : { mode: "none" },
    allowedOrigins: e.ALLOWED_ORIGINS,
    maxFrameBytes: e.MAX_FRAME_BYTES,
    maxBodyBytes: e.MAX_BODY_BYTES,
    webRoot: webRootFrom(e.WEB_ROOT),
    heartbeatMs: e.HEARTBEAT,
    helloTimeoutMs: e.HELLO_TIMEOUT,
    retentionMs: e.RETENTION,
    replicas: e.REPLICAS,
    queueTimeoutMs: e.QUEUE_TIMEOUT,
    orphanTimeoutMs: deprecatedAlias(e.ORPHAN_TIMEOUT, e.WORKER_TIMEOUT, "WORKER_TIMEOUT", "ORPHAN_TIMEOUT", warnings) ?? 30_000,
    drainTimeoutMs: e.DRAIN_TIMEOUT ?? 10_000,
    limits: {
      maxSocketBuffer: e.MAX_SOCKET_BUFFER,
      maxPromptBytes: e.MAX_PROMPT_BYTES,
      maxTokensCeiling: e.MAX_TOKENS_CEILING,
      turnsPerThread: e.MAX_TURNS_PER_THREAD,
      maxTurnBytes: e.MAX_TURN_BYTES,
      generationsPerSocket: e.MAX_GENERATIONS_PER_SOCKET,
      generationsPerOwner: e.MAX_GENERATIONS_PER_OWNER,
      subscriptionsPerSocket: e.MAX_SUBSCRIPTIONS_PER_SOCKET,
      steerRate: e.STEER_RATE,
      steerBurst: e.STEER_BURST,
      steerRatePerOwner: e.STEER_RATE_PER_OWNER,
      steerBurstPerOwner: e.STEER_BURST_PER_OWNER,
      maxSteersPerResponse: e.MAX_STEERS_PER_RESPONSE,
      streamsPerOwner: e.MAX_STREAMS_PER_OWNER,
      streamsPerAddress: e.MAX_STREAMS_PER_ADDRESS,
      frameRate: e.FRAME_RATE,
      frameBurst: e.FRAME_BURST,
      connectionRate: e.CONNECTION_RATE,
      connectionBurst: e.CONNECTION_BURST,
    },
    trustProxy: e.TRUST_PROXY === "true" || e.TRUST_PROXY === "1",
    capabilityMaxTtlMs: e.CAPABILITY_MAX_TTL,
    warnings,
  };
}

/** `WEB_ROOT=none` serves no page; unset serves the built demo page when it is there. */
function webRootFrom(value: string | undefined): string | undefined {
  if (value === "none") return undefined;
  if (value !== undefined) return value;
  const built = fileURLToPath(new URL("../../../web/dist/", import.meta.url));
  return existsSync(built) ? built.replace(/\/$/, "") : undefined;
}
