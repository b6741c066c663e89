/**
 * Runs at most `max` tasks at once, the rest in the order given. The page opens a thread's
 * answers through it: a long thread replays its answers a few at a time, rather than one
 * subscription each at once (a socket may hold MAX_SUBSCRIPTIONS_PER_SOCKET).
 */
export class Limiter {
  readonly #queue: Array<() => Promise<unknown>> = [];
  #running = 0;

  constructor(readonly max: number) {}

  /** Queues `task`; its slot is held until the promise it returns settles. */
  run(task: () => Promise<unknown>): void {
    this.#queue.push(task);
    this.#pump();
  }

  /** Drops the tasks not started yet. */
  clear(): void {
    this.#queue.length = 0;
  }

  #pump(): void {
    while (this.#running < this.max) {
      const task = this.#queue.shift();
      if (task === undefined) return;
      this.#running++;
      // A task that throws at once frees its slot like one that rejects.
      void new Promise((resolve) => resolve(task()))
        .catch(() => undefined)
        .finally(() => {
          this.#running--;
          this.#pump();
        });
    }
  }
}
