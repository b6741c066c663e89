// The AI SDK's `useChat` in real headless Chromium, the chat id being a thread (issue 13): a
// second browser (its own profile: no storage shared) that never saw the chat opens it with the
// messages `transport.threadMessages` loads and `resume: true`, and shows the running answer live.
// The page is test/helpers/ai-sdk-page.ts with `#t=<thread>`.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { newRid } from "@unbroken/client";
import type { UIMessage } from "ai";
import type { Page } from "playwright-core";
import { buildAiSdkPage, pageState, shownText, untilState } from "../helpers/ai-sdk-page.js";
import { endReason, logOf } from "../helpers/ai-sdk.js";
import { launchChromium, openTab, type Chromium } from "../helpers/browser.js";
import { textOf } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";

const textOfMessage = (m: UIMessage | undefined): string => (m?.parts ?? []).map((p) => (p.type === "text" ? p.text : "")).join("");

describe("useChat on a thread, in two Chromium profiles", () => {
  let stack: Stack;
  const browsers: Chromium[] = [];
  let site: { dir: string; remove: () => void };
  let base: string;

  before(async () => {
    browsers.push(await launchChromium()); // first: without Chromium, fail at once with what to install
    browsers.push(await launchChromium());
    site = await buildAiSdkPage();
    stack = await Stack.start({ edgeEnv: { WEB_ROOT: site.dir }, workerEnv: { SCRIPTED_TPS: "20" } });
    base = stack.url.replace(/^ws/, "http").replace(/\/v1\/ws$/, "");
  });
  after(async () => {
    await Promise.allSettled(browsers.map((b) => b.close()));
    await stack?.stop();
    site?.remove();
  });

  async function open(browser: Chromium, thread: string): Promise<{ page: Page; errors: string[] }> {
    const tab = await openTab(browser, `${base}/#t=${thread}`);
    await tab.page.locator("body[data-ready]").waitFor({ state: "attached" });
    return tab;
  }

  it("a browser that never saw the chat loads the conversation and shows the running answer live", async () => {
    const thread = newRid();
    const a = await open(browsers[0]!, thread);
    assert.deepEqual((await pageState(a.page)).loaded, [], "a new thread has no conversation yet");
    await a.page.evaluate(() => (window as unknown as { send: (t: string) => void }).send("write 120 words about harbours"));
    const started = await untilState(a.page, (s) => textOfMessage(s.messages[1]).length > 0, "the first words on A");
    const rid = started.rids[0] as string;

    const b = await open(browsers[1]!, thread);
    const live = await untilState(b.page, (s) => s.status === "streaming" && textOfMessage(s.messages.at(-1)).length > 0, "B streaming");
    assert.deepEqual(
      live.loaded.map((m) => [m.role, textOfMessage(m)]),
      [["user", "write 120 words about harbours"]],
      "B loaded the user message; the running answer is left to resume",
    );
    const shownLive = await shownText(b.page);
    const doneB = await untilState(b.page, (s) => s.status === "ready" && s.messages.length === 2, "B's answer to end");
    const log = await logOf(stack.url, rid);
    assert.equal(endReason(log), "stop");
    assert.ok(shownLive.length < textOf(log).length, "B showed the answer while it ran");
    assert.ok(doneB.rendered.length > 1, "B rendered the answer as it streamed, not once at the end");
    assert.equal(doneB.messages[1]?.id, rid);
    assert.equal(textOfMessage(doneB.messages[1]), textOf(log));
    assert.equal(await shownText(b.page), textOf(log), "React on B rendered the whole answer");
    // The page's `rids` are what its store was given: the answer found, kept as the cache.
    assert.deepEqual(doneB.rids, [rid], "B's store holds the answer it resumed, and B started none");

    // Opened again after the end: the whole conversation is loaded, nothing is resumed.
    const c = await open(browsers[1]!, thread);
    const s = await untilState(c.page, (st) => st.status === "ready", "C ready");
    assert.deepEqual(
      s.loaded.map((m) => [m.role, textOfMessage(m)]),
      [
        ["user", "write 120 words about harbours"],
        ["assistant", textOf(log)],
      ],
    );
    assert.deepEqual(s.rendered, [], "nothing was resumed");
    const doneA = await untilState(a.page, (st) => st.status === "ready", "A's answer to end");
    assert.equal(textOfMessage(doneA.messages[1]), textOf(log));
    for (const tab of [a, b, c]) assert.deepEqual(tab.errors, []);
  });
});
