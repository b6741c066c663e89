import assert from "node:assert/strict";
import { test } from "node:test";
import { RID_PATTERN, isRid, newRid, ridSchema } from "../src/rid.js";

const VALID = ["abcdefgh", "ABCDEFGH", "12345678", "a_b-c_d-", "--------", "________", "x".repeat(64), "Zz09_-Zz09_-Zz09"];
const INVALID = [
  "",
  "abcdefg", // 7 chars
  "x".repeat(65),
  "abc.defgh",
  "llm.ev.abcdefgh",
  "abcdefg*",
  "abcdefg>",
  "abcd efgh",
  " abcdefgh",
  "abcdefgh ",
  "abcdefgh\n",
  "abcdéfgh",
  "abcd/efgh",
  "abcd:efgh",
  "abcd+efgh",
  "abcd\tefgh",
];

test("valid rids match the pattern, the schema and isRid", () => {
  for (const rid of VALID) {
    assert.equal(RID_PATTERN.test(rid), true, rid);
    assert.equal(isRid(rid), true, rid);
    assert.equal(ridSchema.safeParse(rid).success, true, rid);
  }
});

test("invalid rids (dots, *, >, spaces, 7 and 65 chars, other symbols) are refused", () => {
  for (const rid of INVALID) {
    assert.equal(RID_PATTERN.test(rid), false, JSON.stringify(rid));
    assert.equal(isRid(rid), false, JSON.stringify(rid));
    assert.equal(ridSchema.safeParse(rid).success, false, JSON.stringify(rid));
  }
});

test("isRid refuses non-strings", () => {
  for (const v of [undefined, null, 12345678, ["abcdefgh"], { rid: "abcdefgh" }]) assert.equal(isRid(v), false);
});

test("newRid matches the pattern and carries at least 96 random bits (>= 16 chars of 64 symbols)", () => {
  const rid = newRid();
  assert.match(rid, RID_PATTERN);
  assert.ok(rid.length >= 16, `length ${rid.length}`);
});

test("1000 newRids are distinct and all valid", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const r = newRid();
    assert.ok(isRid(r), r);
    seen.add(r);
  }
  assert.equal(seen.size, 1000);
  // All 64 symbols show up across 22 000 characters: the alphabet is used in full.
  const chars = new Set([...seen].join(""));
  assert.equal(chars.size, 64);
});
