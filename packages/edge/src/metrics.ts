import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** The edge's metrics; every name is documented in the README's Metrics section. */
export function edgeMetrics(registry: Registry) {
  const registers = [registry];
  return {
    sockets: new Gauge({ name: "unbroken_edge_sockets", help: "Open WebSocket connections", registers }),
    streams: new Gauge({ name: "unbroken_edge_streams", help: "Subscriptions being served (sockets and SSE)", registers }),
    drops: new Counter({
      name: "unbroken_edge_connection_drops_total",
      help: "Sockets that ended without a clean close (network loss, heartbeat timeout, slow consumer)",
      labelNames: ["code"] as const,
      registers,
    }),
    resumes: new Counter({ name: "unbroken_edge_resumes_total", help: "Subscriptions that started after seq 0", registers }),
    replayed: new Counter({ name: "unbroken_edge_events_replayed_total", help: "Events sent from the stored log (catch-up)", registers }),
    live: new Counter({ name: "unbroken_edge_events_live_total", help: "Events sent from the live tail", registers }),
    generates: new Counter({ name: "unbroken_edge_generates_total", help: "generate commands accepted", labelNames: ["existing"] as const, registers }),
    cancels: new Counter({ name: "unbroken_edge_cancels_total", help: "cancel commands settled", registers }),
    cancelLatency: new Histogram({
      name: "unbroken_edge_cancel_seconds",
      help: "Time from a cancel command to its settlement (the worker stopped and end is written)",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers,
    }),
    steers: new Counter({ name: "unbroken_edge_steers_total", help: "steer commands recorded", registers }),
    errors: new Counter({ name: "unbroken_edge_errors_total", help: "error replies, by code", labelNames: ["code"] as const, registers }),
  };
}

export type EdgeMetrics = ReturnType<typeof edgeMetrics>;
