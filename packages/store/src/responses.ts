import type { EndEvent } from "@unbroken/protocol";
import type { Broker } from "./broker.js";
import { FencedError } from "./errors.js";
import { EventLogWriter } from "./log-writer.js";

export const ZERO_USAGE = { prompt_tokens: 0, completion_tokens: 0 } as const;

/**
 * Ends a response that no worker has begun: its only event is `end` at seq 1. The write
 * expects an empty log, so it loses cleanly to a worker that wrote `start` first; the
 * record follows the log, never the other way round.
 * Returns false when a worker had begun it.
 */
export async function endQueued(broker: Broker, rid: string, end: Omit<EndEvent, "kind" | "usage">): Promise<boolean> {
  const writer = new EventLogWriter(broker, rid);
  try {
    await writer.append({ kind: "end", usage: { ...ZERO_USAGE }, ...end });
  } catch (err) {
    if (err instanceof FencedError) return false;
    throw err;
  }
  await broker.records.mutate(rid, (r) =>
    r.status === "ended" ? null : { ...r, status: "ended", reason: end.reason },
  );
  return true;
}
