// The demo page's typed answers in real headless Chromium: reasoning as a collapsible
// "thinking" part, a tool call as a card, the page's get_time tool run and its result sent back
// in a new generate, and a Tunnel in the middle of the call's argument stream.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Page } from "playwright-core";
import type { EventFrame } from "@unbroken/protocol";
import { WEB_ROOT, launchChromium, openTab, screenshotPath, type Chromium } from "../helpers/browser.js";
import { RawClient, range, seqs, textOf } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";

const QUESTION = "What time is it? Use get_time, and answer in 5 words";

/** One answer article as the page shows it: its parts in order, the card, the thinking part. */
interface TypedAnswer {
  rid: string;
  state: string;
  seq: number;
  /** Each part's kind, in page order: text, thinking, tool, steer. */
  kinds: string[];
  text: string;
  thinking: string[];
  thinkingOpen: boolean[];
  cards: { name: string; args: string; state: string; result: string; resultShown: boolean }[];
}

function answersOnPage(page: Page): Promise<TypedAnswer[]> {
  return page.evaluate(() =>
    Array.from(document.querySelectorAll<HTMLElement>("#log .turn.answer"), (el) => {
      const body = el.querySelector(".answer-body") as HTMLElement;
      const kind = (n: Element): string =>
        n.classList.contains("seg")
          ? "text"
          : n.classList.contains("thinking")
            ? "thinking"
            : n.classList.contains("tool-card")
              ? "tool"
              : n.classList.contains("steer-mark")
                ? "steer"
                : "";
      const q = (n: Element, sel: string): string => n.querySelector(sel)?.textContent ?? "";
      return {
        rid: el.dataset.rid ?? "",
        state: el.dataset.state ?? "",
        seq: Number(el.dataset.seq ?? 0),
        kinds: Array.from(body.children, kind).filter((k) => k !== ""),
        text: Array.from(body.querySelectorAll(".seg"), (s) => s.textContent ?? "").join(""),
        thinking: Array.from(body.querySelectorAll(".thinking"), (t) => q(t, ".thinking-text")),
        thinkingOpen: Array.from(body.querySelectorAll<HTMLDetailsElement>(".thinking"), (t) => t.open),
        cards: Array.from(body.querySelectorAll<HTMLElement>(".tool-card"), (c) => ({
          name: q(c, ".tool-name"),
          args: q(c, ".tool-args"),
          state: c.dataset.state ?? "",
          result: q(c, ".tool-result"),
          resultShown: !(c.querySelector(".tool-result") as HTMLElement).hidden,
        })),
      };
    }),
  );
}

