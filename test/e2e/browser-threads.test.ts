// The demo page's conversation is a thread (issue 13), in real headless Chromium: two browsers
// (two devices of one owner, each with its own profile) open the same `#t=<thread>` address and
// show the same conversation, the running answer live in both; a message sent from either shows
// in the other; Stop and Steer work from the page that did not ask; a tool round's results show
// on the other page's card; "New chat" gives a new address with an empty conversation.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Page } from "playwright-core";
import type { EventFrame } from "@unbroken/protocol";
import {
  ENDED,
  WEB_ROOT,
  answerOnPage,
  ask,
  launchChromium,
  openTab,
  screenshotPath,
  untilAnswer,
  type AnswerOnPage,
  type Chromium,
} from "../helpers/browser.js";
import { RawClient, range, seqs, textOf, type Frame } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";

// The scripted generator reads the length from the first "<n> words" in the whole conversation:
// the first question names none (60 to 200 tokens), the second 300 (at 40 tokens/s, several
// seconds of streaming, for the second page to join), and later ones inherit it.
const FIRST = "Tell me about owls";
const LONG = "Tell me about the sea in 300 words";

/** The thread the page's address names (`#t=<thread>`). */
function threadOf(page: Page): string {
  const m = /^#t=([A-Za-z0-9_-]{8,64})$/.exec(new URL(page.url()).hash);
  assert.ok(m, `the address names a thread: ${page.url()}`);
  return m[1] as string;
}

/** What the page shows of its conversation: questions and answers, in page order. */
function conversationOf(page: Page): Promise<Array<{ kind: "question" | "answer"; text: string; rid?: string }>> {
  return page.evaluate(() =>
    Array.from(document.querySelectorAll<HTMLElement>("#log .turn"), (el) =>
      el.classList.contains("question")
        ? { kind: "question" as const, text: el.textContent ?? "" }
        : {
            kind: "answer" as const,
            rid: el.dataset.rid ?? "",
            text: Array.from(el.querySelectorAll(".answer-body .seg"), (s) => s.textContent ?? "").join(""),
          },
    ),
  );
}

