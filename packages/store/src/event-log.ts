import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { EVENTS_STREAM } from "@unbroken/protocol";
import type { JsPublisher } from "./js-publisher.js";
import type { LiveTails } from "./live-tails.js";
import { LogFollower, type FollowOptions } from "./log-follower.js";
import { firstEvent, lastEvent, lastEventDirect, logPosition, readStored, type ReadOptions, type StoredRead } from "./log-reader.js";
import { EventLogWriter, type LogAccess, type WriterOptions, type WriterPosition } from "./log-writer.js";
import type { StoredEvent } from "./stored-event.js";

/** What the logs need of a broker connection (the store's own wiring; see Broker). */
export interface EventLogHandles {
  js: JetStreamClient;
  jsm: JetStreamManager;
  publisher: JsPublisher;
  tails: LiveTails;
  onReconnect(listener: () => void): () => void;
}

/**
 * The event logs of all responses (`llm.ev.<rid>` in LLM_EVENTS): fenced writers, reads of
 * what is stored, and followers that replay then follow live.
 */
export class EventLogs {
  private readonly access: LogAccess;

  constructor(private readonly h: EventLogHandles) {
    this.access = {
      publisher: h.publisher,
      stored: async (streamSeq) => (await h.jsm.streams.getMessage(EVENTS_STREAM, { seq: streamSeq }))?.data ?? null,
    };
  }

  /** A writer that appends rid's events after `from` (an empty log by default), fenced on it. */
  writer(rid: string, from?: WriterPosition, opts?: WriterOptions): EventLogWriter {
    return new EventLogWriter(this.access, rid, from, opts);
  }

  /** The last stored event of rid (the stream leader's answer), or null. */
  last(rid: string): Promise<StoredEvent | null> {
    return lastEvent(this.h.jsm, rid);
  }

  /** Like `last`, by a direct get: cheaper, but a lagging replica may answer (see log-reader). */
  lastDirect(rid: string): Promise<StoredEvent | null> {
    return lastEventDirect(this.h.jsm, rid);
  }

  /** The first event of rid still stored, or null (events expire from a log's head). */
  first(rid: string): Promise<StoredEvent | null> {
    return firstEvent(this.h.jsm, rid);
  }

  /** Where a writer continuing rid's log must start, with the last event. */
  position(rid: string): Promise<WriterPosition & { last: StoredEvent | null }> {
    return logPosition(this.h.jsm, rid);
  }

  /** Reads every event of rid stored now with seq > after, in order. */
  read(rid: string, after: number, onEvent: (e: StoredEvent) => void, opts?: ReadOptions): Promise<StoredRead> {
    return readStored(this.h.js, this.h.jsm, rid, after, onEvent, opts);
  }

  /** Every event of rid stored now. */
  async readAll(rid: string): Promise<StoredEvent[]> {
    const events: StoredEvent[] = [];
    await this.read(rid, 0, (e) => events.push(e));
    return events;
  }

  /** A follower of rid's log (not started): replay from `after`, then live. */
  follow(opts: FollowOptions): LogFollower {
    return new LogFollower(this.h, opts);
  }

  /** rid's events after `after` up to `upTo` from this process's live-tail memory, when all are held. */
  recent(rid: string, after: number, upTo: number): StoredEvent[] | undefined {
    return this.h.tails.recent(rid, after, upTo);
  }
}
