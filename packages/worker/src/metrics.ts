import { Counter, Gauge, Histogram, type Registry } from "prom-client";

const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** The worker's metrics; every name is documented in the README's Metrics section. */
export function workerMetrics(registry: Registry) {
  const registers = [registry];
  return {
    active: new Gauge({ name: "unbroken_worker_generations_active", help: "Responses being generated now", registers }),
    started: new Counter({ name: "unbroken_worker_generations_total", help: "Responses begun by this worker", registers }),
    ended: new Counter({
      name: "unbroken_worker_generations_ended_total",
      help: "Responses ended, by end reason and error code",
      labelNames: ["reason", "code"] as const,
      registers,
    }),
    ttft: new Histogram({
      name: "unbroken_worker_ttft_seconds",
      help: "Time from the request being queued to its first token written",
      buckets: SECONDS,
      registers,
    }),
    tpot: new Histogram({
      name: "unbroken_worker_time_per_output_token_seconds",
      help: "Mean time between tokens of a response (first to last token / tokens - 1)",
      buckets: SECONDS,
      registers,
    }),
    duration: new Histogram({
      name: "unbroken_worker_stream_duration_seconds",
      help: "Time from start to end of a response",
      buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
      registers,
    }),
    tokens: new Counter({ name: "unbroken_worker_tokens_total", help: "Tokens generated", registers }),
    publish: new Histogram({
      name: "unbroken_worker_nats_publish_seconds",
      help: "Latency of one fenced JetStream write (publish to ack)",
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1],
      registers,
    }),
    steers: new Counter({ name: "unbroken_worker_steers_total", help: "Steers applied", registers }),
    cancels: new Counter({ name: "unbroken_worker_cancels_total", help: "Cancels received while generating", registers }),
  };
}

export type WorkerMetrics = ReturnType<typeof workerMetrics>;
