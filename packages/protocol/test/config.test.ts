import assert from "node:assert/strict";
import { test } from "node:test";
import { z } from "zod";
import { envDuration, envInt, parseEnv } from "../src/config.js";

const schema = z.object({
  PORT: envInt(8787),
  CONCURRENCY: envInt(4, 1),
  RETENTION: envDuration("24h"),
  QUEUE_TIMEOUT: envDuration("60s"),
  NAME: z.string().default("anon"),
});

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof Error);
    return err;
  }
  assert.fail("expected an error");
}

test("defaults apply when variables are unset", () => {
  assert.deepEqual(parseEnv(schema, {}, "test"), {
    PORT: 8787,
    CONCURRENCY: 4,
    RETENTION: 86_400_000,
    QUEUE_TIMEOUT: 60_000,
    NAME: "anon",
  });
});

test("set variables are parsed", () => {
  const c = parseEnv(schema, { PORT: "0", CONCURRENCY: "16", RETENTION: "5m", QUEUE_TIMEOUT: "500ms", NAME: "w1" }, "test");
  assert.deepEqual(c, { PORT: 0, CONCURRENCY: 16, RETENTION: 300_000, QUEUE_TIMEOUT: 500, NAME: "w1" });
});

test("empty strings count as unset", () => {
  const c = parseEnv(schema, { PORT: "", CONCURRENCY: "", RETENTION: "", QUEUE_TIMEOUT: "", NAME: "" }, "test");
  assert.deepEqual(c, { PORT: 8787, CONCURRENCY: 4, RETENTION: 86_400_000, QUEUE_TIMEOUT: 60_000, NAME: "anon" });
  assert.equal(parseEnv(schema, { PORT: undefined }, "test").PORT, 8787);
});

test("unrelated variables are ignored", () => {
  assert.equal(parseEnv(schema, { PATH: "/bin", HOME: "/root" }, "test").PORT, 8787);
});

test("envInt refuses non-integers and values below min, naming the variable", () => {
  for (const [name, value] of [
    ["PORT", "abc"],
    ["PORT", "1.5"],
    ["PORT", "-1"],
    ["PORT", " "],
    ["CONCURRENCY", "0"],
  ] as const) {
    const err = errorOf(() => parseEnv(schema, { [name]: value }, "edge"));
    assert.match(err.message, /invalid edge configuration/);
    assert.match(err.message, new RegExp(`\\b${name}: `), err.message);
    assert.ok(err.message.includes(JSON.stringify(value)), err.message);
  }
  assert.equal(parseEnv(schema, { CONCURRENCY: "1" }, "t").CONCURRENCY, 1);
});

test("envDuration refuses malformed durations, naming the variable and the text", () => {
  const err = errorOf(() => parseEnv(schema, { RETENTION: "forever" }, "worker"));
  assert.match(err.message, /invalid worker configuration/);
  assert.match(err.message, /RETENTION: /);
  assert.match(err.message, /forever/);
  assert.doesNotMatch(err.message, /QUEUE_TIMEOUT/);
});

test("every bad variable is reported, not only the first", () => {
  const err = errorOf(() => parseEnv(schema, { PORT: "x", QUEUE_TIMEOUT: "10" }, "edge"));
  assert.match(err.message, /PORT: /);
  assert.match(err.message, /QUEUE_TIMEOUT: /);
});

test("envInt and envDuration work as standalone schemas", () => {
  assert.equal(envInt(3).parse(undefined), 3);
  assert.equal(envInt(3).parse("12"), 12);
  assert.equal(envDuration("1s").parse(undefined), 1_000);
  assert.equal(envDuration("1s").parse("2h"), 7_200_000);
  assert.equal(envInt(3, 5).safeParse("4").success, false);
});
