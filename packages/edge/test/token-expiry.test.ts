import assert from "node:assert/strict";
import { test } from "node:test";
import { TokenExpiry } from "../src/token-expiry.js";

const nextTurn = (ms = 0) => new Promise((r) => setTimeout(r, ms));

test("no exp: never expired, never called back", async () => {
  let calls = 0;
  const e = new TokenExpiry(undefined, () => calls++);
  await nextTurn(5);
  assert.equal(e.expired(), false);
  assert.equal(calls, 0);
  e.clear();
});

test("at exp: expired, and called back once, never from the constructor", async () => {
  let calls = 0;
  const e = new TokenExpiry(Date.now() + 30, () => calls++);
  assert.equal(e.expired(), false);
  const past = new TokenExpiry(Date.now() - 1, () => calls++);
  assert.equal(calls, 0, "not from the constructor");
  assert.equal(past.expired(), true);
  for (let i = 0; i < 100 && calls < 2; i++) await nextTurn(10);
  assert.equal(calls, 2);
  assert.equal(e.expired(), true);
  await nextTurn(40);
  assert.equal(calls, 2, "once each");
});

test("clear(): no callback after it", async () => {
  let calls = 0;
  const e = new TokenExpiry(Date.now() + 5, () => calls++);
  e.clear();
  await nextTurn(40);
  assert.equal(calls, 0);
});

test("an exp beyond setTimeout's range (25 days) is not called back at once", async () => {
  let calls = 0;
  const e = new TokenExpiry(Date.now() + 30 * 86_400_000, () => calls++);
  await nextTurn(20);
  assert.equal(calls, 0, "setTimeout would have fired after 1 ms had the delay overflowed");
  e.clear();
});

test("expired() follows the clock it is given", () => {
  let now = 1_000;
  const e = new TokenExpiry(
    2_000,
    () => undefined,
    () => now,
  );
  assert.equal(e.expired(), false);
  now = 2_000;
  assert.equal(e.expired(), true);
  e.clear();
});
