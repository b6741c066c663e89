import assert from "node:assert/strict";
import { test } from "node:test";
import { workerConfigFromEnv } from "../src/config.js";

test("CONCURRENCY defaults to what each backend fits; a set value wins", () => {
  assert.equal(workerConfigFromEnv({}).concurrency, 256, "scripted");
  assert.equal(workerConfigFromEnv({ OPENAI_BASE_URL: "http://127.0.0.1:8000/v1" }).concurrency, 256, "openai");
  assert.equal(workerConfigFromEnv({ MODEL_PATH: "/models/x.gguf" }).concurrency, 4, "llama");
  assert.equal(workerConfigFromEnv({ MODEL_PATH: "/models/x.gguf", CONCURRENCY: "2" }).concurrency, 2);
  assert.throws(() => workerConfigFromEnv({ CONCURRENCY: "0" }), /CONCURRENCY/);
});

test("TAKEOVER_TIMEOUT, and WORKER_TIMEOUT as its deprecated alias (with a warning)", () => {
  assert.equal(workerConfigFromEnv({}).takeoverTimeoutMs, 10_000);
  assert.deepEqual(workerConfigFromEnv({}).warnings, []);
  assert.equal(workerConfigFromEnv({ TAKEOVER_TIMEOUT: "4s" }).takeoverTimeoutMs, 4_000);
  const old = workerConfigFromEnv({ WORKER_TIMEOUT: "3s" });
  assert.equal(old.takeoverTimeoutMs, 3_000);
  assert.match(old.warnings.join("\n"), /WORKER_TIMEOUT is deprecated: set TAKEOVER_TIMEOUT/);
  const both = workerConfigFromEnv({ WORKER_TIMEOUT: "3s", TAKEOVER_TIMEOUT: "4s" });
  assert.equal(both.takeoverTimeoutMs, 4_000, "the new name wins");
  assert.match(both.warnings.join("\n"), /ignored/);
});

test("MODELS_DIR is read through the schema; the generator follows the variables set", () => {
  const c = workerConfigFromEnv({ MODEL: "hf:someone/some-model", MODELS_DIR: "/var/models" });
  assert.equal(c.generator, "llama");
  assert.equal(c.llama.modelsDir, "/var/models");
  assert.equal(workerConfigFromEnv({}).generator, "scripted");
  assert.throws(() => workerConfigFromEnv({ GENERATOR: "openai" }), /OPENAI_BASE_URL/);
});
