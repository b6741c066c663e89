import type { GenerationJob, GenerationOutput, GenerationSession, TokenGenerator } from "@unbroken/generators";

/**
 * A generator that keeps every job it was given, whether its session was iterated, and yields
 * `tokens` tokens (`t0 `, `t1 `…) a few ms apart, then `done`; it stops when its job's signal aborts.
 */
export class RecordingGenerator implements TokenGenerator {
  readonly model = "recording";
  readonly runs: Array<{ job: GenerationJob; iterated: boolean }> = [];

  constructor(private readonly tokens: number) {}

  start(job: GenerationJob): GenerationSession {
    const run = { job, iterated: false };
    this.runs.push(run);
    const tokens = this.tokens;
    return {
      steer: () => false,
      usage: () => ({ prompt_tokens: 1, completion_tokens: tokens }),
      async *[Symbol.asyncIterator](): AsyncGenerator<GenerationOutput> {
        run.iterated = true;
        for (let i = 0; i < tokens; i++) {
          await new Promise((r) => setTimeout(r, 2));
          if (job.signal.aborted) return;
          yield { type: "token", text: `t${i} `, tokens: 1 };
        }
        yield { type: "done", reason: "stop", usage: { prompt_tokens: 1, completion_tokens: tokens } };
      },
    };
  }

  async close(): Promise<void> {}
}
