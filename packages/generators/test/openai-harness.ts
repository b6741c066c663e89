// Shared by the openai generator tests: a fake server per test and a session runner.
import assert from "node:assert/strict";
import { after } from "node:test";
import type { GenerationBody } from "@unbroken/protocol";
import { pino } from "pino";
import { GeneratorError, type GenerationOutput, type GenerationSession, type ResumeState } from "../src/generator.js";
import { OpenAIGenerator, type OpenAIOptions } from "../src/openai.js";
import { FakeOpenAI, type Script } from "@unbroken/testing";

const log = pino({ level: "silent" });
const servers: FakeOpenAI[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

export async function serve(scripts: Script[]): Promise<{ fake: FakeOpenAI; baseUrl: string }> {
  const fake = new FakeOpenAI(scripts);
  servers.push(fake);
  return { fake, baseUrl: await fake.start() };
}

export function generator(baseUrl: string, opts: Partial<OpenAIOptions> = {}): OpenAIGenerator {
  return new OpenAIGenerator({ baseUrl, model: "fake-model", log, retryDelayMs: 20, ...opts });
}

export interface Run {
  outputs: GenerationOutput[];
  text: string;
  tokens: string[];
  done: Extract<GenerationOutput, { type: "done" }> | undefined;
  error: unknown;
  session: GenerationSession;
}

export interface RunOptions {
  steers?: string[];
  /** The job's cancel signal, for cancelling from outside the loop. */
  abort?: AbortController;
  /** Called after each token with the number of tokens so far. */
  onToken?: (count: number, session: GenerationSession, abort: () => void) => void;
  /** Called after every output (before the next is asked for). */
  onOutput?: (out: GenerationOutput, session: GenerationSession) => void;
  /** The log of an earlier worker this session takes over. */
  resume?: ResumeState;
}

export async function run(gen: OpenAIGenerator, body: GenerationBody, opts: RunOptions = {}): Promise<Run> {
  const ac = opts.abort ?? new AbortController();
  const session = gen.start({
    rid: "ridopenai1",
    body,
    steers: opts.steers ?? [],
    signal: ac.signal,
    ...(opts.resume ? { resume: opts.resume } : {}),
  });
  const outputs: GenerationOutput[] = [];
  const tokens: string[] = [];
  let error: unknown;
  try {
    for await (const out of session) {
      outputs.push(out);
      opts.onOutput?.(out, session);
      if (out.type === "token") {
        tokens.push(out.text);
        assert.equal(out.tokens, 1);
        opts.onToken?.(tokens.length, session, () => ac.abort());
      }
    }
  } catch (err) {
    error = err;
  }
  const done = outputs.find((o): o is Extract<GenerationOutput, { type: "done" }> => o.type === "done");
  if (done) assert.equal(outputs.at(-1), done, "done is the last output");
  return { outputs, text: tokens.join(""), tokens, done, error, session };
}

export function assertCode(r: Run, code: string): void {
  assert.ok(r.error instanceof GeneratorError, `expected a GeneratorError, got ${String(r.error)}`);
  assert.equal(r.error.code, code, r.error.message);
  assert.equal(r.done, undefined, "no done after a failure");
}

export const PROMPT: GenerationBody = { prompt: "Tell me about the river valley" };

/** Outputs as short strings, for comparing whole sequences. */
export function shapes(outputs: GenerationOutput[]): string[] {
  return outputs.map((o) => {
    switch (o.type) {
      case "token":
        return `text:${o.text}`;
      case "reasoning":
        return `think:${o.text}`;
      case "tool_call":
        return `call:${o.id}:${o.name}`;
      case "tool_args":
        return `args:${o.id}:${o.text}`;
      case "tool_done":
        return `done:${o.id}:${o.arguments}`;
      case "tool_dropped":
        return `dropped:${o.id}:${o.reason}`;
      case "steer":
        return `steer:${o.text}`;
      default:
        return `<${o.reason}>`;
    }
  });
}

/** Every argument piece of call `id`, joined. */
export function argsOf(outputs: GenerationOutput[], id: string): string {
  return outputs.map((o) => (o.type === "tool_args" && o.id === id ? o.text : "")).join("");
}

export const WEATHER_TOOL = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};
export const TIME_TOOL = {
  type: "function" as const,
  function: { name: "get_time", parameters: { type: "object", properties: {} } },
};
