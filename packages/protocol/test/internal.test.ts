import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { workRequestSchema, type ResponseRecord } from "../src/index.js";

const record = (rid: string): ResponseRecord => ({
  v: 1,
  rid,
  owner: "anonymous",
  status: "queued",
  created_at: "2026-12-02T18:00:00.000Z",
  request: { prompt: "hello" },
  steers: [],
  epoch: 0,
});

describe("workRequestSchema", () => {
  test("takes a bare rid (older edges) and a rid with its record and revision", () => {
    assert.deepEqual(workRequestSchema.parse({ rid: "abcdefgh1234" }), { rid: "abcdefgh1234" });
    const full = { rid: "abcdefgh1234", record: record("abcdefgh1234"), revision: 7 };
    assert.deepEqual(workRequestSchema.parse(full), full);
  });

  test("refuses a record of another rid, a record without its revision, and a bad rid", () => {
    assert.equal(workRequestSchema.safeParse({ rid: "abcdefgh1234", record: record("zzzzzzzz9999"), revision: 7 }).success, false);
    assert.equal(workRequestSchema.safeParse({ rid: "abcdefgh1234", record: record("abcdefgh1234") }).success, false);
    assert.equal(workRequestSchema.safeParse({ rid: "abcdefgh1234", revision: 0 }).success, false);
    assert.equal(workRequestSchema.safeParse({ rid: "a.b.c.d.e" }).success, false);
  });
});
