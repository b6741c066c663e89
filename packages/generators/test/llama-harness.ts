import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import type { GenerationBody } from "@unbroken/protocol";
import { GeneratorError, type GenerationOutput, type GenerationSession } from "../src/generator.js";
import type { LlamaGenerator } from "../src/llama.js";

// Helpers for llama.test.ts: run one session to its end, recording what it yields.

export interface Run {
  outputs: GenerationOutput[];
  tokens: string[];
  text: string;
  done: Extract<GenerationOutput, { type: "done" }> | undefined;
  session: GenerationSession;
  /** How many tokens came before each steer output. */
  steerAt: number[];
  error: unknown;
}

export interface RunOptions {
  steers?: string[];
  steerAfter?: { tokens: number; text: string };
  abortAfter?: number;
  generator?: LlamaGenerator;
}

export async function runSession(g: LlamaGenerator, body: GenerationBody, opts: RunOptions = {}): Promise<Run> {
  const ac = new AbortController();
  const session = g.start({ rid: "ridllama01", body, steers: opts.steers ?? [], signal: ac.signal });
  const r: Run = { outputs: [], tokens: [], text: "", done: undefined, session, steerAt: [], error: undefined };
  try {
    for await (const out of session) {
      r.outputs.push(out);
      if (out.type === "token") {
        r.tokens.push(out.text);
        if (opts.steerAfter?.tokens === r.tokens.length) assert.equal(session.steer(opts.steerAfter.text), true);
        if (opts.abortAfter === r.tokens.length) ac.abort();
      } else if (out.type === "steer") r.steerAt.push(r.tokens.length);
      else if (out.type === "done") {
        assert.equal(r.done, undefined, "only one done");
        r.done = out;
      }
    }
  } catch (err) {
    r.error = err;
  }
  r.text = r.tokens.join("");
  if (r.done) assert.equal(r.outputs.at(-1), r.done, "done is the last output");
  return r;
}

export function assertGeneratorError(err: unknown, codes: string[]): GeneratorError {
  assert.ok(err instanceof GeneratorError, `expected a GeneratorError, got ${String(err)}`);
  assert.ok(codes.includes(err.code), `code ${err.code}: ${err.message}`);
  assert.ok(err.message.length > 10);
  return err;
}

/** Pids of this process's model processes (Linux /proc), to crash one on purpose. */
export function modelProcesses(): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === process.pid && readFileSync(`/proc/${name}/cmdline`, "utf8").includes("llama-child")) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}
