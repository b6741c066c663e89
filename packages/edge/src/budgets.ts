import type { Principal } from "./auth.js";
import { rateLimited } from "./limits.js";

/** Who opens a stream: the key it counts under as a client (`o:<owner>`, `r:<rid>`, `t:<thread>`) and its address. */
export interface StreamClient {
  key: string;
  address: string;
}

/**
 * An owner counts under its name; a response-scoped token under its rid, a thread-scoped one
 * under its thread (they are handed to readers who are not the owner: a broadcast to many must
 * not use up the owner's budget, and the address bounds it anyway).
 */
export function streamClient(principal: Principal, address: string): StreamClient {
  const key =
    principal.kind === "owner" ? `o:${principal.owner}` : principal.kind === "thread" ? `t:${principal.thread}` : `r:${principal.rid}`;
  return { key, address };
}

/** One open stream's place in the counts: released once, whoever releases it first. */
export class StreamSlot {
  /** Set by the Subscription that took the slot over: from then on its close releases it. */
  adopted = false;
  private released = false;

  constructor(private readonly onRelease: () => void) {}

  release(): void {
    if (this.released) return;
    this.released = true;
    this.onRelease();
  }
}

/**
 * Streams open per client key and per address, across every door (socket subscriptions, SSE,
 * chat completions, Responses streams): MAX_STREAMS_PER_OWNER and MAX_STREAMS_PER_ADDRESS.
 * Counted by each edge for itself; a key whose count drops to 0 is forgotten.
 */
export class StreamBudget {
  private readonly byKey = new Map<string, number>();
  private readonly byAddress = new Map<string, number>();

  constructor(
    readonly perOwner: number,
    readonly perAddress: number,
  ) {}

  /**
   * A slot for one more stream of `client`, or `rate_limited` naming the variable. `replacing`
   * (a socket re-subscribing to a rid it follows: the old stream closes) skips the check.
   */
  open(client: StreamClient, replacing = false, rid?: string): StreamSlot {
    if (!replacing) {
      if ((this.byKey.get(client.key) ?? 0) >= this.perOwner)
        throw rateLimited(`at most ${this.perOwner} open streams per owner on this edge (MAX_STREAMS_PER_OWNER); close one first`, rid);
      if ((this.byAddress.get(client.address) ?? 0) >= this.perAddress)
        throw rateLimited(
          `at most ${this.perAddress} open streams per client address on this edge (MAX_STREAMS_PER_ADDRESS); close one first`,
          rid,
        );
    }
    add(this.byKey, client.key, 1);
    add(this.byAddress, client.address, 1);
    return new StreamSlot(() => {
      add(this.byKey, client.key, -1);
      add(this.byAddress, client.address, -1);
    });
  }

  /** Open streams of a client key, or of an address (for tests and metrics). */
  count(key: string): number {
    return this.byKey.get(key) ?? 0;
  }

  countAddress(address: string): number {
    return this.byAddress.get(address) ?? 0;
  }
}

function add(map: Map<string, number>, key: string, delta: number): void {
  const n = (map.get(key) ?? 0) + delta;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
}

/**
 * One socket's frame budget: FRAME_BURST frames at once, refilled at FRAME_RATE per second.
 * Two numbers and no allocation: it runs for every frame a client sends.
 */
export class FrameBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = burst;
    this.at = now();
  }

  take(): boolean {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.rate);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** How long a response's steer count is kept after its last steer (the count bounds a running response). */
const STEER_COUNT_IDLE_MS = 3_600_000;

/**
 * Steers taken per response (MAX_STEERS_PER_RESPONSE), counted by each edge for itself. A count
 * idle for an hour is swept (past that, a steer an hour costs nothing worth bounding).
 */
export class SteerCounts {
  private readonly counts = new Map<string, { n: number; at: number }>();
  private sweptAt = 0;

  constructor(private readonly now: () => number = Date.now) {}

  get(rid: string): number {
    return this.counts.get(rid)?.n ?? 0;
  }

  add(rid: string, delta: number): void {
    const now = this.now();
    this.sweep(now);
    const n = this.get(rid) + delta;
    if (n <= 0) this.counts.delete(rid);
    else this.counts.set(rid, { n, at: now });
  }

  /** The response has ended: nothing more to bound. */
  forget(rid: string): void {
    this.counts.delete(rid);
  }

  get size(): number {
    return this.counts.size;
  }

  private sweep(now: number): void {
    if (now - this.sweptAt < 1_000 || this.counts.size < 1_000) return;
    this.sweptAt = now;
    for (const [rid, c] of this.counts) if (now - c.at >= STEER_COUNT_IDLE_MS) this.counts.delete(rid);
  }
}
