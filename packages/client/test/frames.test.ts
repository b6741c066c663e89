import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeServerFrame } from "../src/frames.js";

const RID = "abcdefgh12345678";

test("decodes the frames of protocol v1", () => {
  assert.deepEqual(decodeServerFrame('{"type":"welcome","protocol":1,"session":"s","heartbeat_ms":15000}'), {
    type: "welcome",
    protocol: 1,
    session: "s",
    heartbeat_ms: 15000,
  });
  assert.deepEqual(decodeServerFrame(`{"type":"accepted","id":"c1","rid":"${RID}","existing":false}`), {
    type: "accepted",
    id: "c1",
    rid: RID,
    existing: false,
  });
  assert.deepEqual(decodeServerFrame('{"type":"ok","id":"c2"}'), { type: "ok", id: "c2" });
  assert.deepEqual(decodeServerFrame('{"type":"pong"}'), { type: "pong" });
  assert.deepEqual(decodeServerFrame('{"type":"goaway"}'), { type: "goaway" });
  const ev = decodeServerFrame(`{"type":"event","rid":"${RID}","seq":1,"event":{"kind":"token","text":"hi"}}`);
  assert.deepEqual(ev, { type: "event", rid: RID, seq: 1, event: { kind: "token", text: "hi" } });
});

test("keeps events of unknown kinds, with their fields", () => {
  const f = decodeServerFrame(`{"type":"event","rid":"${RID}","seq":3,"event":{"kind":"handover","worker":"w2"}}`);
  assert.deepEqual(f, { type: "event", rid: RID, seq: 3, event: { kind: "handover", worker: "w2" } });
});

test("keeps error frames with codes it does not know", () => {
  assert.deepEqual(decodeServerFrame('{"type":"error","id":"c1","code":"brand_new","message":"m"}'), {
    type: "error",
    id: "c1",
    code: "brand_new",
    message: "m",
  });
  assert.deepEqual(decodeServerFrame('{"type":"error","code":"bad_request"}'), {
    type: "error",
    code: "bad_request",
    message: "bad_request",
  });
});

test("ignores what it cannot read: unknown types, bad JSON, binary, malformed events", () => {
  for (const data of [
    '{"type":"future_thing"}',
    "not json",
    "[1,2]",
    "null",
    new Uint8Array([1, 2]),
    `{"type":"event","rid":"bad rid","seq":1,"event":{"kind":"token","text":"x"}}`,
    `{"type":"event","rid":"${RID}","seq":0,"event":{"kind":"token","text":"x"}}`,
    `{"type":"event","rid":"${RID}","seq":1,"event":{}}`,
    '{"type":"error","message":"no code"}',
  ]) {
    assert.equal(decodeServerFrame(data), undefined, String(data));
  }
});
