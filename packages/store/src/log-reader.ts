import type { JetStreamClient, JetStreamManager, MsgRequest } from "@nats-io/jetstream";
import { EVENTS_STREAM, eventSubject } from "@unbroken/protocol";
import type { WriterPosition } from "./log-writer.js";
import { decodeEvent, type StoredEvent } from "./stored-event.js";
import { readSubject } from "./stored-read.js";

export { StoredEvent, decodeEvent } from "./stored-event.js";

/**
 * The last event of rid's log, or null when it has none (queued, unknown or expired), as the
 * stream's leader knows it.
 */
export async function lastEvent(jsm: JetStreamManager, rid: string): Promise<StoredEvent | null> {
  const msg = await jsm.streams.getMessage(EVENTS_STREAM, { last_by_subj: eventSubject(rid) });
  if (!msg) return null;
  return decodeEvent(msg.data, msg.seq, msg.time.getTime());
}

/**
 * Like `lastEvent`, by a direct get (the stream has `allow_direct`): cheaper for the server, no
 * JetStream API request. In a cluster any current replica may answer, so it can lag the
 * leader by a moment: good for "is there anything stored to read?", where a stale answer only
 * delays (the gap shows at the next live event, or at the silent-tail check), not for decisions
 * such as `gone` or a writer's position.
 */
export async function lastEventDirect(jsm: JetStreamManager, rid: string): Promise<StoredEvent | null> {
  const msg = await jsm.direct.getMessage(EVENTS_STREAM, { last_by_subj: eventSubject(rid) });
  if (!msg) return null;
  return decodeEvent(msg.data, msg.seq, msg.time.getTime());
}

/**
 * The first event of rid's log still stored, or null when it has none. JetStream removes a
 * log's events only from its head (RETENTION), so a first event past seq 1 means the earlier
 * ones have expired.
 */
export async function firstEvent(jsm: JetStreamManager, rid: string): Promise<StoredEvent | null> {
  // The stream leader answers (not a direct get, which a lagging replica may serve). Servers
  // since 2.9 take `next_by_subj` here; the client's type only lists seq and last_by_subj.
  const query = { seq: 1, next_by_subj: eventSubject(rid) } as unknown as MsgRequest;
  const msg = await jsm.streams.getMessage(EVENTS_STREAM, query);
  if (!msg) return null;
  return decodeEvent(msg.data, msg.seq);
}

/** Where a writer taking over rid's log must continue. */
export async function logPosition(jsm: JetStreamManager, rid: string): Promise<WriterPosition & { last: StoredEvent | null }> {
  const last = await lastEvent(jsm, rid);
  return last ? { seq: last.seq, streamSeq: last.streamSeq, last } : { seq: 0, streamSeq: 0, last: null };
}

/** What a stored read saw. */
export interface StoredRead {
  /** The seq of the first event it got: JetStream delivers a log from its first stored event. */
  firstSeq: number | null;
  /** It got every message stored when it began (false: a fetch came back empty, or it was stopped). */
  complete: boolean;
}

export interface ReadOptions {
  /**
   * Called after each event handed over: a promise makes the read wait for it (the reader's
   * sink is full). Live tails cannot wait; a catch-up can.
   */
  pace?(): Promise<void> | undefined;
  /** Checked after each wait: true ends the read early (nobody wants the rest). */
  stopped?(): boolean;
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
  opts: ReadOptions = {},
): Promise<StoredRead> {
  let firstSeq: number | null = null;
  // Synchronous unless the reader's sink is full: no promise per event on a replay.
  const complete = await readSubject(js, jsm, EVENTS_STREAM, eventSubject(rid), (m) => {
    const e = decodeEvent(m.data, m.seq);
    if (e && firstSeq === null) firstSeq = e.seq;
    if (!e || e.seq <= after) return true;
    onEvent(e);
    const wait = opts.pace?.();
    return wait ? wait.then(() => !opts.stopped?.()) : true;
  });
  return { firstSeq, complete };
}
