import { jetstream, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats } from "./connection.js";
import { EventPublisher } from "./event-publisher.js";
import { LiveTails } from "./live-tails.js";
import { ensureLayoutWhenReady, type LayoutOptions } from "./layout.js";
import type { Log } from "./log.js";
import { ResponseRecords } from "./records.js";

export interface BrokerOptions extends LayoutOptions {
  url: string;
  /** Connection name, seen in the server's monitoring. */
  name: string;
  log: Log;
}

/**
 * One process's connection to NATS and the JetStream layout on it. Its owner (an edge or a
 * worker) closes it; everything that reads or writes responses goes through it.
 */
export class Broker {
  readonly js: JetStreamClient;
  readonly records: ResponseRecords;
  /** Every append to a response's log goes through this one publisher. */
  readonly events: EventPublisher;
  /** The live tails of the responses this process reads (one subscription per response). */
  readonly tails: LiveTails;
  private isConnected = true;
  private readonly reconnectListeners = new Set<() => void>();

  private constructor(
    readonly nc: NatsConnection,
    readonly jsm: JetStreamManager,
    readonly kv: KV,
    private readonly log: Log,
  ) {
    this.js = jetstream(nc, { timeout: 5_000 });
    this.records = new ResponseRecords(kv, log);
    this.events = new EventPublisher(nc);
    this.tails = new LiveTails(nc);
    void this.watch();
  }

  static async connect(opts: BrokerOptions): Promise<Broker> {
    const nc = await connectNats(opts.url, opts.name, opts.log);
    try {
      const { jsm, kv } = await ensureLayoutWhenReady(nc, opts, opts.log);
      return new Broker(nc, jsm, kv, opts.log);
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err;
    }
  }

  get connected(): boolean {
    return this.isConnected && !this.nc.isClosed();
  }

  /** Registers a listener for reconnects (live subscriptions may have missed messages). */
  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  private async watch(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (s.type === "disconnect") {
        this.isConnected = false;
        this.log.warn({ server: s.server }, "NATS disconnected");
      } else if (s.type === "error") {
        this.log.warn({ err: String(s.error) }, "NATS error");
      } else if (s.type === "reconnect") {
        this.isConnected = true;
        this.log.info({ server: s.server }, "NATS reconnected");
        for (const l of [...this.reconnectListeners]) {
          try {
            l();
          } catch (err) {
            this.log.error({ err: String(err) }, "reconnect listener failed");
          }
        }
      }
    }
  }

  async close(): Promise<void> {
    if (this.nc.isClosed()) return;
    this.events.close();
    this.tails.close();
    await this.nc.drain().catch(() => this.nc.close());
  }
}
