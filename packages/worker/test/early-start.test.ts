import assert from "node:assert/strict";
import { test } from "node:test";
import type { GenerationOutput } from "@unbroken/generators";
import { EarlyStart } from "../src/early-start.js";
import { RecordingGenerator } from "./recording-generator.js";

const JOB = { rid: "early-start-test", body: { prompt: "hi" }, steers: [] };

async function drain(it: AsyncIterable<GenerationOutput>): Promise<string[]> {
  const out: string[] = [];
  for await (const o of it) out.push(o.type === "token" ? o.text : o.type);
  return out;
}

test("an early start sets its generator to work at once, and a kept session yields every output once, in order", async () => {
  const gen = new RecordingGenerator(3);
  const early = new EarlyStart(gen, JOB, new AbortController().signal);
  assert.equal(gen.runs.length, 1);
  assert.equal(gen.runs[0]?.iterated, true, "iterated before anyone reads it: generators begin work when iterated");
  const session = early.keep([]);
  assert.ok(session, "kept: no steer came");
  early.release();
  assert.equal(gen.runs[0]?.job.signal.aborted, false, "release leaves a kept session alone");
  assert.deepEqual(await drain(session), ["t0 ", "t1 ", "t2 ", "done"]);
});

test("an early start not kept (a steer came first) is aborted on release, unread", async () => {
  const gen = new RecordingGenerator(3);
  const early = new EarlyStart(gen, JOB, new AbortController().signal);
  assert.equal(early.keep(["be brief"]), undefined, "a steer must reach a session before its first token");
  early.release();
  assert.equal(gen.runs[0]?.job.signal.aborted, true);
});

test("the run's abort (cancel, shutdown) stops an early start as it stops any session", () => {
  const gen = new RecordingGenerator(3);
  const run = new AbortController();
  new EarlyStart(gen, JOB, run.signal).keep([]);
  run.abort();
  assert.equal(gen.runs[0]?.job.signal.aborted, true);
});
