/** `p`, or a failure naming `what` after a generous `ms` (so a missing close fails fast). */
export function within<T>(p: Promise<T>, what: string, ms = 15_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Runs `each` on every item of `items` to its end; fails naming `what` if the end has not come after `ms`. */
export function eachWithin<T>(items: AsyncIterable<T>, each: (item: T) => void, what: string, ms = 60_000): Promise<void> {
  const all = (async () => {
    for await (const item of items) each(item);
  })();
  return within(all, what, ms);
}
