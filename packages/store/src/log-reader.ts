import { AckPolicy, DeliverPolicy, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { EVENTS_STREAM, eventSubject, looseEventFrameSchema, type LooseEventFrame } from "@unbroken/protocol";
import type { WriterPosition } from "./log-writer.js";

/** One stored event as read back: the parsed frame and the exact text that was stored. */
export interface StoredEvent {
  frame: LooseEventFrame;
  raw: string;
  streamSeq: number;
}

const decoder = new TextDecoder();

export function decodeEvent(data: Uint8Array, streamSeq = 0): StoredEvent | null {
  const raw = decoder.decode(data);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return null;
  }
  const parsed = looseEventFrameSchema.safeParse(value);
  return parsed.success ? { frame: parsed.data, raw, streamSeq } : null;
}

/** The last event of rid's log, or null when it has none (queued, unknown or expired). */
export async function lastEvent(jsm: JetStreamManager, rid: string): Promise<StoredEvent | null> {
  const msg = await jsm.streams.getMessage(EVENTS_STREAM, { last_by_subj: eventSubject(rid) });
  if (!msg) return null;
  return decodeEvent(msg.data, msg.seq);
}

/** Where a writer taking over rid's log must continue. */
export async function logPosition(jsm: JetStreamManager, rid: string): Promise<WriterPosition & { last: StoredEvent | null }> {
  const last = await lastEvent(jsm, rid);
  return last ? { seq: last.frame.seq, streamSeq: last.streamSeq, last } : { seq: 0, streamSeq: 0, last: null };
}

/**
 * Reads every event of rid stored right now, in order, calling `onEvent` for each with
 * seq > after. A throwaway consumer bounded by the pending count at its creation: the
 * live tail covers whatever is written after that.
 */
export async function readStored(
  js: JetStreamClient,
  jsm: JetStreamManager,
  rid: string,
  after: number,
  onEvent: (e: StoredEvent) => void,
): Promise<void> {
  const ci = await jsm.consumers.add(EVENTS_STREAM, {
    filter_subject: eventSubject(rid),
    ack_policy: AckPolicy.None,
    deliver_policy: DeliverPolicy.All,
    mem_storage: true,
    inactive_threshold: 30_000_000_000,
    num_replicas: 1,
  });
  try {
    let remaining = ci.num_pending;
    const consumer = js.consumers.getConsumerFromInfo(ci);
    while (remaining > 0) {
      const batch = await consumer.fetch({ max_messages: Math.min(remaining, 512), expires: 5_000 });
      let got = 0;
      for await (const m of batch) {
        got++;
        const e = decodeEvent(m.data, m.seq);
        if (e && e.frame.seq > after) onEvent(e);
      }
      if (got === 0) break;
      remaining -= got;
    }
  } finally {
    await jsm.consumers.delete(EVENTS_STREAM, ci.name).catch(() => undefined);
  }
}
