import assert from "node:assert/strict";
import { test } from "node:test";
import type { ResponseEvent } from "@unbroken/protocol";
import { DeltaCoalescer, type CoalescePolicy } from "../src/coalescer.js";

/** The coalescer fed text tokens only, as most of these tests do. */
class TokenCoalescer extends DeltaCoalescer {
  addText(text: string, tokens = 1): Promise<void> | undefined {
    return this.add({ type: "token", text, tokens });
  }
}

/** A log stand-in: records each event and completes writes only when told to. */
function log() {
  const events: string[] = [];
  const open: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  const write = (e: ResponseEvent): Promise<void> => {
    assert.equal(e.kind, "token");
    events.push((e as { text: string }).text);
    return new Promise<void>((resolve, reject) => open.push({ resolve, reject }));
  };
  const complete = async (): Promise<void> => {
    open.shift()?.resolve();
    await new Promise((r) => setImmediate(r));
  };
  return { events, open, write, complete };
}

const policy = (maxDelayMs: number, busy: boolean): CoalescePolicy => ({ maxDelayMs, delayMs: () => (busy ? maxDelayMs : 0) });

test("an idle path sends each token at once, as its own event", async () => {
  const l = log();
  const c = new TokenCoalescer(l.write, policy(50, false));
  c.addText("Hello");
  assert.deepEqual(l.events, ["Hello"], "written before add returns");
  await l.complete();
  c.addText(" world");
  assert.deepEqual(l.events, ["Hello", " world"]);
  const done = c.flush();
  await l.complete();
  await done;
});

test("tokens that come while a write is in flight travel together in the next event", async () => {
  const l = log();
  const c = new TokenCoalescer(l.write, policy(50, false));
  c.addText("A");
  c.addText(" b");
  c.addText(" c");
  assert.deepEqual(l.events, ["A"]);
  await l.complete();
  assert.deepEqual(l.events, ["A", " b c"]);
  const done = c.flush();
  await l.complete();
  await done;
  assert.equal(l.events.join(""), "A b c");
});

test("while busy, the first token still goes at once (time to first token)", async () => {
  const l = log();
  const c = new TokenCoalescer(l.write, policy(60_000, true));
  c.addText("first");
  assert.deepEqual(l.events, ["first"]);
  await l.complete();
  c.addText(" second");
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(l.events, ["first"], "the ones after it are held");
  c.stop();
});

test("while busy, tokens wait up to maxDelayMs to share an event; flush sends them at once", async () => {
  const l = log();
  const c = new TokenCoalescer(l.write, policy(60_000, true));
  c.addText("zero");
  await l.complete();
  c.addText(" one");
  c.addText(" two");
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(l.events, ["zero"], "held while busy");
  const done = c.flush();
  assert.deepEqual(l.events, ["zero", " one two"]);
  await l.complete();
  await done;
});

test("while busy, the held tokens go when their delay is up", async () => {
  const l = log();
  const c = new TokenCoalescer(l.write, policy(5, true));
  c.addText("w");
  await l.complete();
  c.addText("x");
  c.addText("y");
  const deadline = Date.now() + 10_000;
  while (l.events.length < 2) {
    assert.ok(Date.now() < deadline, `the held tokens were not written within 10 s: ${JSON.stringify(l.events)}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.deepEqual(l.events, ["w", "xy"]);
  await l.complete();
  c.stop();
});

test("coalescing off: one event per token even behind a slow write", async () => {
  const l = log();
  const c = new TokenCoalescer(l.write, policy(0, true));
  for (const t of ["a", "b", "c"]) c.addText(t);
  assert.deepEqual(l.events, ["a"]);
  const done = c.flush();
  await l.complete();
  await l.complete();
  await l.complete();
  await done;
  assert.deepEqual(l.events, ["a", "b", "c"]);
});

test("a failed write fails the next add and the flush, and nothing more is written", async () => {
  const l = log();
  const c = new TokenCoalescer(l.write, policy(50, false));
  c.addText("a");
  c.addText("b");
  l.open.shift()?.reject(new Error("fenced"));
  await new Promise((r) => setImmediate(r));
  await assert.rejects(c.addText("c") ?? Promise.resolve(), /fenced/);
  await assert.rejects(c.flush(), /fenced/);
  assert.deepEqual(l.events, ["a"]);
});

test("an event that holds other than one token says how many (`n`): usage counts tokens, not events", async () => {
  const written: ResponseEvent[] = [];
  let release: (() => void) | undefined;
  const write = (e: ResponseEvent): Promise<void> => {
    written.push(e);
    return new Promise<void>((r) => (release = r));
  };
  const c = new TokenCoalescer(write, policy(50, false));
  c.addText("A");
  c.addText(" b c", 2);
  c.addText(" d");
  release?.();
  await new Promise((r) => setImmediate(r));
  const done = c.flush();
  release?.();
  await done;
  assert.deepEqual(written, [
    { kind: "token", text: "A" },
    { kind: "token", text: " b c d", n: 3 },
  ]);
});

test("one event per token (COALESCE_MS 0) keeps each output's own count", async () => {
  const written: ResponseEvent[] = [];
  const c = new TokenCoalescer(async (e) => void written.push(e), policy(0, false));
  c.addText("one");
  c.addText(" two three", 2);
  await c.flush();
  assert.deepEqual(written, [
    { kind: "token", text: "one" },
    { kind: "token", text: " two three", n: 2 },
  ]);
});

test("deltas of different kinds and calls never share an event, and keep their order", async () => {
  const events: ResponseEvent[] = [];
  const open: Array<() => void> = [];
  const c = new DeltaCoalescer(
    (e) => {
      events.push(e);
      return new Promise<void>((r) => open.push(r));
    },
    policy(50, false),
  );
  c.add({ type: "reasoning", text: "Think", tokens: 1 });
  c.add({ type: "reasoning", text: "ing.", tokens: 1 });
  c.add({ type: "tool_args", id: "a", text: '{"x":', tokens: 1 });
  c.add({ type: "tool_args", id: "a", text: "1}", tokens: 1 });
  c.add({ type: "tool_args", id: "b", text: "{}", tokens: 1 });
  c.add({ type: "token", text: "Done", tokens: 1 });
  const flushed = c.flush();
  while (open.length > 0 || events.length < 5) {
    open.shift()?.();
    await new Promise((r) => setImmediate(r));
  }
  await flushed;
  assert.deepEqual(events, [
    { kind: "reasoning", text: "Think" },
    { kind: "reasoning", text: "ing." },
    { kind: "tool_args", id: "a", text: '{"x":1}', n: 2 },
    { kind: "tool_args", id: "b", text: "{}" },
    { kind: "token", text: "Done" },
  ]);
});