async function until(page: Page, check: (a: TypedAnswer[]) => boolean, label: string, timeoutMs = 60_000): Promise<TypedAnswer[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const a = await answersOnPage(page);
    if (check(a)) return a;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}; last seen: ${JSON.stringify(a).slice(0, 600)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const reasoningOf = (log: EventFrame[]): string => log.map((f) => (f.event.kind === "reasoning" ? f.event.text : "")).join("");
const doneArguments = (log: EventFrame[]): string[] => log.flatMap((f) => (f.event.kind === "tool_done" ? [f.event.arguments] : []));
const endReason = (log: EventFrame[]): string | undefined => {
  const last = log.at(-1)?.event;
  return last?.kind === "end" ? last.reason : undefined;
};

/** A stack serving the page, at `tps` scripted tokens per second, and a reader of whole logs. */
function pageFixture(tps: string): { base: () => string; chromium: () => Chromium; reference: (rid: string) => Promise<EventFrame[]> } {
  let stack: Stack;
  let chromium: Chromium;
  let base: string;
  let reader: RawClient;
  before(async () => {
    chromium = await launchChromium(); // first: without Chromium, fail at once with what to install
    stack = await Stack.start({ edgeEnv: { WEB_ROOT }, workerEnv: { SCRIPTED_TPS: tps } });
    base = stack.url.replace(/^ws/, "http").replace(/\/v1\/ws$/, "");
    reader = await RawClient.connect(stack.url);
  });
  after(async () => {
    await chromium?.close();
    reader?.close();
    await stack?.stop();
  });
  return {
    base: () => base,
    chromium: () => chromium,
    reference: async (rid) => {
      const id = `ref-${rid}`;
      reader.send({ type: "subscribe", id, rid, after: 0 });
      await reader.next((f) => f.id === id);
      const log = await reader.untilEnd(rid, 90_000);
      assert.deepEqual(seqs(log), range(1, log.length));
      return log;
    },
  };
}

async function askQuestion(page: Page, question: string): Promise<void> {
  await page.locator("#conn[data-state=connected]").waitFor();
  await page.fill("#prompt", question);
  await page.click("#send");
}

describe("demo page in Chromium: reasoning and a tool call", () => {
  const fx = pageFixture("60");

  it("a question naming get_time: thinking, the card, the page's result, then the answer that goes on", async () => {
    const { page, errors } = await openTab(fx.chromium(), `${fx.base()}/`);
    await page.check("#think");
    await askQuestion(page, QUESTION);
    const shown = await until(page, (a) => a.length === 2 && a[1]?.state === "done", "the answer after the call");
    await page.screenshot({ path: screenshotPath("browser-tool-call.png") });
    const [call, answer] = shown as [TypedAnswer, TypedAnswer];

    const first = await fx.reference(call.rid);
    assert.equal(endReason(first), "tool_calls");
    assert.equal(call.state, "called");
    assert.equal(call.seq, first.length);
    assert.deepEqual(call.kinds, ["thinking", "tool"]);
    assert.deepEqual(call.thinking, [reasoningOf(first)]);
    assert.deepEqual(call.thinkingOpen, [false], "thinking starts collapsed");
    const card = call.cards[0];
    assert.equal(card?.name, "get_time");
    assert.equal(card?.args, doneArguments(first)[0]);
    assert.equal(card?.state, "result");
    assert.equal(card?.resultShown, true);
    const result = JSON.parse(card?.result ?? "") as { time: string; timezone: string };
    assert.equal(typeof result.time, "string");

    // The result went back as a tool message: the next answer begins with it, after its own thinking.
    const second = await fx.reference(answer.rid);
    assert.equal(endReason(second), "stop");
    assert.deepEqual(answer.kinds, ["thinking", "text"]);
    assert.equal(answer.text, textOf(second));
    assert.ok(answer.text.startsWith(`The result of get_time is ${card?.result}.`), answer.text.slice(0, 120));
    assert.equal(await page.locator("#steer").isHidden(), true, "the composer is back to asking");

    // Thinking opens on a click; a reload shows the same parts, from the thread: its turns
    // (the question, then the tool result on the card) and their answers' logs.
    await page.click(".turn.answer .thinking summary");
    assert.equal((await answersOnPage(page))[0]?.thinkingOpen[0], true);
    await page.reload();
    const again = await until(
      page,
      (a) => a.length === 2 && a[0]?.state === "called" && a[1]?.state === "done",
      "the answers after the reload",
    );
    assert.deepEqual(
      again.map((a) => [a.kinds, a.text, a.cards]),
      shown.map((a) => [a.kinds, a.text, a.cards]),
    );
    assert.equal((await page.locator("#log .turn.answer").count()) + (await page.locator("#log .turn.question").count()), 3);
    assert.deepEqual(errors, []);
    await page.close();
  });
});

describe("demo page in Chromium: a Tunnel in the middle of a tool call", () => {
  // Slow, so the Tunnel falls inside the call's argument stream.
  const fx = pageFixture("4");

  it("the card resumes intact (its arguments once), then the result and the answer", async () => {
    const { page, errors } = await openTab(fx.chromium(), `${fx.base()}/`);
    await askQuestion(page, QUESTION);
    const mid = await until(
      page,
      (a) => a[0]?.cards[0]?.state === "streaming" && (a[0]?.cards[0]?.args.length ?? 0) > 0,
      "arguments streaming",
    );
    await page.click("#tunnel");
    const cutAt = (await answersOnPage(page))[0]?.cards[0]?.args ?? "";
    await page.locator("#conn[data-state=reconnecting]").waitFor();
    await page.screenshot({ path: screenshotPath("browser-tool-tunnel.png") });
    await page.locator("#conn[data-state=resumed]").waitFor({ timeout: 60_000 });
    const shown = await until(page, (a) => a.length === 2 && a[1]?.state === "done", "the answer after the call", 120_000);
    const [call, answer] = shown as [TypedAnswer, TypedAnswer];

    const first = await fx.reference(call.rid);
    const args = doneArguments(first)[0] as string;
    assert.ok(mid[0]?.cards[0]?.args !== args && args.startsWith(cutAt) && cutAt !== args, `cut inside the arguments: ${cutAt}`);
    assert.equal(call.cards.length, 1, "one card");
    assert.equal(call.cards[0]?.args, args, "the arguments once, not twice");
    assert.equal(call.cards[0]?.state, "result");
    assert.equal(call.seq, first.length);
    const second = await fx.reference(answer.rid);
    assert.equal(answer.text, textOf(second));
    assert.ok(answer.text.startsWith(`The result of get_time is ${call.cards[0]?.result}.`));
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("a reload in the middle of the call: the card comes back from the thread and resumes intact, and the page still answers it", async () => {
    const { page, errors } = await openTab(fx.chromium(), `${fx.base()}/`);
    await askQuestion(page, QUESTION);
    await until(page, (a) => a[0]?.cards[0]?.state === "streaming" && (a[0]?.cards[0]?.args.length ?? 0) > 0, "arguments streaming");
    await page.reload();
    // Replayed from the answer's log (the thread names it), then live.
    const back = await until(page, (a) => (a[0]?.cards[0]?.args.length ?? 0) > 0, "the card after the reload");
    const shown = await until(page, (a) => a.length === 2 && a[1]?.state === "done", "the answer after the call", 120_000);
    const [call, answer] = shown as [TypedAnswer, TypedAnswer];
    const first = await fx.reference(call.rid);
    const args = doneArguments(first)[0] as string;
    assert.ok(args.startsWith(back[0]?.cards[0]?.args ?? "-"), "the replayed card is a prefix of the call");
    assert.equal(call.cards.length, 1, "one card");
    assert.equal(call.cards[0]?.args, args, "the arguments once, not twice");
    assert.equal(call.seq, first.length);
    assert.equal(answer.text, textOf(await fx.reference(answer.rid)));
    assert.ok(answer.text.startsWith(`The result of get_time is ${call.cards[0]?.result}.`));
    assert.deepEqual(errors, []);
    await page.close();
  });
});
