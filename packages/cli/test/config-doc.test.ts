import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { edgeEnvSchema } from "@unbroken/edge";
import { workerEnvSchema } from "@unbroken/worker";
import { configDoc } from "../src/config-doc.js";

const DOC = fileURLToPath(new URL("../../../../docs/configuration.md", import.meta.url));

test("docs/configuration.md is what the declarations generate (run `node scripts/config-doc.mjs` after changing a variable)", () => {
  assert.equal(readFileSync(DOC, "utf8"), configDoc());
});

test("every variable edge and worker read is documented, each name once", () => {
  const doc = configDoc();
  for (const name of [...Object.keys(edgeEnvSchema.shape), ...Object.keys(workerEnvSchema.shape)]) {
    assert.equal(doc.split(`| \`${name}\` |`).length - 1, 1, `${name} is documented exactly once`);
  }
});
