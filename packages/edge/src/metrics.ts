import type { ErrorCode } from "@unbroken/protocol";
import type { ServerResponse } from "node:http";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** How a stream of events leaves this edge: a socket, an SSE stream, a chat completion, OpenAI's Responses API. */
export type Transport = "ws" | "sse" | "chat" | "responses";

/**
 * Why a socket ended without a clean close (docs/operations.md, "Metrics"): this edge cut it as a slow
 * consumer (4008) or after two unanswered pings (1011); `ws` closed it for a protocol
 * violation (1002, 1007, 1009); it ended with no close frame at all (1006: network loss, a
 * killed client, a balancer cutting it); or the client closed it with some other code.
 */
export type DropReason = "slow_consumer" | "heartbeat" | "protocol" | "network" | "other";

/** Close codes a client uses to leave on purpose: normal, going away, a close frame without a code. */
const CLEAN_CLOSES = new Set([1000, 1001, 1005]);
const PROTOCOL_CLOSES = new Set([1002, 1003, 1007, 1009]);

/** The drop reason of a socket closed with `code` that this edge did not close on purpose; undefined when clean. */
export function dropReasonOf(code: number): DropReason | undefined {
  if (CLEAN_CLOSES.has(code)) return undefined;
  if (code === 1006) return "network";
  return PROTOCOL_CLOSES.has(code) ? "protocol" : "other";
}

// Seconds. Time to first token spans a warm scripted run (about a millisecond) to a model
// loading or a long queue; per-event latencies are far below it.
const TTFT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const CANCEL_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const DURATION_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];

/**
 * The edge's Prometheus metrics, in a registry of its own (never prom-client's global one,
 * so several edges in one process, as in the tests, each count their own). Every metric is
 * listed in docs/operations.md, "Metrics"; the code calls the small methods below.
 */