async function until<T>(get: () => Promise<T>, check: (v: T) => boolean, label: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (check(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}; last seen: ${JSON.stringify(v).slice(0, 600)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("demo page in Chromium: the conversation is a thread", () => {
  let stack: Stack;
  let deviceA: Chromium;
  let deviceB: Chromium;
  let base: string;
  let reader: RawClient;

  before(async () => {
    deviceA = await launchChromium(); // first: without Chromium, fail at once with what to install
    deviceB = await launchChromium();
    stack = await Stack.start({ edgeEnv: { WEB_ROOT }, workerEnv: { SCRIPTED_TPS: "40" } });
    base = stack.url.replace(/^ws/, "http").replace(/\/v1\/ws$/, "");
    reader = await RawClient.connect(stack.url);
  });
  after(async () => {
    await deviceA?.close();
    await deviceB?.close();
    reader?.close();
    await stack?.stop();
  });

  /** The whole log of rid as an uninterrupted reader sees it. */
  async function reference(rid: string): Promise<EventFrame[]> {
    const id = `ref-${rid}`;
    reader.send({ type: "subscribe", id, rid, after: 0 });
    await reader.next((f) => f.id === id);
    const log = await reader.untilEnd(rid, 90_000);
    assert.deepEqual(seqs(log), range(1, log.length));
    return log;
  }

  /** The thread's turns as the edge holds them, read by a follow from 0 (`count` of them). */
  async function turnsOf(thread: string, count: number): Promise<Frame[]> {
    const c = await RawClient.connect(stack.url);
    try {
      assert.equal((await c.request({ type: "follow", thread, after: 0 })).type, "ok");
      await c.next((f) => f.type === "turn" && f.seq === count, 30_000);
      await new Promise((r) => setTimeout(r, 300)); // a turn too many would show by now
      return c.frames.filter((f) => f.type === "turn");
    } finally {
      c.close();
    }
  }

  const ended = (page: Page, index = -1): Promise<AnswerOnPage> =>
    until(
      () => answerOnPage(page, index),
      (a): a is AnswerOnPage => a !== undefined && ENDED.has(a.state),
      `answer ${index} to end`,
      90_000,
    ) as Promise<AnswerOnPage>;

  it("a second device opens the thread's address: the conversation so far, the running answer live, messages both ways", async () => {
    const a = await openTab(deviceA, `${base}/`);
    await a.page.locator("#conn[data-state=connected]").waitFor();
    const thread = threadOf(a.page);

    const firstRid = await ask(a.page, FIRST);
    assert.equal((await ended(a.page)).state, "done");
    const longRid = await ask(a.page, LONG);
    await untilAnswer(a.page, (x) => x.rid === longRid && x.seq > 10, "A streaming");

    // B: the same address on another device, while A's answer streams.
    const b = await openTab(deviceB, `${base}/#t=${thread}`);
    const joined = await untilAnswer(
      b.page,
      (x) => x.rid === longRid && x.state === "streaming" && x.text.length > 0,
      "B shows the running answer",
    );
    const aThen = await answerOnPage(a.page);
    assert.equal(aThen?.state, "streaming", "A's answer is still streaming while B shows its tokens");
    await untilAnswer(
      b.page,
      (x) => x.seq > joined.seq && x.text.startsWith(joined.text) && x.state === "streaming",
      "B's answer grows live",
    );
    await b.page.screenshot({ path: screenshotPath("browser-thread-second-device.png") });

    const firstLog = await reference(firstRid);
    const longLog = await reference(longRid);
    const bDone = await ended(b.page);
    assert.equal(bDone.state, "done");
    assert.equal(bDone.text, textOf(longLog), "B's answer is exactly the log's text");
    assert.equal(bDone.seq, longLog.length);
    assert.equal((await ended(a.page)).text, textOf(longLog));
    assert.deepEqual(await conversationOf(b.page), [
      { kind: "question", text: FIRST },
      { kind: "answer", rid: firstRid, text: textOf(firstLog) },
      { kind: "question", text: LONG },
      { kind: "answer", rid: longRid, text: textOf(longLog) },
    ]);
    assert.equal(threadOf(b.page), thread, "B stays on the thread's address");

    // A message sent from B shows in A (and once in B: its own generate and its turn are one).
    const fromB = "Tell me about lakes";
    const bRid = await ask(b.page, fromB);
    await until(
      () => conversationOf(a.page),
      (c) => c.length === 6 && c[4]?.text === fromB && c[5]?.rid === bRid,
      "B's message in A",
    );
    const bLog = await reference(bRid);
    assert.equal((await ended(a.page)).text, textOf(bLog));
    assert.equal((await ended(b.page)).text, textOf(bLog));
    const expected = [
      { kind: "question", text: FIRST },
      { kind: "answer", rid: firstRid, text: textOf(firstLog) },
      { kind: "question", text: LONG },
      { kind: "answer", rid: longRid, text: textOf(longLog) },
      { kind: "question", text: fromB },
      { kind: "answer", rid: bRid, text: textOf(bLog) },
    ];
    assert.deepEqual(await conversationOf(a.page), expected);
    assert.deepEqual(await conversationOf(b.page), expected);

    // The thread holds one turn per generate: B's message went with A's conversation as history.
    const turns = await turnsOf(thread, 3);
    assert.deepEqual(
      turns.map((t) => [t.seq, t.rid, t.messages]),
      [
        [1, firstRid, [{ role: "user", content: FIRST }]],
        [2, longRid, [{ role: "user", content: LONG }]],
        [3, bRid, [{ role: "user", content: fromB }]],
      ],
    );

    // New chat in A: a new address, an empty conversation; Back returns to the thread.
    await a.page.click("#new");
    await a.page.waitForURL((u) => u.hash !== `#t=${thread}`);
    const fresh = threadOf(a.page);
    assert.notEqual(fresh, thread);
    assert.deepEqual(await conversationOf(a.page), []);
    assert.equal(await a.page.locator("body.empty").count(), 1, "the intro shows again");
    await a.page.reload();
    assert.equal(threadOf(a.page), fresh, "a reload stays on the new thread");
    await a.page.locator("#conn[data-state=connected]").waitFor();
    assert.deepEqual(await conversationOf(a.page), []);
    await a.page.goBack();
    // Back rebuilds the conversation from the thread: its answers show once replayed.
    const back = await until(
      () => conversationOf(a.page),
      (c) => JSON.stringify(c) === JSON.stringify(expected),
      "the thread again after Back, its answers replayed",
    );
    assert.equal(threadOf(a.page), thread);
    assert.deepEqual(back, expected);
    assert.deepEqual(await conversationOf(b.page), expected, "B is untouched");
    assert.deepEqual([...a.errors, ...b.errors], []);
    await a.page.close();
    await b.page.close();
  });

  it("Steer and Stop from the device that did not ask act on the running answer, and both show it", async () => {
    const a = await openTab(deviceA, `${base}/`);
    await a.page.locator("#conn[data-state=connected]").waitFor();
    const thread = threadOf(a.page);
    const rid = await ask(a.page, "Tell me about forests in 800 words");
    const b = await openTab(deviceB, `${base}/#t=${thread}`);
    await untilAnswer(b.page, (x) => x.rid === rid && x.text.split(" ").length > 10, "B shows 10 words");
    await b.page.fill("#steer-text", "talk about bridges");
    await b.page.click("#steer-send");
    const steered = await untilAnswer(a.page, (x) => x.steers.length === 1, "the steer marker in A");
    assert.match(steered.steers[0] as string, /talk about bridges/);
    await untilAnswer(b.page, (x) => x.steers.length === 1, "the steer marker in B");
    await untilAnswer(a.page, (x) => x.seq > steered.seq + 10, "10 events after the steer");
    await b.page.click("#stop");
    const log = await reference(rid);
    const end = log.at(-1)?.event;
    assert.equal(end?.kind === "end" && end.reason, "cancelled");
    for (const page of [a.page, b.page]) {
      const stopped = await ended(page);
      assert.equal(stopped.state, "stopped");
      assert.deepEqual(stopped.endMarks, ["■ stopped"]);
      assert.equal(stopped.text, textOf(log));
      assert.equal(await page.locator("#steer").isHidden(), true, "the composer is back to asking");
    }
    assert.deepEqual([...a.errors, ...b.errors], []);
    await a.page.close();
    await b.page.close();
  });

  it("a tool round: the page that asked runs the tool; the other shows the result on the card from the thread, and sends nothing", async () => {
    const a = await openTab(deviceA, `${base}/`);
    await a.page.locator("#conn[data-state=connected]").waitFor();
    const thread = threadOf(a.page);
    const callRid = await ask(a.page, "What time is it? Use get_time, and answer in 5 words");
    const b = await openTab(deviceB, `${base}/#t=${thread}`);
    const cards = (page: Page) =>
      page.evaluate(() =>
        Array.from(document.querySelectorAll<HTMLElement>("#log .tool-card"), (c) => ({
          state: c.dataset.state ?? "",
          result: c.querySelector(".tool-result")?.textContent ?? "",
        })),
      );
    for (const page of [a.page, b.page])
      await until(
        () => conversationOf(page),
        (c) => c.length === 3,
        "the answer after the call",
      );
    const after = await ended(a.page);
    assert.notEqual(after.rid, callRid);
    assert.equal((await ended(b.page)).text, after.text);
    const [cardA, cardB] = [await cards(a.page), await cards(b.page)];
    assert.equal(cardA.length, 1);
    assert.equal(cardA[0]?.state, "result");
    assert.deepEqual(cardB, cardA, "B's card shows the result A sent, from the thread");
    assert.ok(after.text.startsWith(`The result of get_time is ${cardA[0]?.result}.`), after.text.slice(0, 120));
    const turns = await turnsOf(thread, 2);
    assert.equal(turns.length, 2, "one follow-up turn: B did not answer the call too");
    assert.equal(turns[1]?.rid, after.rid);
    assert.deepEqual(
      ((turns[1]?.messages ?? []) as Frame[]).map((m) => [m.role, m.content]),
      [["tool", cardA[0]?.result]],
    );
    assert.deepEqual([...a.errors, ...b.errors], []);
    await a.page.close();
    await b.page.close();
  });
});
