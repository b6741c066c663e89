import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ProtocolError } from "@unbroken/protocol";
import { FrameBucket, SteerCounts, StreamBudget, streamClient } from "../src/budgets.js";

const refused = (variable: string) => (e: unknown) =>
  e instanceof ProtocolError && e.code === "rate_limited" && e.message.includes(variable);

describe("StreamBudget", () => {
  test("per client key and per address; the error names the variable; a slot is released once", () => {
    const b = new StreamBudget(2, 3);
    const alice = { key: "o:alice", address: "10.0.0.1" };
    const a1 = b.open(alice);
    b.open(alice);
    assert.throws(() => b.open(alice), refused("MAX_STREAMS_PER_OWNER"));
    const bob = { key: "o:bob", address: "10.0.0.1" };
    b.open(bob);
    assert.throws(() => b.open(bob), refused("MAX_STREAMS_PER_ADDRESS"), "the address is full though bob is not");
    assert.doesNotThrow(() => b.open({ key: "o:bob", address: "10.0.0.2" }), "another address has its own count");
    a1.release();
    a1.release();
    assert.equal(b.count("o:alice"), 1, "a second release frees nothing more");
    assert.equal(b.countAddress("10.0.0.1"), 2);
    assert.doesNotThrow(() => b.open(alice));
    assert.doesNotThrow(() => b.open(alice, true), "a replacement is not checked: the stream it replaces closes");
  });

  test("counts that drop to zero are forgotten", () => {
    const b = new StreamBudget(1, 1);
    const slot = b.open({ key: "o:x", address: "a" });
    slot.release();
    assert.equal(b.count("o:x"), 0);
    assert.equal(b.countAddress("a"), 0);
    assert.doesNotThrow(() => b.open({ key: "o:x", address: "a" }));
  });

  test("an owner counts under its name, a response-scoped token under its rid", () => {
    assert.deepEqual(streamClient({ kind: "owner", owner: "ann" }, "a"), { key: "o:ann", address: "a" });
    const cap = {
      kind: "capability" as const,
      rid: "r".repeat(8),
      createdAt: 0,
      scope: new Set(["read" as const]),
      expiresAt: 0,
      sub: undefined,
    };
    assert.equal(streamClient(cap, "a").key, `r:${"r".repeat(8)}`);
  });
});

test("FrameBucket: a burst, then FRAME_RATE per second, never more than the burst", () => {
  let now = 0;
  const f = new FrameBucket(10, 3, () => now);
  assert.deepEqual([f.take(), f.take(), f.take(), f.take()], [true, true, true, false]);
  now += 99;
  assert.equal(f.take(), false);
  now += 1;
  assert.equal(f.take(), true);
  now += 60_000;
  assert.deepEqual([f.take(), f.take(), f.take(), f.take()], [true, true, true, false]);
});

test("SteerCounts: counts per rid, forgets an ended response, sweeps counts idle for an hour", () => {
  let now = 0;
  const s = new SteerCounts(() => now);
  s.add("r1", 1);
  s.add("r1", 1);
  assert.equal(s.get("r1"), 2);
  s.add("r1", -1);
  assert.equal(s.get("r1"), 1);
  s.forget("r1");
  assert.equal(s.get("r1"), 0);
  for (let i = 0; i < 1_000; i++) s.add(`k${i}`, 1);
  now += 3_600_000;
  s.add("fresh", 1);
  assert.equal(s.size, 1);
});
