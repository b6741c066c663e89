import type { NatsConnection } from "@nats-io/transport-node";
import { MODELS_SUBJECT, modelInfoSchema, type ModelInfo } from "@unbroken/protocol";
import type { Log } from "./log.js";
import { isNoResponders } from "./nats-errors.js";

/** One model as the running workers serve it: the earliest `since`, and how many serve it. */
export interface ServedModel {
  model: string;
  since: number;
  workers: number;
}

/**
 * Which models the running workers serve, asked of them directly: each worker answers on
 * MODELS_SUBJECT while it runs (core NATS request-reply, nothing stored), so a worker that
 * stopped or died is simply not in the list.
 */
export class ModelDirectory {
  constructor(
    private readonly nc: NatsConnection,
    private readonly log: Log,
  ) {}

  /** A worker answers with `info` until the returned function is called. */
  serve(info: ModelInfo): () => void {
    const body = JSON.stringify(info);
    const sub = this.nc.subscribe(MODELS_SUBJECT, {
      callback: (err, m) => {
        if (!err && m.reply) m.respond(body);
      },
    });
    return () => sub.unsubscribe();
  }

  /**
   * The models served now, one entry each, sorted by name. Collects answers until none has come
   * for `stallMs` after the last (at most `maxWaitMs`); none at all (no worker) is an empty list.
   */
  async list(maxWaitMs = 1_000, stallMs = 100): Promise<ServedModel[]> {
    const byModel = new Map<string, ServedModel>();
    try {
      const replies = await this.nc.requestMany(MODELS_SUBJECT, "", { strategy: "stall", stall: stallMs, maxWait: maxWaitMs });
      for await (const m of replies) {
        const parsed = modelInfoSchema.safeParse(safeJson(() => m.json()));
        if (!parsed.success) {
          this.log.warn({ subject: m.subject }, "malformed model answer ignored");
          continue;
        }
        const { model, since } = parsed.data;
        const seen = byModel.get(model);
        byModel.set(model, seen ? { model, since: Math.min(seen.since, since), workers: seen.workers + 1 } : { model, since, workers: 1 });
      }
    } catch (err) {
      if (!isNoResponders(err)) throw err;
    }
    return [...byModel.values()].sort((a, b) => a.model.localeCompare(b.model));
  }
}

function safeJson(read: () => unknown): unknown {
  try {
    return read();
  } catch {
    return undefined;
  }
}
