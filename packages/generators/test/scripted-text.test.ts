import assert from "node:assert/strict";
import { test } from "node:test";
import { prng } from "../src/prng.js";
import { ScriptedText, naturalLength } from "../src/scripted-text.js";

const WORDLIKE = /^(\n\n| )?[A-Za-z]+[.,;!?]?$/;

function take(t: ScriptedText, n: number): string[] {
  return Array.from({ length: n }, () => t.next());
}

test("the same seed gives the same token sequence", () => {
  assert.deepEqual(take(new ScriptedText(42), 300), take(new ScriptedText(42), 300));
});

test("a different seed gives a different sequence", () => {
  const a = take(new ScriptedText(42), 50);
  const b = take(new ScriptedText(43), 50);
  assert.notDeepEqual(a, b);
  // Not merely a shifted copy: most positions differ.
  const same = a.filter((tok, i) => tok === b[i]).length;
  assert.ok(same < 25, `${same} of 50 tokens coincide`);
});

test("tokens look like words; the first has no leading space and starts a sentence", () => {
  for (const seed of [1, 2, 3, 0xdeadbeef]) {
    const toks = take(new ScriptedText(seed), 500);
    for (const tok of toks) assert.match(tok, WORDLIKE);
    const first = toks[0] as string;
    assert.ok(!first.startsWith(" ") && !first.startsWith("\n"), JSON.stringify(first));
    assert.match(first, /^[A-Z]/);
    for (const tok of toks.slice(1)) assert.ok(tok.startsWith(" ") || tok.startsWith("\n\n"), JSON.stringify(tok));
    // Prose, not one repeated word: a real spread of words and some sentence ends.
    assert.ok(new Set(toks.map((t) => t.trim().toLowerCase())).size > 50);
    assert.ok(toks.some((t) => /[.!?]$/.test(t)));
  }
});

test("a word after a sentence end is capitalized", () => {
  const toks = take(new ScriptedText(7), 1000);
  for (let i = 1; i < toks.length; i++) {
    if (/[.!?]$/.test(toks[i - 1] as string)) assert.match(toks[i] as string, /^(\n\n| )[A-Z]/);
  }
});

test("steer changes what follows, deterministically, and weaves its words in", () => {
  const base = new ScriptedText(99);
  const prefix = take(base, 10);
  const unsteered = take(base, 100);

  const runSteered = () => {
    const t = new ScriptedText(99);
    const p = take(t, 10);
    t.steer("talk about cats");
    return { p, after: take(t, 100) };
  };
  const s1 = runSteered();
  const s2 = runSteered();
  assert.deepEqual(s1.p, prefix);
  assert.notDeepEqual(s1.after, unsteered);
  assert.deepEqual(s1.after, s2.after);
  assert.ok(s1.after.join("").includes("cats"), "the instruction's words should appear after the steer");
  for (const tok of s1.after) assert.match(tok, WORDLIKE);
});

test("naturalLength honours 'write N words' / 'N tokens'", () => {
  const r = prng(1);
  assert.equal(naturalLength("write 300 words", r), 300);
  assert.equal(naturalLength("Please WRITE 42 Words about rivers", r), 42);
  assert.equal(naturalLength("give me 7 tokens", r), 7);
  assert.equal(naturalLength("write 0 words", r), 1);
  assert.equal(naturalLength("write 99999 words", r), 20_000);
});

test("naturalLength without a request is 60..200", () => {
  const r = prng(5);
  const seen = new Set<number>();
  for (let i = 0; i < 500; i++) {
    const n = naturalLength("tell me about rivers", r);
    assert.ok(Number.isInteger(n) && n >= 60 && n <= 200, String(n));
    seen.add(n);
  }
  assert.ok(seen.size > 20);
});
