import type { GenerationBody, Usage } from "@unbroken/protocol";
import {
  GeneratorError,
  type GenerationJob,
  type GenerationOutput,
  type GenerationSession,
  type ResumeState,
  type TokenGenerator,
} from "./generator.js";
import { hashText, prng } from "./prng.js";
import { Pacer } from "./pacer.js";
import { ScriptedText, naturalLength } from "./scripted-text.js";

export interface ScriptedOptions {
  /** Tokens per second per response; 0 = as fast as possible. */
  tokensPerSecond: number;
}

export function promptText(body: GenerationBody): string {
  if (body.prompt !== undefined) return body.prompt;
  return (body.messages ?? []).map((m) => `${m.role}: ${m.content}`).join("\n");
}

/** A rough token count for usage: words and punctuation runs, as a tokenizer would split them. */
export function countTokens(text: string): number {
  return text.match(/\w+|[^\s\w]/g)?.length ?? 0;
}

const stopsOf = (body: GenerationBody): string[] => {
  const stop = body.params?.stop;
  return stop === undefined ? [] : Array.isArray(stop) ? stop : [stop];
};

/**
 * A deterministic generator for demos without a model, load tests and CI. It is not a
 * model: the text is prose-like words from (prompt, seed), paced at a fixed rate. It obeys
 * max_tokens, stop sequences, cancel and steer exactly as a model-backed generator must.
 * Given the log of a response another worker began (`job.resume`), it continues with
 * exactly the tokens that worker would have written.
 */
export class ScriptedGenerator implements TokenGenerator {
  readonly model = "scripted";
  constructor(private readonly opts: ScriptedOptions) {}

  /** One pacing clock for all of this generator's sessions. */
  private readonly pacer = new Pacer();

  start(job: GenerationJob): GenerationSession {
    return new ScriptedSession(job, this.opts.tokensPerSecond, this.pacer);
  }

  async close(): Promise<void> {
    this.pacer.close();
  }
}

class ScriptedSession implements GenerationSession {
  private readonly text: ScriptedText;
  private readonly target: number;
  private readonly limit: number | undefined;
  private readonly promptTokens: number;
  private readonly stops: string[];
  private readonly steers: string[] = [];
  /** Tokens already in the log when this session began (0 unless it resumes a response). */
  private readonly resumed: number;
  private readonly replayed: "ok" | "stopped" | GeneratorError;
  private produced = 0;
  private sofar = "";
  private extra = 0;
  private finished = false;
  /** Ends the current pacing wait early (on abort). */
  private wake: (() => void) | undefined;
  private aborted = false;

  constructor(
    private readonly job: GenerationJob,
    private readonly tps: number,
    private readonly pacer: Pacer,
  ) {
    const prompt = promptText(job.body);
    const seed = hashText(prompt, job.body.params?.seed ?? 0);
    this.text = new ScriptedText(seed);
    this.target = naturalLength(prompt, prng(seed ^ 0x9e3779b9));
    this.limit = job.body.params?.max_tokens;
    this.promptTokens = countTokens(prompt);
    this.stops = stopsOf(job.body);
    this.replayed = job.resume ? this.replay(job.resume) : "ok";
    this.resumed = this.produced;
    for (const s of job.steers) this.applySteer(s);
  }

  steer(text: string): boolean {
    // Once max_tokens is reached nothing can follow an instruction, so it cannot take effect.
    if (this.finished || (this.limit !== undefined && this.produced >= this.limit)) return false;
    this.steers.push(text);
    return true;
  }

  usage(): Usage {
    return { prompt_tokens: this.promptTokens, completion_tokens: this.produced };
  }

