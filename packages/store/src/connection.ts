import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Log } from "./log.js";

export type { NatsConnection };

/**
 * Connects and keeps reconnecting for as long as the process lives: a broker restart is
 * an outage to ride out, not a reason to exit.
 */
export async function connectNats(url: string, name: string, log: Log): Promise<NatsConnection> {
  const nc = await connect({
    servers: url.split(",").map((s) => s.trim()),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    pingInterval: 10_000,
    maxPingOut: 2,
    // Every JetStream publish is a request; with async traces on, each one builds two
    // Error objects for stack traces (a third of the worker's CPU in our profiles).
    noAsyncTraces: true,
  });
  log.info({ server: nc.getServer() }, "connected to NATS");
  return nc;
}
