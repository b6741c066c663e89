import { StorageType } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { EVENTS_STREAM, ProtocolError, RID_OWNERS_BUCKET, formatDuration, type ResponseRecord } from "@unbroken/protocol";
import { firstEvent, type Broker } from "@unbroken/store";
import type { Logger } from "pino";

const NS = 1_000_000;
const encoder = new TextEncoder();

export const goneError = (rid: string) =>
  new ProtocolError("gone", "this response has expired (past RETENTION): its events are no longer kept", { rid });

/**
 * Tells an expired response (`gone`) from one that never existed (`not_found`). A response's
 * record and events live for RETENTION; the edge also writes rid → owner into a bucket of its
 * own that keeps entries for 2 × RETENTION. A rid found there but without a record is gone.
 */
export class Retention {
  private constructor(
    private readonly broker: Broker,
    private readonly owners: KV,
    private readonly log: Logger,
  ) {}

  static async open(broker: Broker, retentionMs: number, log: Logger): Promise<Retention> {
    const maxAge = 2 * retentionMs;
    // Same replicas as the events stream, whatever the layout chose.
    const replicas = (await broker.jsm.streams.info(EVENTS_STREAM)).config.num_replicas || 1;
    const kv = await new Kvm(broker.nc).create(RID_OWNERS_BUCKET, { history: 1, ttl: maxAge, storage: StorageType.File, replicas });
    const name = `KV_${RID_OWNERS_BUCKET}`;
    const { config } = await broker.jsm.streams.info(name);
    if (config.max_age !== maxAge * NS || (config.num_replicas || 1) !== replicas) {
      try {
        const duplicate_window = Math.min(config.duplicate_window, maxAge * NS);
        await broker.jsm.streams.update(name, { ...config, max_age: maxAge * NS, duplicate_window, num_replicas: replicas });
        log.info({ stream: name, retention: formatDuration(maxAge), replicas }, "updated rid owners bucket");
      } catch (err) {
        // Only `gone` versus `not_found` depends on this bucket: carry on with it as it is.
        log.warn({ stream: name, err: String(err) }, "could not update the rid owners bucket");
      }
    }
    return new Retention(broker, kv, log);
  }

  /**
   * Remembers that rid exists, and whose it is (a rid reused after it expired belongs to its new
   * owner). Best effort: a failure only turns a later `gone` into `not_found`.
   */
  async remember(rid: string, owner: string): Promise<void> {
    try {
      await this.owners.put(rid, encoder.encode(owner));
    } catch (err) {
      this.log.warn({ rid, err: String(err) }, "could not remember the rid's owner");
    }
  }

  /** The owner rid had, if it was created within 2 × RETENTION; undefined otherwise. */
  async formerOwner(rid: string): Promise<string | undefined> {
    const entry = await this.owners.get(rid);
    if (!entry || entry.operation !== "PUT" || entry.length === 0) return undefined;
    return entry.string();
  }

  /**
   * Throws `gone` when a reader after `after` can no longer get every event it asks for: the
   * response has ended (so its `end` was written) but no event is left, or the log's first
   * stored event comes after seq `after + 1`.
   */
  async assertReadable(record: ResponseRecord, after: number): Promise<void> {
    if (record.status === "queued") return;
    const first = await firstEvent(this.broker.jsm, record.rid);
    if (first === null ? record.status === "ended" : first.seq > after + 1) throw goneError(record.rid);
  }
}
