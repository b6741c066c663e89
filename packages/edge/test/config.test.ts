import assert from "node:assert/strict";
import { test } from "node:test";
import { edgeConfigFromEnv } from "../src/config.js";

test("ORPHAN_TIMEOUT, and WORKER_TIMEOUT as its deprecated alias (with a warning)", () => {
  assert.equal(edgeConfigFromEnv({}).orphanTimeoutMs, 30_000);
  assert.deepEqual(edgeConfigFromEnv({}).warnings, []);
  assert.equal(edgeConfigFromEnv({ ORPHAN_TIMEOUT: "5s" }).orphanTimeoutMs, 5_000);
  const old = edgeConfigFromEnv({ WORKER_TIMEOUT: "7s" });
  assert.equal(old.orphanTimeoutMs, 7_000);
  assert.match(old.warnings.join("\n"), /WORKER_TIMEOUT is deprecated: set ORPHAN_TIMEOUT/);
});

test("DRAIN_TIMEOUT is one variable: the edge's default is 10 s", () => {
  assert.equal(edgeConfigFromEnv({}).drainTimeoutMs, 10_000);
  assert.equal(edgeConfigFromEnv({ DRAIN_TIMEOUT: "2s" }).drainTimeoutMs, 2_000);
});

test("PORT unset may fall back to a free port when 8787 is taken; a PORT that is set may not", () => {
  assert.equal(edgeConfigFromEnv({}).portIsDefault, true);
  assert.equal(edgeConfigFromEnv({ PORT: "" }).portIsDefault, true);
  assert.equal(edgeConfigFromEnv({ PORT: "8787" }).portIsDefault, false);
});