  async *[Symbol.asyncIterator](): AsyncIterator<GenerationOutput> {
    if (this.replayed instanceof GeneratorError) throw this.replayed;
    if (this.replayed === "stopped") return yield* this.done("stop");
    const interval = this.tps > 0 ? 1000 / this.tps : 0;
    const began = performance.now();
    // Read once here and then kept by a listener: AbortSignal.aborted validates its receiver
    // on every read, a measurable share of a token's cost.
    this.aborted = this.job.signal.aborted;
    this.job.signal.addEventListener(
      "abort",
      () => {
        this.aborted = true;
        this.wake?.();
      },
      { once: true },
    );
    while (!this.aborted) {
      const steer = this.steers.shift();
      if (steer !== undefined) {
        this.applySteer(steer);
        yield { type: "steer", text: steer };
        continue;
      }
      if (this.limit !== undefined && this.produced >= this.limit) return yield* this.done("length");
      if (this.produced >= this.target + this.extra) return yield* this.done("stop");
      await this.pace(began + (this.produced - this.resumed + 1) * interval);
      if (this.aborted) return;
      const { token, cut } = this.nextToken();
      if (token.length > 0) yield { type: "token", text: token, tokens: 1 };
      if (cut) return yield* this.done("stop");
    }
  }

  /**
   * Regenerates the tokens an earlier worker wrote, applying its steers where the log has
   * them, without yielding anything: the state is then exactly that worker's, so what
   * follows is what it would have written. A `token` event may hold several tokens (the
   * worker coalesces them under load), so each event's text is rebuilt token by token. A
   * log this generator would not have written (another generator, another version) cannot
   * be continued exactly, and says so.
   */
  private replay(resume: ResumeState): "ok" | "stopped" | GeneratorError {
    let s = 0;
    const last = resume.tokens.length - 1;
    const differs = (i: number) =>
      new GeneratorError(
        "cannot_continue",
        `the log differs from this generator's text at token event ${i + 1}; it cannot be continued exactly`,
      );
    for (const [i, logged] of resume.tokens.entries()) {
      for (let st = resume.steers[s]; st !== undefined && st.at <= i; st = resume.steers[++s]) this.applySteer(st.text);
      let text = "";
      while (text.length < logged.length) {
        const { token, cut } = this.nextToken();
        text += token;
        if (!logged.startsWith(text)) return differs(i);
        if (cut) return text === logged && i === last ? "stopped" : differs(i);
      }
      if (text !== logged) return differs(i);
    }
    for (const st of resume.steers.slice(s)) this.applySteer(st.text);
    return "ok";
  }

  /**
   * Waits until `at` (performance.now() time) or abort; yields to the loop even at rate 0.
   * The session's one abort listener wakes it (adding and removing a listener per token
   * would cost more than the rest of a token's pacing). After an abort the pacer still
   * releases the wait once; resolving a settled promise does nothing.
   */
  private pace(at: number): Promise<void> {
    const wait = at - performance.now();
    return new Promise((resolve) => {
      if (wait <= 0) {
        setImmediate(resolve);
        return;
      }
      this.wake = resolve;
      this.pacer.until(at, resolve);
    });
  }

  /** A steer reseeds the text, and a steered answer goes on for a while after it. */
  private applySteer(text: string): void {
    this.text.steer(text);
    this.extra += 20;
  }

  /** The next token, cut short where a stop sequence begins (`cut`: the answer ends there). */
  private nextToken(): { token: string; cut: boolean } {
    let token = this.text.next();
    const cut = findStop(this.sofar, token, this.stops);
    if (cut !== undefined) token = token.slice(0, cut);
    this.sofar = (this.sofar + token).slice(-128);
    this.produced++;
    return { token, cut: cut !== undefined };
  }

  private *done(reason: "stop" | "length"): Generator<GenerationOutput> {
    this.finished = true;
    yield { type: "done", reason, usage: this.usage() };
  }
}

/** Where in `token` a stop sequence begins (counting text just before it), if anywhere. */
function findStop(before: string, token: string, stops: string[]): number | undefined {
  let best: number | undefined;
  for (const stop of stops) {
    const joined = before + token;
    const at = joined.indexOf(stop, Math.max(0, before.length - stop.length + 1));
    if (at >= 0) {
      const inToken = Math.max(0, at - before.length);
      if (best === undefined || inToken < best) best = inToken;
    }
  }
  return best;
}
