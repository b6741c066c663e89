export interface BackoffOptions {
  /** Delay before the first retry (default 100 ms). */
  minDelayMs?: number;
  /** Upper bound of any delay (default 5000 ms). */
  maxDelayMs?: number;
  /** Growth per retry (default 2). */
  factor?: number;
  /** Fraction of each delay taken away at random, 0..1 (default 0.5): spreads reconnecting clients. */
  jitter?: number;
}

export const DEFAULT_BACKOFF: Required<BackoffOptions> = { minDelayMs: 100, maxDelayMs: 5000, factor: 2, jitter: 0.5 };

export function backoffOptions(given: BackoffOptions = {}): Required<BackoffOptions> {
  const o = { ...DEFAULT_BACKOFF };
  for (const key of Object.keys(o) as (keyof BackoffOptions)[]) {
    const v = given[key];
    if (v !== undefined) {
      if (!Number.isFinite(v) || v < 0) throw new RangeError(`reconnect.${key} must be a finite number >= 0`);
      o[key] = v;
    }
  }
  o.jitter = Math.min(o.jitter, 1);
  o.factor = Math.max(o.factor, 1);
  o.maxDelayMs = Math.max(o.maxDelayMs, o.minDelayMs);
  return o;
}

/**
 * The delay before retry number `attempt` (0 = the first retry): minDelayMs × factor^attempt,
 * capped at maxDelayMs, minus up to `jitter` of it at random.
 */
export function backoffDelay(attempt: number, o: Required<BackoffOptions>, random: () => number = Math.random): number {
  const base = Math.min(o.maxDelayMs, o.minDelayMs * o.factor ** Math.max(0, attempt));
  return Math.max(0, Math.round(base * (1 - o.jitter * random())));
}

/** Successive delays of one retry loop; `reset()` once a try succeeded. */
export class Backoff {
  #attempt = 0;
  readonly #options: Required<BackoffOptions>;
  readonly #random: () => number;

  constructor(options: BackoffOptions = {}, random: () => number = Math.random) {
    this.#options = backoffOptions(options);
    this.#random = random;
  }

  /** How many delays were handed out since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  next(): number {
    return backoffDelay(this.#attempt++, this.#options, this.#random);
  }

  reset(): void {
    this.#attempt = 0;
  }
}
