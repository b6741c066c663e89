import type { IncomingMessage } from "node:http";
import type { Logger } from "pino";
import type { Principal } from "./auth.js";
import type { EdgeLimits } from "./config.js";
import type { TokenBuckets } from "./limits.js";
import type { EdgeMetrics, Transport } from "./metrics.js";
import type { OriginPolicy } from "./origin.js";
import type { ResponseService } from "./responses.js";
import type { SubscriptionDeps } from "./subscription.js";

// Its own module, so the route handlers (rest, sse, chat-completions) depend on it and the
// router (http.ts) depends on them: no import cycle.
/** What the HTTP handlers share; built once by the server. */
export interface HttpContext {
  ready(): boolean;
  responses: ResponseService;
  subscriptions: SubscriptionDeps;
  /** Who a request acts as: from `Authorization: Bearer` when auth is on. */
  principal(req: IncomingMessage): Promise<Principal>;
  heartbeatMs: number;
  limits: EdgeLimits;
  /** New connections and /v1 requests per client address; undefined = unlimited. */
  connections: TokenBuckets | undefined;
  address(req: IncomingMessage): string;
  /** Which browser origins may use the API (the edge's own, ALLOWED_ORIGINS). */
  origins: OriginPolicy;
  /** Counts streams cut as slow consumers. */
  onSlowConsumer?(transport: Transport): void;
  metrics: EdgeMetrics;
  maxBodyBytes: number;
  /** Directory of the demo page, served at `/`; none when undefined. */
  webRoot: string | undefined;
  log: Logger;
}
