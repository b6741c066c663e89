import type { GenerationJob, GenerationOutput, GenerationSession, TokenGenerator } from "@unbroken/generators";

/**
 * A generation begun before its run knows it may keep it. A first delivery starts its
 * generator while its claim and `start` are in flight, so the model's first work (a prompt's
 * evaluation, an upstream's first byte, a scripted pace) overlaps that round trip instead of
 * following it: one round trip less before the first token. Generators begin work when first
 * iterated, so its first output is asked for at once and handed to whoever iterates it.
 * The run keeps it when it wins the claim and its `start` lands and no steer came meanwhile;
 * otherwise it is aborted before anything it made has been read.
 */
export class EarlyStart {
  private readonly ctl = new AbortController();
  private readonly session: GenerationSession;
  private kept = false;

  constructor(generator: TokenGenerator, job: Omit<GenerationJob, "signal">, runSignal: AbortSignal) {
    // Either the run's abort (cancel, shutdown, a lost response) or this one's stops it.
    this.session = prefetched(generator.start({ ...job, signal: AbortSignal.any([runSignal, this.ctl.signal]) }));
  }

  /**
   * The session, when the run may keep it: no steer came before its claim (the session began
   * without any, and a steer must come before the first token). Undefined otherwise.
   */
  keep(steers: readonly string[]): GenerationSession | undefined {
    this.kept = steers.length === 0;
    return this.kept ? this.session : undefined;
  }

  /** Unless kept: stop generating. What it made was never read, and never will be. */
  release(): void {
    if (!this.kept) this.ctl.abort();
  }
}

/** `inner`, with its first output already asked for (its generator at work from now on). */
function prefetched(inner: GenerationSession): GenerationSession {
  const it = inner[Symbol.asyncIterator]();
  let first: Promise<IteratorResult<GenerationOutput>> | undefined = it.next();
  // Read later by the run, or never (an early start not kept): no unhandled rejection meanwhile.
  first.catch(() => undefined);
  const iterator: AsyncIterator<GenerationOutput> = {
    next: () => {
      const next = first ?? it.next();
      first = undefined;
      return next;
    },
    return: (value?: unknown) => it.return?.(value) ?? Promise.resolve({ done: true, value: undefined }),
  };
  return {
    steer: (text) => inner.steer(text),
    usage: () => inner.usage(),
    [Symbol.asyncIterator]: () => iterator,
  };
}
