/**
 * Runs tasks one after another per key (a rid, a thread), so `subscribe` then `unsubscribe`
 * (or `follow` then `unfollow`) act in the order a client sent them; tasks of different keys,
 * and keyless ones, run at once. A key is forgotten once its last task has run.
 */
export class KeyedChain {
  private readonly chains = new Map<string, Promise<void>>();

  run(key: string, task: () => Promise<void>): void {
    const prev = key ? (this.chains.get(key) ?? Promise.resolve()) : Promise.resolve();
    const next = prev.then(task, task);
    if (!key) return;
    this.chains.set(key, next);
    void next.finally(() => {
      if (this.chains.get(key) === next) this.chains.delete(key);
    });
  }
}