export class EdgeMetrics {
  readonly registry = new Registry();
  private readonly sockets: Gauge;
  private readonly streams: Gauge<"transport">;
  private readonly drops: Counter<"reason">;
  private readonly resumes: Counter<"transport">;
  private readonly eventsSent: Counter;
  private readonly eventsReplayed: Counter;
  private readonly framesReceived: Counter;
  private readonly framesSent: Counter;
  private readonly generates: Counter<"existing">;
  private readonly cancels: Counter;
  private readonly cancelLatency: Histogram;
  private readonly steers: Counter;
  private readonly slowConsumers: Counter<"transport">;
  private readonly errors: Counter<"code" | "transport">;
  private readonly ttft: Histogram;
  private readonly streamDuration: Histogram<"transport">;
  /**
   * Cancels received here whose `end` no stream here has passed yet: rid → when
   * (performance.now()). An entry lives while a stream of its rid is open here, so the map
   * holds at most one entry per open stream.
   */
  private readonly pendingCancels = new Map<string, number>();
  /** Streams open here per rid: a cancel's `end` can only be seen while one is. */
  private readonly openByRid = new Map<string, number>();

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.sockets = new Gauge({ name: "unbroken_edge_sockets", help: "Open WebSocket connections", registers });
    this.streams = new Gauge({
      name: "unbroken_edge_streams",
      help: "Subscriptions being served (socket subscriptions, SSE streams, chat completions)",
      labelNames: ["transport"],
      registers,
    });
    this.drops = new Counter({
      name: "unbroken_edge_connection_drops_total",
      help: "Sockets that ended without a clean close, by reason",
      labelNames: ["reason"],
      registers,
    });
    this.resumes = new Counter({
      name: "unbroken_edge_resumes_total",
      help: "Subscriptions started after seq 0 (subscribe/generate with after > 0, SSE with Last-Event-ID or ?after)",
      labelNames: ["transport"],
      registers,
    });
    this.eventsSent = new Counter({ name: "unbroken_edge_events_sent_total", help: "Events handed to readers", registers });
    this.eventsReplayed = new Counter({
      name: "unbroken_edge_events_replayed_total",
      help: "Events handed to readers from the stored log (catch-up) rather than the live tail",
      registers,
    });
    this.framesReceived = new Counter({ name: "unbroken_edge_frames_received_total", help: "WebSocket messages received", registers });
    this.framesSent = new Counter({ name: "unbroken_edge_frames_sent_total", help: "WebSocket frames sent", registers });
    this.generates = new Counter({
      name: "unbroken_edge_generates_total",
      help: "Generate commands accepted (socket, REST, chat completions); existing=true for a rid that was already there",
      labelNames: ["existing"],
      registers,
    });
    this.cancels = new Counter({ name: "unbroken_edge_cancels_total", help: "Cancel commands received (socket and REST)", registers });
    this.cancelLatency = new Histogram({
      name: "unbroken_edge_cancel_to_end_seconds",
      help: "Time from a cancel command received here to the response's end passing through a stream here",
      buckets: CANCEL_BUCKETS,
      registers,
    });
    this.steers = new Counter({ name: "unbroken_edge_steers_total", help: "Steer commands received (socket and REST)", registers });
    this.slowConsumers = new Counter({
      name: "unbroken_edge_slow_consumer_disconnects_total",
      help: "Sockets and HTTP streams cut because MAX_SOCKET_BUFFER bytes waited for them",
      labelNames: ["transport"],
      registers,
    });
    this.errors = new Counter({
      name: "unbroken_edge_errors_total",
      help: "Error frames (ws) and HTTP error responses (http) sent, by error code",
      labelNames: ["code", "transport"],
      registers,
    });
    this.ttft = new Histogram({
      name: "unbroken_edge_ttft_seconds",
      help: "Time from accepting a new response (socket generate, chat completion) to its first output event (text, reasoning or a tool call) sent to that reader",
      buckets: TTFT_BUCKETS,
      registers,
    });
    this.streamDuration = new Histogram({
      name: "unbroken_edge_stream_duration_seconds",
      help: "Time from a subscription's start to its end event sent (subscriptions closed before the end are not counted)",
      labelNames: ["transport"],
      buckets: DURATION_BUCKETS,
      registers,
    });
  }

  socketOpened(): void {
    this.sockets.inc();
  }

  /** A socket closed; `drop` says why when it was not a clean close. */
  socketClosed(drop: DropReason | undefined): void {
    this.sockets.dec();
    if (drop) this.drops.inc({ reason: drop });
  }

  frameReceived(): void {
    this.framesReceived.inc();
  }

  frameSent(): void {
    this.framesSent.inc();
  }

  streamOpened(rid: string, transport: Transport, after: number): void {
    this.streams.inc({ transport });
    if (after > 0) this.resumes.inc({ transport });
    this.openByRid.set(rid, (this.openByRid.get(rid) ?? 0) + 1);
  }

  streamClosed(rid: string, transport: Transport): void {
    this.streams.dec({ transport });
    const open = (this.openByRid.get(rid) ?? 1) - 1;
    if (open > 0) return void this.openByRid.set(rid, open);
    this.openByRid.delete(rid);
    // No stream here can see this rid's end any more.
    this.pendingCancels.delete(rid);
  }

  eventSent(replayed: boolean): void {
    this.eventsSent.inc();
    if (replayed) this.eventsReplayed.inc();
  }

  /** The first token of a response accepted `sinceMs` (performance.now()) ago reached its reader. */
  firstToken(sinceMs: number): void {
    this.ttft.observe((performance.now() - sinceMs) / 1000);
  }

  /** A stream opened at `sinceMs` sent its rid's `end`. */
  endSent(rid: string, transport: Transport, sinceMs: number): void {
    const now = performance.now();
    this.streamDuration.observe({ transport }, (now - sinceMs) / 1000);
    const cancelledAt = this.pendingCancels.get(rid);
    if (cancelledAt === undefined) return;
    this.pendingCancels.delete(rid);
    this.cancelLatency.observe((now - cancelledAt) / 1000);
  }

  generated(existing: boolean): void {
    this.generates.inc({ existing: String(existing) });
  }

  cancelReceived(rid: string): void {
    this.cancels.inc();
    // A repeated cancel keeps the first one's time: the latency is the client's wait.
    if (!this.pendingCancels.has(rid)) this.pendingCancels.set(rid, performance.now());
  }

  /** The cancel command was answered: with no stream of rid open here, its end will not be seen here. */
  cancelSettled(rid: string): void {
    if (!this.openByRid.has(rid)) this.pendingCancels.delete(rid);
  }

  steerReceived(): void {
    this.steers.inc();
  }

  slowConsumer(transport: Transport): void {
    this.slowConsumers.inc({ transport });
  }

  error(code: ErrorCode, transport: "ws" | "http"): void {
    this.errors.inc({ code, transport });
  }

  /** `GET /metrics`: the registry in Prometheus' text format. */
  async serve(res: ServerResponse): Promise<void> {
    const body = await this.registry.metrics();
    res.writeHead(200, { "content-type": this.registry.contentType, "content-length": String(Buffer.byteLength(body)) });
    res.end(body);
  }
}
