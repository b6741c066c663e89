import { test } from "node:test";
import assert from "node:assert/strict";
import { Backoff, backoffDelay, backoffOptions, DEFAULT_BACKOFF } from "../src/backoff.js";

test("delays grow by factor from minDelayMs and are capped at maxDelayMs", () => {
  const o = backoffOptions({ minDelayMs: 100, maxDelayMs: 1000, factor: 2, jitter: 0 });
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 30].map((n) => backoffDelay(n, o)),
    [100, 200, 400, 800, 1000, 1000, 1000],
  );
});

test("jitter takes away at most its fraction of the delay", () => {
  const o = backoffOptions({ minDelayMs: 100, maxDelayMs: 5000, factor: 2, jitter: 0.5 });
  assert.equal(
    backoffDelay(1, o, () => 0),
    200,
  );
  assert.equal(
    backoffDelay(1, o, () => 0.999999),
    100,
  );
  assert.equal(
    backoffDelay(1, o, () => 0.5),
    150,
  );
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(3, o);
    assert.ok(d >= 400 && d <= 800, `delay ${d} out of [400, 800]`);
  }
});

test("defaults are 100 ms, 5 s, factor 2, jitter 0.5", () => {
  assert.deepEqual(DEFAULT_BACKOFF, { minDelayMs: 100, maxDelayMs: 5000, factor: 2, jitter: 0.5 });
  assert.deepEqual(backoffOptions(), DEFAULT_BACKOFF);
  assert.deepEqual(backoffOptions({ jitter: 7, factor: 0.5, minDelayMs: 50, maxDelayMs: 10 }), {
    minDelayMs: 50,
    maxDelayMs: 50,
    factor: 1,
    jitter: 1,
  });
  assert.throws(() => backoffOptions({ minDelayMs: -1 }), RangeError);
  assert.throws(() => backoffOptions({ factor: Number.NaN }), RangeError);
});

test("Backoff counts attempts and starts over after reset", () => {
  const b = new Backoff({ minDelayMs: 10, maxDelayMs: 100, jitter: 0 });
  assert.equal(b.attempt, 0);
  assert.deepEqual([b.next(), b.next(), b.next()], [10, 20, 40]);
  assert.equal(b.attempt, 3);
  b.reset();
  assert.equal(b.attempt, 0);
  assert.equal(b.next(), 10);
});
