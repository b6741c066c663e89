// A test's own NATS connection, for what a test does behind the system's back: read a log as
// stored, purge it (expiry), delete a consumer (a cluster losing it), publish a raw request.
// Only the store and this kit speak NATS; tests use this instead of reaching into the store.

import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type ConsumerInfo,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";

const EVENTS_STREAM = "LLM_EVENTS";
const eventSubject = (rid: string): string => `llm.ev.${rid}`;

/** One stored event frame, as parsed JSON, with its msg id and stream sequence. */
export interface StoredFrame {
  seq: number;
  streamSeq: number;
  msgId: string;
  frame: { type: string; rid: string; seq: number; event: { kind: string; [k: string]: unknown } };
}

export class NatsTools {
  private constructor(
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
  ) {}

  static async connect(url: string): Promise<NatsTools> {
    const nc = await connect({ servers: url.split(","), name: "unbroken-test-tools", maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    return new NatsTools(nc, jetstream(nc, { timeout: 10_000 }), await jetstreamManager(nc));
  }

  /** Every stored event of rid, in order, read by a throwaway consumer. */
  async events(rid: string): Promise<StoredFrame[]> {
    const ci = await this.jsm.consumers.add(EVENTS_STREAM, {
      filter_subject: eventSubject(rid),
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.All,
      mem_storage: true,
      inactive_threshold: 30_000_000_000,
    });
    const out: StoredFrame[] = [];
    try {
      const consumer = this.js.consumers.getConsumerFromInfo(ci);
      for (let left = ci.num_pending; left > 0; ) {
        const batch = await consumer.fetch({ max_messages: Math.min(left, 256), expires: 5_000 });
        let got = 0;
        for await (const m of batch) {
          got++;
          const frame = m.json<StoredFrame["frame"]>();
          out.push({ seq: frame.seq, streamSeq: m.seq, msgId: m.headers?.get("Nats-Msg-Id") ?? "", frame });
        }
        if (got === 0) break;
        left -= got;
      }
    } finally {
      await this.jsm.consumers.delete(EVENTS_STREAM, ci.name).catch(() => undefined);
    }
    return out;
  }

  /** The last stored event of rid, or undefined. */
  async lastEvent(rid: string): Promise<StoredFrame["frame"] | undefined> {
    const msg = await this.jsm.streams.getMessage(EVENTS_STREAM, { last_by_subj: eventSubject(rid) });
    return msg ? msg.json<StoredFrame["frame"]>() : undefined;
  }

  /** Removes rid's events but the last `keep` (all without it), as RETENTION would from the head. */
  async purgeEvents(rid: string, keep?: number): Promise<void> {
    await this.jsm.streams.purge(EVENTS_STREAM, keep === undefined ? { filter: eventSubject(rid) } : { filter: eventSubject(rid), keep });
  }

  consumerInfo(stream: string, name: string): Promise<ConsumerInfo> {
    return this.jsm.consumers.info(stream, name);
  }

  async deleteConsumer(stream: string, name: string): Promise<void> {
    await this.jsm.consumers.delete(stream, name);
  }

  /** A JetStream publish (with a msg id when given). */
  async publish(subject: string, data: string, msgId?: string): Promise<void> {
    await this.js.publish(subject, data, msgId === undefined ? {} : { msgID: msgId });
  }

  /** A core NATS request; resolves with the reply's JSON. */
  async request(subject: string, data: string, timeoutMs = 10_000): Promise<unknown> {
    return (await this.nc.request(subject, data, { timeout: timeoutMs })).json();
  }

  async close(): Promise<void> {
    await this.nc.close();
  }
}
