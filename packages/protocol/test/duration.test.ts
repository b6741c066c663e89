import assert from "node:assert/strict";
import { test } from "node:test";
import { durationSchema, formatDuration, parseDuration } from "../src/duration.js";

test("parseDuration reads the documented forms", () => {
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("60s"), 60_000);
  assert.equal(parseDuration("5m"), 300_000);
  assert.equal(parseDuration("24h"), 86_400_000);
  assert.equal(parseDuration("1.5s"), 1_500);
  assert.equal(parseDuration("0s"), 0);
  assert.equal(parseDuration("7d"), 604_800_000);
  assert.equal(parseDuration("0.5ms"), 1); // rounded to whole milliseconds
});

test("parseDuration gives undefined for malformed input", () => {
  for (const bad of [
    "",
    "60",
    "s",
    "ms",
    "-5s",
    "+5s",
    "5 s",
    "5sec",
    "5S",
    "1e3ms",
    "5m30s",
    ".5s",
    "5.s",
    "abc",
    "NaNs",
    "Infinitys",
    "5w",
    "1,5s",
  ]) {
    assert.equal(parseDuration(bad), undefined, JSON.stringify(bad));
  }
});

test("durationSchema turns a duration into ms and names the bad text", () => {
  assert.equal(durationSchema.parse("5m"), 300_000);
  const r = durationSchema.safeParse("soon");
  assert.equal(r.success, false);
  if (!r.success) assert.match(r.error.issues[0]?.message ?? "", /soon/);
});

test("formatDuration round-trips through parseDuration", () => {
  for (const ms of [500, 1_000, 60_000, 300_000, 86_400_000, 1_500, 90_000]) {
    assert.equal(parseDuration(formatDuration(ms)), ms, formatDuration(ms));
  }
  assert.equal(formatDuration(86_400_000), "24h");
  assert.equal(formatDuration(60_000), "1m");
  assert.equal(formatDuration(500), "500ms");
});
