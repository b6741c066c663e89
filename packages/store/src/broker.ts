import { jetstream, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { RESPONSES_BUCKET, RID_OWNERS_BUCKET, type WorkRequest } from "@unbroken/protocol";
import { connectNats } from "./connection.js";
import { ControlChannel } from "./control.js";
import { EventLogs } from "./event-log.js";
import { ACK_TIMEOUT_MS, JsPublisher } from "./js-publisher.js";
import { READY_TIMEOUT_MS, ensureLayoutWhenReady, kvSubject, whenReady, type Layout, type LayoutOptions } from "./layout.js";
import { ResponseLifecycle } from "./lifecycle.js";
import { ModelDirectory } from "./models.js";
import { LiveTails } from "./live-tails.js";
import type { Log } from "./log.js";
import { RidOwners } from "./owners.js";
import { ResponseRecords } from "./records.js";
import { ThreadLogs } from "./threads.js";
import { WorkQueue, enqueue } from "./work-queue.js";

export interface BrokerOptions extends LayoutOptions {
  url: string;
  /** Connection name, seen in the server's monitoring. */
  name: string;
  log: Log;
}

/** The NATS handles behind a broker: the store's own, never handed to edge or worker. */
export interface NatsHandles {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  publisher: JsPublisher;
  tails: LiveTails;
}

const handles = new WeakMap<Broker, NatsHandles>();

/** A broker's NATS handles, for the store's own modules and tests (not exported by the package). */
export function handlesOf(broker: Broker): NatsHandles {
  const h = handles.get(broker);
  if (!h) throw new Error("not a connected broker");
  return h;
}

/**
 * One process's connection to NATS and the JetStream layout on it, offered as operations:
 * records, the work queue, event logs, control, rid owners and the response lifecycle. Its
 * owner (an edge or a worker) closes it.
 */
export class Broker {
  /** Response records (KV): create, read, compare-and-set. */
  readonly records: ResponseRecords;
  /** Every response's event log: fenced writers, stored reads, followers. */
  readonly logs: EventLogs;
  /** Cancel, steer, status and fence on a response's control subject. */
  readonly control: ControlChannel;
  /** rid → owner for 2 × RETENTION (`gone` versus `not_found`). */
  readonly owners: RidOwners;
  /** Every way a response ends. */
  readonly lifecycle: ResponseLifecycle;
  /** The models the running workers serve (`GET /v1/models`). */
  readonly models: ModelDirectory;
  /** Every thread's turns: appends in order, reads, followers. */
  readonly threads: ThreadLogs;
  private readonly publisher: JsPublisher;
  private readonly tails: LiveTails;
  private readonly js: JetStreamClient;
  private isConnected = true;
  private readonly reconnectListeners = new Set<() => void>();

  private constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    layout: Pick<Layout, "records" | "owners">,
    private readonly log: Log,
    private readonly readyTimeoutMs: number,
  ) {
    this.js = jetstream(nc, { timeout: ACK_TIMEOUT_MS });
    this.publisher = new JsPublisher(nc);
    this.records = new ResponseRecords(layout.records, this.publisher, (rid) => kvSubject(RESPONSES_BUCKET, rid), log);
    this.owners = new RidOwners(layout.owners, this.publisher, (rid) => kvSubject(RID_OWNERS_BUCKET, rid), log);
    this.tails = new LiveTails(nc);
    handles.set(this, { nc, js: this.js, jsm, publisher: this.publisher, tails: this.tails });
    this.logs = new EventLogs({ js: this.js, jsm, publisher: this.publisher, tails: this.tails, onReconnect: (l) => this.onReconnect(l) });
    this.control = new ControlChannel(nc, log, () => this.connected);
    this.lifecycle = new ResponseLifecycle(this.records, this.logs, this.control, log);
    this.models = new ModelDirectory(nc, log);
    this.threads = new ThreadLogs(this.js, jsm, log);
    void this.watch();
  }

  static async connect(opts: BrokerOptions): Promise<Broker> {
    const nc = await connectNats(opts.url, opts.name, opts.log);
    try {
      const layout = await ensureLayoutWhenReady(nc, opts, opts.log);
      return new Broker(nc, layout.jsm, layout, opts.log, opts.readyTimeoutMs ?? READY_TIMEOUT_MS);
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err;
    }
  }

  get connected(): boolean {
    return this.isConnected && !this.nc.isClosed();
  }

  /** Queues a generation request for the workers (a repeated one for the same rid is a no-op). */
  enqueue(request: WorkRequest): Promise<void> {
    return enqueue(this.publisher, request);
  }

  /**
   * Queues the request of a response this process just created (its log is still empty).
   * Its live tail is opened first, so a reader of it here starts without asking the stream
   * for the log's last event: one round trip less on the way to the first token, and one
   * request less per generate under a burst.
   */
  enqueueNew(request: WorkRequest): Promise<void> {
    this.tails.open(request.rid);
    return enqueue(this.publisher, request);
  }

  /**
   * The workers' side of the queue; `ackWaitMs` (TAKEOVER_TIMEOUT) is how long a silent worker
   * keeps a request. Opening it creates the shared consumer, which on a cluster just started
   * waits for a consumer leader: like the layout, it is tried again while JetStream is not
   * ready (two workers that race to create it both end up with the one consumer).
   */
  async workQueue(ackWaitMs: number): Promise<WorkQueue> {
    const queue = new WorkQueue(this.nc, this.js, this.jsm, ackWaitMs, this.log);
    await whenReady(this.nc, () => queue.open(), this.readyTimeoutMs, this.log);
    return queue;
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
        this.tails.interrupted();
        this.log.warn({ server: s.server }, "NATS disconnected");
      } else if (s.type === "error") {
        this.log.warn({ err: String(s.error) }, "NATS error");
      } else if (s.type === "reconnect") {
        this.isConnected = true;
        this.tails.interrupted();
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
    this.publisher.close();
    this.tails.close();
    await this.nc.drain().catch(() => this.nc.close());
  }
}
