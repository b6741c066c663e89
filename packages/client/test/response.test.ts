import { test } from "node:test";
import assert from "node:assert/strict";
import { ResponseStream, type HandleHost } from "../src/response.js";
import { UnbrokenError } from "../src/errors.js";
import type { ResponseEventFrame } from "../src/frames.js";

const RID = "rid_abcdefgh";
const host: HandleHost = {
  cancel: async () => undefined,
  steer: async () => undefined,
  unsubscribe: async () => undefined,
};

function tok(seq: number, text: string): ResponseEventFrame {
  return { type: "event", rid: RID, seq, event: { kind: "token", text } };
}
function end(seq: number): ResponseEventFrame {
  return { type: "event", rid: RID, seq, event: { kind: "end", reason: "stop", usage: { prompt_tokens: 1, completion_tokens: 2 } } };
}

test("delivers each seq once and in order; drops duplicates, refuses gaps", async () => {
  const s = new ResponseStream(host, RID, 0);
  assert.equal(s.receive(tok(1, "a")), "new");
  assert.equal(s.receive(tok(1, "a")), "duplicate");
  assert.equal(s.receive(tok(3, "c")), "gap");
  assert.equal(s.receive(tok(2, "b")), "new");
  assert.equal(s.receive(tok(2, "b")), "duplicate");
  assert.equal(s.receive(tok(3, "c")), "new");
  assert.equal(s.receive(end(4)), "new");
  assert.equal(s.receive(tok(5, "late")), "ignored");
  const h = s.handle;
  assert.equal(h.text, "abc");
  assert.equal(h.lastSeq, 4);
  assert.equal(h.ended, true);
  assert.equal(h.end?.reason, "stop");
  assert.deepEqual(await h.done, h.end);
  const got: number[] = [];
  for await (const ev of h) got.push(ev.seq);
  assert.deepEqual(got, [1, 2, 3, 4]);
});

test("starts after the given seq", () => {
  const s = new ResponseStream(host, RID, 5);
  assert.equal(s.handle.lastSeq, 5);
  assert.equal(s.receive(tok(5, "x")), "duplicate");
  assert.equal(s.receive(tok(7, "x")), "gap");
  assert.equal(s.receive(tok(6, "y")), "new");
  assert.equal(s.handle.text, "y");
});

test("the iterator waits for events and ends after end", async () => {
  const s = new ResponseStream(host, RID, 0);
  const it = s.handle[Symbol.asyncIterator]();
  const first = it.next();
  s.receive(tok(1, "a"));
  assert.deepEqual(await first, { value: tok(1, "a"), done: false });
  const second = it.next();
  const third = it.next();
  s.receive(tok(2, "b"));
  s.receive(end(3));
  assert.equal((await second).value?.seq, 2);
  assert.equal((await third).value?.seq, 3);
  assert.deepEqual(await it.next(), { value: undefined, done: true });
});

test("a second iterator is refused with a clear error", () => {
  const s = new ResponseStream(host, RID, 0);
  s.handle[Symbol.asyncIterator]();
  assert.throws(() => s.handle[Symbol.asyncIterator](), /already iterated/);
});

test("events of unknown kinds are yielded too", async () => {
  const s = new ResponseStream(host, RID, 0);
  const odd = { type: "event", rid: RID, seq: 1, event: { kind: "handover", worker: "w2" } } as unknown as ResponseEventFrame;
  s.receive(odd);
  s.receive(tok(2, "z"));
  s.receive(end(3));
  const got: ResponseEventFrame[] = [];
  for await (const ev of s.handle) got.push(ev);
  assert.deepEqual(
    got.map((f) => f.event.kind),
    ["handover", "token", "end"],
  );
  assert.equal(s.handle.text, "z");
});

test("a failure is thrown by the iterator after the queued events; done and accepted reject", async () => {
  const s = new ResponseStream(host, RID, 0);
  s.receive(tok(1, "a"));
  const err = new UnbrokenError("forbidden", "not yours", { rid: RID });
  s.fail(err);
  await assert.rejects(s.handle.accepted, err);
  await assert.rejects(s.handle.done, err);
  assert.equal(s.handle.error, err);
  const got: number[] = [];
  await assert.rejects(async () => {
    for await (const ev of s.handle) got.push(ev.seq);
  }, err);
  assert.deepEqual(got, [1]);
});

test("a waiting iterator is woken by a failure; a quiet failure ends it without throwing", async () => {
  const loud = new ResponseStream(host, RID, 0);
  const pending = loud.handle[Symbol.asyncIterator]().next();
  loud.fail(new UnbrokenError("closed", "closed"));
  await assert.rejects(pending, (e: unknown) => e instanceof UnbrokenError && e.code === "closed");

  const quiet = new ResponseStream(host, RID, 0);
  const it = quiet.handle[Symbol.asyncIterator]();
  const waiting = it.next();
  quiet.fail(new UnbrokenError("closed", "unsubscribed"), true);
  assert.deepEqual(await waiting, { value: undefined, done: true });
  await assert.rejects(quiet.handle.done, (e: unknown) => e instanceof UnbrokenError && e.code === "closed");
});

test("unobserved rejections of accepted and done do not surface as unhandled", async () => {
  let unhandled = 0;
  const onUnhandled = (): void => {
    unhandled++;
  };
  process.on("unhandledRejection", onUnhandled);
  try {
    const s = new ResponseStream(host, RID, 0);
    s.fail(new UnbrokenError("internal", "boom"));
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(unhandled, 0);
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
});

test("onEvent listeners see each new event and can unsubscribe", () => {
  const s = new ResponseStream(host, RID, 0);
  const a: number[] = [];
  const b: number[] = [];
  const offA = s.handle.onEvent((f) => a.push(f.seq));
  s.handle.onEvent((f) => b.push(f.seq));
  s.receive(tok(1, "x"));
  s.receive(tok(1, "x"));
  offA();
  s.receive(tok(2, "y"));
  assert.deepEqual(a, [1]);
  assert.deepEqual(b, [1, 2]);
});

test("breaking out of for-await stops buffering but the handle keeps its state", async () => {
  const s = new ResponseStream(host, RID, 0);
  s.receive(tok(1, "a"));
  s.receive(tok(2, "b"));
  for await (const ev of s.handle) {
    assert.equal(ev.seq, 1);
    break;
  }
  s.receive(tok(3, "c"));
  assert.equal(s.handle.text, "abc");
  assert.equal(s.handle.lastSeq, 3);
});

test("accepted resolves once, with the first answer", async () => {
  const s = new ResponseStream(host, RID, 0);
  s.accept(true);
  s.accept(false);
  assert.deepEqual(await s.handle.accepted, { existing: true, ended: false });
});
