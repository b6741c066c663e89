import { LOG_LEVELS, durationSchema, envDuration, envInt, envVar } from "@unbroken/protocol";
import * as z from "zod";

/**
 * The variables both edge and worker read (each component adds its own). They describe the
 * NATS layout and the response lifecycle, which both sides must agree on.
 */
export const sharedEnv = {
  NATS_URL: envVar(z.string().min(1).default("nats://127.0.0.1:4222"), "NATS server(s), comma-separated"),
  LOG_LEVEL: envVar(
    z.enum(LOG_LEVELS).default("info"),
    "`fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`; logs are JSON lines on stdout",
  ),
  RETENTION: envVar(
    envDuration("24h"),
    "how long a response stays replayable: events, requests and records expire at this age (applied to existing streams at start, and logged). Past it a response answers `gone` for another RETENTION, then `not_found`",
    { default: "24h" },
  ),
  REPLICAS: envVar(
    envInt(1, 1).refine((n) => n <= 5, "must be 1 to 5 (JetStream replicas)"),
    "replicas of the streams and buckets (1–5): `3` on a 3-node cluster; an existing layout is brought to it at start",
  ),
  QUEUE_TIMEOUT: envVar(envDuration("60s"), "a request no worker begins by then ends with `end` `error` `no_worker`", { default: "60s" }),
  DRAIN_TIMEOUT: envVar(
    durationSchema.optional(),
    "how long a component told to stop (SIGTERM) waits for its work: an edge for its sockets to leave after `goaway`, a worker for its responses to finish before it hands the rest over to another worker",
    { default: "edge 10s, worker 30s" },
  ),
  WORKER_TIMEOUT: envVar(durationSchema.optional(), "the worker reads it as TAKEOVER_TIMEOUT, the edge as ORPHAN_TIMEOUT", {
    replacedBy: "TAKEOVER_TIMEOUT (worker), ORPHAN_TIMEOUT (edge)",
  }),
};
