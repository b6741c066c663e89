import { isOutputKind, type EndEvent, type ResponseEvent } from "@unbroken/protocol";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

// Seconds. Time to first token spans a scripted run (about a millisecond) to a model loading;
// a token's gap and a JetStream publish are usually well under 50 ms, so their buckets start
// at half a millisecond.
const TTFT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const FAST_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
const CANCEL_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const DURATION_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];

/**
 * The worker's Prometheus metrics, in a registry of its own (never prom-client's global one,
 * so several workers in one process, as in the tests, each count their own). Every metric is
 * listed in docs/operations.md, "Metrics". Per-response timing lives in a `RunMetrics`
 * per run (`run()`), which the runner calls at a few points and its log writer at each ack.
 */
export class WorkerMetrics {
  readonly registry = new Registry();
  readonly active: Gauge;
  readonly generations: Counter;
  readonly ttft: Histogram;
  readonly tokenGap: Histogram;
  readonly duration: Histogram;
  readonly ended: Counter<"reason">;
  readonly errors: Counter<"code">;
  readonly cancels: Counter;
  readonly cancelLatency: Histogram;
  readonly steers: Counter;
  readonly takeovers: Counter<"reason">;
  readonly handovers: Counter;
  readonly publish: Histogram;
  readonly written: Counter<"kind">;

  /** `running`: how many responses the worker runs now, read at each scrape. */
  constructor(running: () => number) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.active = new Gauge({
      name: "unbroken_worker_generations_active",
      help: "Responses this worker runs now",
      registers,
      collect() {
        this.set(running());
      },
    });
    this.generations = new Counter({
      name: "unbroken_worker_generations_total",
      help: "Generations begun, fresh or continued after a takeover",
      registers,
    });
    this.ttft = new Histogram({
      name: "unbroken_worker_ttft_seconds",
      help: "Time from a generation beginning to its first output event stored (text, reasoning or a tool call)",
      buckets: TTFT_BUCKETS,
      registers,
    });
    this.tokenGap = new Histogram({
      name: "unbroken_worker_time_per_output_token_seconds",
      help: "Time between consecutive token events of a generation stored (one event is one generator output, not divided by tokens)",
      buckets: FAST_BUCKETS,
      registers,
    });
    this.duration = new Histogram({
      name: "unbroken_worker_stream_duration_seconds",
      help: "Time from a generation beginning to its end event stored",
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.ended = new Counter({
      name: "unbroken_worker_responses_ended_total",
      help: "End events written by this worker, by reason (stop, length, cancelled, error)",
      labelNames: ["reason"],
      registers,
    });
    this.errors = new Counter({
      name: "unbroken_worker_errors_total",
      help: "Responses this worker ended with reason error, by error code",
      labelNames: ["code"],
      registers,
    });
    this.cancels = new Counter({
      name: "unbroken_worker_cancels_total",
      help: "Responses asked to cancel while this worker ran them (a repeated request counts once)",
      registers,
    });
    this.cancelLatency = new Histogram({
      name: "unbroken_worker_cancel_to_end_seconds",
      help: "Time from the first cancel request of a response to its end event stored",
      buckets: CANCEL_BUCKETS,
      registers,
    });
    this.steers = new Counter({ name: "unbroken_worker_steers_total", help: "Steer events written (steers applied)", registers });
    this.takeovers = new Counter({
      name: "unbroken_worker_takeovers_total",
      help: "Responses this worker took over from another one, by why (lost: it went silent; drain: it handed them over)",
      labelNames: ["reason"],
      registers,
    });
    this.handovers = new Counter({
      name: "unbroken_worker_handovers_total",
      help: "Responses this worker handed over to another one when shutting down",
      registers,
    });
    this.publish = new Histogram({
      name: "unbroken_worker_nats_publish_seconds",
      help: "Time from publishing an event to JetStream to its ack, per event stored",
      buckets: FAST_BUCKETS,
      registers,
    });
    this.written = new Counter({
      name: "unbroken_worker_events_written_total",
      help: "Events stored by this worker, by kind",
      labelNames: ["kind"],
      registers,
    });
  }

  /** The metrics of one run (one response on this worker). */
  run(): RunMetrics {
    return new RunMetrics(this);
  }
}

/** One run's timestamps (performance.now()), and what it reports to the worker's metrics. */
export class RunMetrics {
  private beganAt: number | undefined;
  private lastTokenAt: number | undefined;
  private firstStored = false;
  private cancelledAt: number | undefined;

