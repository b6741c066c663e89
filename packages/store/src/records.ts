import type { KV } from "@nats-io/kv";
import { responseRecordSchema, type ResponseRecord } from "@unbroken/protocol";
import { StoreError } from "./errors.js";
import type { Log } from "./log.js";
import { isWrongLastSequence } from "./nats-errors.js";

export interface StoredRecord {
  record: ResponseRecord;
  revision: number;
}

const encoder = new TextEncoder();

/**
 * Response records in the KV bucket. Every change is compare-and-set on the revision,
 * so an edge (cancel or steer while queued) and a worker (taking the response) never
 * both win.
 */
export class ResponseRecords {
  constructor(
    private readonly kv: KV,
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
      return await this.kv.create(record.rid, encoder.encode(JSON.stringify(record)));
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
        const revision = await this.kv.update(rid, encoder.encode(JSON.stringify(next)), current.revision);
        return { record: next, revision };
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
      }
    }
    throw new StoreError("conflict", `record ${rid} kept changing under 100 attempts`);
  }
}
