import type { KV } from "@nats-io/kv";
import type { Log } from "./log.js";

const encoder = new TextEncoder();

/**
 * rid → owner, kept for 2 × RETENTION (the `llm_rid_owners` bucket): a rid found here but
 * without a record has expired (`gone`), one found nowhere never existed (`not_found`).
 */
export class RidOwners {
  constructor(
    private readonly kv: KV,
    private readonly log: Log,
  ) {}

  /**
   * Remembers that rid exists, and whose it is (a rid reused after it expired belongs to its new
   * owner). Best effort: a failure only turns a later `gone` into `not_found`.
   */
  async remember(rid: string, owner: string): Promise<void> {
    try {
      await this.kv.put(rid, encoder.encode(owner));
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