  constructor(private readonly m: WorkerMetrics) {}

  /** The generator is asked to start (a fresh answer, or a continued one after a takeover). */
  began(): void {
    this.beganAt = performance.now();
    this.lastTokenAt = undefined;
    this.firstStored = false;
    this.m.generations.inc();
  }

  cancelRequested(): void {
    if (this.cancelledAt !== undefined) return;
    this.cancelledAt = performance.now();
    this.m.cancels.inc();
  }

  tookOver(reason: "lost" | "drain"): void {
    this.m.takeovers.inc({ reason });
  }

  handedOver(): void {
    this.m.handovers.inc();
  }

  /**
   * The generator produced a token. Timed here, not at the log: under load several tokens
   * share one event (coalescing), and the gap between events is not a token's time.
   */
  generated(): void {
    const now = performance.now();
    if (this.lastTokenAt !== undefined) this.m.tokenGap.observe((now - this.lastTokenAt) / 1000);
    this.lastTokenAt = now;
  }

  /**
   * An event is stored; its publish took `ms`. The log writer's `onPublished`, so an arrow
   * function (passed unbound), and it never throws: a metric must not fail a write.
   */
  readonly published = (ms: number, event: ResponseEvent): void => {
    try {
      const now = performance.now();
      this.m.publish.observe(ms / 1000);
      this.m.written.inc({ kind: event.kind });
      if (isOutputKind(event.kind)) {
        if (!this.firstStored && this.beganAt !== undefined) this.m.ttft.observe((now - this.beganAt) / 1000);
        this.firstStored = true;
      } else if (event.kind === "steer") {
        this.m.steers.inc();
      } else if (event.kind === "end") {
        this.ended(event as EndEvent, now);
      }
    } catch {
      // Metrics are best effort.
    }
  };

  private ended(end: EndEvent, now: number): void {
    this.m.ended.inc({ reason: end.reason });
    if (end.reason === "error") this.m.errors.inc({ code: end.error?.code ?? "unknown" });
    if (this.beganAt !== undefined) this.m.duration.observe((now - this.beganAt) / 1000);
    if (this.cancelledAt !== undefined) this.m.cancelLatency.observe((now - this.cancelledAt) / 1000);
  }
}

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The worker has no HTTP server of its own: this one answers `GET /metrics` and 404 to
 * anything else. It fails to start (naming METRICS_PORT) rather than run unobserved.
 */
export async function serveMetrics(registry: Registry, port: number, host: string, log?: Logger): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    if ((req.url ?? "").split("?")[0] !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found; metrics are at GET /metrics\n");
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { "content-type": registry.contentType, "content-length": String(Buffer.byteLength(body)) }).end(body),
      (err: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(`metrics failed: ${String(err)}\n`),
    );
  });
  try {
    await listen(server, port, host);
  } catch (err) {
    // A taken port (a second worker on this host) never stops a worker: metrics go to any free port.
    if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE" || port === 0) {
      throw new Error(
        `METRICS_PORT: cannot listen on ${host}:${port}: ${(err as Error).message} (METRICS_PORT=0 takes any free port, off none)`,
      );
    }
    await listen(server, 0, host);
    log?.warn(
      { wanted: port, metricsPort: (server.address() as AddressInfo).port },
      "METRICS_PORT is taken (another worker on this host?); serving metrics on a free port instead",
    );
  }
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // A scraper's keep-alive connection would hold close() open.
        server.closeAllConnections();
      }),
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
}
