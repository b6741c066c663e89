import type { KV } from "@nats-io/kv";
import { responseRecordSchema, type ResponseRecord } from "@unbroken/protocol";
import { StoreError } from "./errors.js";
import type { Log } from "./log.js";
import type { JsPublisher } from "./js-publisher.js";
import { isWrongLastSequence } from "./nats-errors.js";

export interface StoredRecord {
  record: ResponseRecord;
  revision: number;
}

/**
 * Response records in the KV bucket. Every change is compare-and-set on the revision,
 * so an edge (cancel or steer while queued) and a worker (taking the response) never
 * both win. Reads go through the bucket; writes are the bucket's own publishes (to
 * `$KV.<bucket>.<rid>`, expecting the key's last revision, as `kv.create`/`kv.update` send
 * them) made by the process's JsPublisher, at a third of the CPU of `kv.create`.
 * Records are never deleted, so a create never meets a delete marker.
 */
export class ResponseRecords {
  constructor(
    private readonly kv: KV,
    private readonly publisher: JsPublisher,
    /** The bucket's subject for rid: `$KV.<bucket>.<rid>`. */
    private readonly subject: (rid: string) => string,
    private readonly log: Log,
  ) {}

  async get(rid: string): Promise<StoredRecord | null> {
    const found = await this.read(rid);
    return found === "unreadable" ? null : found;
  }

  /**
   * Like `get`, but tells a record that is there and cannot be parsed ("unreadable") from
   * none: a worker given such a request ends it rather than leaving its client waiting.
   */
  async read(rid: string): Promise<StoredRecord | "unreadable" | null> {
    const entry = await this.kv.get(rid);
    if (entry?.operation !== "PUT" || entry.length === 0) return null;
    let parsed: ReturnType<typeof responseRecordSchema.safeParse>;
    try {
      parsed = responseRecordSchema.safeParse(entry.json());
    } catch (err) {
      this.log.error({ rid, err: String(err) }, "unreadable response record (not JSON)");
      return "unreadable";
    }
    if (!parsed.success) {
      this.log.error({ rid, err: parsed.error.message }, "unreadable response record");
      return "unreadable";
    }
    return { record: parsed.data, revision: entry.revision };
  }

  /** Creates the record; null when rid is already taken (by anyone). */
  async create(record: ResponseRecord): Promise<number | null> {
    try {
      return await this.write(record.rid, JSON.stringify(record), 0);
    } catch (err) {
      if (isWrongLastSequence(err)) return null;
      throw err;
    }
  }

  /**
   * Applies `change` until it lands: `change` gets the current record and returns the next
   * one, or null to leave it as it is. Returns the record as it ended up, or null when the
   * rid has no record. `seen`, a record just read, saves the first read (a stale one only
   * costs a failed compare-and-set).
   */
  async mutate(rid: string, change: (r: ResponseRecord) => ResponseRecord | null, seen?: StoredRecord): Promise<StoredRecord | null> {
    for (let attempt = 0; attempt < 100; attempt++) {
      // Under contention, spread the retries so they stop colliding.
      if (attempt > 2) await new Promise((r) => setTimeout(r, Math.random() * Math.min(100, 5 * attempt)));
      const current = attempt === 0 && seen ? seen : await this.get(rid);
      if (!current) return null;
      const next = change(current.record);
      if (!next) return current;
      try {
        const revision = await this.write(rid, JSON.stringify(next), current.revision);
        return { record: next, revision };
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
      }
    }
    throw new StoreError("conflict", `record ${rid} kept changing under 100 attempts`);
  }

  /** Stores the record if the key's last revision is `expected` (0: no record yet); its new revision. */
  private async write(rid: string, json: string, expected: number): Promise<number> {
    const ack = await this.publisher.publish(this.subject(rid), json, { expectLastSubjectSeq: expected });
    return ack.seq;
  }
}
