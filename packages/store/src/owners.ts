import type { KV } from "@nats-io/kv";
import type { JsPublisher } from "./js-publisher.js";
import type { Log } from "./log.js";

/**
 * rid → owner, kept for 2 × RETENTION (the `llm_rid_owners` bucket): a rid found here but
 * without a record has expired (`gone`), one found nowhere never existed (`not_found`).
 */
export class RidOwners {
  constructor(
    private readonly kv: KV,
    private readonly publisher: JsPublisher,
    /** The bucket's subject for rid (`$KV.<bucket>.<rid>`): a put is a publish there, made as cheaply as records' writes. */
    private readonly subject: (rid: string) => string,
    private readonly log: Log,
  ) {}

  /**
   * Remembers that rid exists, and whose it is (a rid reused after it expired belongs to its new
   * owner). Best effort: a failure only turns a later `gone` into `not_found`.
   */
  async remember(rid: string, owner: string): Promise<void> {
    try {
      await this.publisher.publish(this.subject(rid), owner);
    } catch (err) {
      this.log.warn({ rid, err: String(err) }, "could not remember the rid's owner");
    }
  }

  /** The owner rid had, if it was created within 2 × RETENTION; undefined otherwise. */
  async former(rid: string): Promise<string | undefined> {
    const entry = await this.kv.get(rid);
    if (entry?.operation !== "PUT" || entry.length === 0) return undefined;
    return entry.string();
  }
}
