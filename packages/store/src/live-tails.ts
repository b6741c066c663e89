import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { liveSubject } from "@unbroken/protocol";
import { decodeEvent, type StoredEvent } from "./stored-event.js";

export interface LiveTailsOptions {
  /** Memory for recent events per response (their text and their objects), for resumes served from memory. */
  keepBytes?: number;
  /** How long a tail that nobody follows stays subscribed, keeping its recent events. */
  lingerMs?: number;
  /** At most this many tails nobody follows are kept; past it the oldest goes at once. */
  maxLingering?: number;
}

/** Enough for a few seconds of a token stream: a reader back from a short drop finds its events here. */
const KEEP_BYTES = 16 * 1024;
/** A dropped reader usually comes back within seconds; for that long its tail keeps listening. */
const LINGER_MS = 30_000;
/** Bounds the memory of tails nobody reads (each at most keepBytes) at a high request rate. */
const MAX_LINGERING = 2_000;
/** What an event costs in memory beyond its text (the StoredEvent, the string's header): counted against keepBytes. */
const EVENT_OVERHEAD = 96;

type Listener = (e: StoredEvent) => void;

/**
 * One response's live tail in this process: one subscription to its RePublish subject shared by
 * every reader, and the most recent events it carried (a contiguous run of seqs). Every event
 * on that subject was stored first, and a seq's event never changes, so the run is a faithful
 * copy of that stretch of the log.
 */
class Tail {
  readonly listeners = new Set<Listener>();
  private recent: StoredEvent[] = [];
  private head = 0;
  private bytes = 0;
  private sub: Subscription | undefined;
  private lingerTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Subscribed before the log could hold anything, with no message lost since: then this copy
   * has seen every event of the log, and its last one is the log's last one.
   */
  whole = false;

  constructor(
    nc: NatsConnection,
    rid: string,
    private readonly keepBytes: number,
  ) {
    this.sub = nc.subscribe(liveSubject(rid), {
      callback: (err, msg) => {
        if (err) return;
        // RePublish sends each event as it is stored: its arrival stands for its storage time
        // (a reader measures a response's silence from its last event; see `known`).
        const e = decodeEvent(msg.data, 0, Date.now());
        if (e) this.receive(e);
      },
    });
  }

  private receive(e: StoredEvent): void {
    const last = this.recent[this.recent.length - 1];
    if (last && e.seq <= last.seq) return;
    // A hole (messages lost while the connection was down): the copy starts again here.
    if (last && e.seq !== last.seq + 1) this.forget();
    this.keep(e);
    // Nothing follows `end`: the subscription has done its work; the copy stays until it expires.
    if (e.kind === "end") this.unsubscribe();
    for (const l of this.listeners) l(e);
  }

  private keep(e: StoredEvent): void {
    this.recent.push(e);
    this.bytes += e.raw.length + EVENT_OVERHEAD;
    while (this.bytes > this.keepBytes && this.recent.length - this.head > 1) {
      this.bytes -= (this.recent[this.head] as StoredEvent).raw.length + EVENT_OVERHEAD;
      this.head++;
    }
    // Compact now and then rather than shift on every event.
    if (this.head > 64 && this.head * 2 > this.recent.length) {
      this.recent = this.recent.slice(this.head);
      this.head = 0;
    }
  }

  /** The log's last event as this copy knows it (null: none yet), when the copy is whole. */
  known(): { last: StoredEvent | null } | undefined {
    if (!this.whole) return undefined;
    return { last: this.recent[this.recent.length - 1] ?? null };
  }

  private forget(): void {
    this.whole = false;
    this.recent = [];
    this.head = 0;
    this.bytes = 0;
  }

  /** The events after `after` up to `upTo`, in order, when this copy holds every one of them. */
  between(after: number, upTo: number): StoredEvent[] | undefined {
    if (upTo <= after) return [];
    const first = this.recent[this.head];
    const last = this.recent[this.recent.length - 1];
    if (!first || !last || first.seq > after + 1 || last.seq < upTo) return undefined;
    const from = this.head + (after + 1 - first.seq);
    return this.recent.slice(from, from + (upTo - after));
  }

  linger(ms: number, drop: () => void): void {
    clearTimeout(this.lingerTimer);
    this.lingerTimer = setTimeout(drop, ms);
    this.lingerTimer.unref?.();
  }

