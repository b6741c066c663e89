import assert from "node:assert/strict";
import { test } from "node:test";
import { encodeEventFrame, type ResponseEvent } from "@unbroken/protocol";
import { decodeEvent } from "../src/stored-event.js";

const bytes = (s: string) => new TextEncoder().encode(s);
const rid = "Xq3_abc-DEF0123456789z";

const EVENTS: ResponseEvent[] = [
  { kind: "start", model: "scripted", created_at: "2026-01-01T00:00:00.000Z" },
  { kind: "token", text: ' "seq":9, "kind":"end" \\ ünï 🌊' },
  { kind: "steer", text: "be brief" },
  { kind: "handover", worker: "w2", epoch: 2, reason: "lost" },
  { kind: "end", reason: "error", error: { code: "worker_lost", message: "gone" }, usage: { prompt_tokens: 1, completion_tokens: 2 } },
];

test("what our writers store: seq and kind read without parsing; the frame parses on demand, equal to JSON.parse", () => {
  for (const [i, event] of EVENTS.entries()) {
    const raw = encodeEventFrame(rid, i + 1, event);
    const e = decodeEvent(bytes(raw), 40 + i);
    assert.ok(e, raw);
    assert.equal(e.raw, raw);
    assert.equal(e.seq, i + 1);
    assert.equal(e.kind, event.kind);
    assert.equal(e.streamSeq, 40 + i);
    assert.deepEqual(e.frame, JSON.parse(raw));
  }
  const big = decodeEvent(bytes(encodeEventFrame(rid, 123456789012, { kind: "token", text: "x" })));
  assert.equal(big?.seq, 123456789012);
});

test("other shapes of an event frame go through JSON.parse; kinds it does not know are kept", () => {
  const reordered = '{"seq":7,"type":"event","event":{"text":"a","kind":"token"},"rid":"abcdefgh"}';
  assert.equal(decodeEvent(bytes(reordered))?.seq, 7);
  assert.equal(decodeEvent(bytes(reordered))?.kind, "token");
  const spaced = '{ "type": "event", "rid": "abcdefgh", "seq": 3, "event": { "kind": "later_kind" } }';
  assert.equal(decodeEvent(bytes(spaced))?.kind, "later_kind");
  const unknown = encodeEventFrame(rid, 5, { kind: "token", text: "t" }).replace('"kind":"token"', '"kind":"future"');
  assert.equal(decodeEvent(bytes(unknown))?.kind, "future");
});

test("anything that is not an event frame is null", () => {
  for (const raw of [
    "",
    "not json",
    "[]",
    "null",
    '{"type":"event","rid":"abcdefgh","seq":0,"event":{"kind":"token"}}',
    '{"type":"event","rid":"abcdefgh","seq":01,"event":{"kind":"token"}}',
    '{"type":"event","rid":"abcdefgh","seq":1.5,"event":{"kind":"token"}}',
    '{"type":"event","rid":"abcdefgh","seq":"1","event":{"kind":"token"}}',
    '{"type":"event","rid":"abcdefgh","seq":1,"event":{"kind":7}}',
    '{"type":"event","rid":"abcdefgh","seq":1,"event":{"kind":"tok',
    '{"type":"ok","rid":"abcdefgh","seq":1,"event":{"kind":"token"}}',
    '{"type":"event","rid":"abcdefgh","seq":1}',
  ]) {
    assert.equal(decodeEvent(bytes(raw)), null, raw);
  }
});
