import assert from "node:assert/strict";
import { test } from "node:test";
import { KnownOwners } from "../src/known-owners.js";

test("remembers the last 10,000 rids' owners; a rid seen again is kept longest", () => {
  const owners = new KnownOwners();
  for (let i = 0; i < 10_000; i++) owners.set(`rid-${i}`, `owner-${i}`);
  owners.set("rid-0", "owner-0"); // seen again: now the newest
  owners.set("rid-new", "someone");
  assert.equal(owners.get("rid-0"), "owner-0");
  assert.equal(owners.get("rid-1"), undefined, "the oldest went");
  assert.equal(owners.get("rid-2"), "owner-2");
  assert.equal(owners.get("rid-new"), "someone");
});