  stay(): void {
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
  }

  unsubscribe(): void {
    this.sub?.unsubscribe();
    this.sub = undefined;
  }

  close(): void {
    this.stay();
    this.unsubscribe();
    this.listeners.clear();
    this.forget();
  }
}

/**
 * The live tails of the responses this process reads: one NATS subscription per response
 * however many readers it has, and a short memory of each one's recent events, so a reader
 * that drops and comes back (to this process) resumes without a JetStream consumer. A tail
 * nobody follows lingers for a while, still listening, then goes.
 */
export class LiveTails {
  private readonly tails = new Map<string, Tail>();
  /** Tails nobody follows, oldest first (a Map keeps insertion order). */
  private readonly lingering = new Map<string, Tail>();
  private readonly keepBytes: number;
  private readonly lingerMs: number;
  private readonly maxLingering: number;

  constructor(
    private readonly nc: NatsConnection,
    opts: LiveTailsOptions = {},
  ) {
    this.keepBytes = opts.keepBytes ?? KEEP_BYTES;
    this.lingerMs = opts.lingerMs ?? LINGER_MS;
    this.maxLingering = opts.maxLingering ?? MAX_LINGERING;
  }

  /**
   * Calls `listener` with every event the response's RePublish subject carries from now on
   * (a new subscription is in effect for the server before anything this connection sends
   * after this call). Returns the function that stops it.
   */
  follow(rid: string, listener: Listener): () => void {
    let tail = this.tails.get(rid);
    if (!tail) {
      tail = new Tail(this.nc, rid, this.keepBytes);
      this.tails.set(rid, tail);
    }
    tail.stay();
    this.lingering.delete(rid);
    tail.listeners.add(listener);
    const t = tail;
    return () => {
      if (!t.listeners.delete(listener) || t.listeners.size > 0) return;
      this.unfollowed(rid, t);
    };
  }

  /** Nobody follows `tail` now: it lingers (or goes at once when lingering is off). */
  private unfollowed(rid: string, tail: Tail): void {
    if (this.lingerMs <= 0 || this.maxLingering <= 0) {
      this.drop(rid, tail);
      return;
    }
    tail.linger(this.lingerMs, () => this.drop(rid, tail));
    this.lingering.set(rid, tail);
    if (this.lingering.size > this.maxLingering) {
      const [oldest, first] = this.lingering.entries().next().value as [string, Tail];
      this.drop(oldest, first);
    }
  }

  /**
   * Opens rid's tail before its log can hold anything: the caller is about to queue the
   * request of a response it just created, on this connection, so the subscription is in
   * effect before any worker can write. Until a message may have been lost (a hole, or
   * `interrupted`), the tail then knows the log's last event without asking the stream.
   * Nobody follows it yet, so it lingers as a dropped reader's tail would.
   */
  open(rid: string): void {
    if (this.tails.has(rid)) return;
    const tail = new Tail(this.nc, rid, this.keepBytes);
    tail.whole = true;
    this.tails.set(rid, tail);
    this.unfollowed(rid, tail);
  }

  /** rid's last stored event as its tail knows it (see `open`), or undefined when only the stream knows. */
  known(rid: string): { last: StoredEvent | null } | undefined {
    return this.tails.get(rid)?.known();
  }

  /** The connection dropped: messages may have been lost, so no tail knows its log whole any more. */
  interrupted(): void {
    for (const t of this.tails.values()) t.whole = false;
  }

  /** rid's events after `after` up to `upTo` from memory, or undefined when some are not held. */
  recent(rid: string, after: number, upTo: number): StoredEvent[] | undefined {
    return this.tails.get(rid)?.between(after, upTo);
  }

  /** How many responses have a tail here (followed or lingering). */
  get size(): number {
    return this.tails.size;
  }

  close(): void {
    for (const t of this.tails.values()) t.close();
    this.tails.clear();
    this.lingering.clear();
  }

  private drop(rid: string, tail: Tail): void {
    if (this.lingering.get(rid) === tail) this.lingering.delete(rid);
    if (tail.listeners.size > 0 || this.tails.get(rid) !== tail) return;
    tail.close();
    this.tails.delete(rid);
  }
}
