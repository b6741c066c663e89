// The demo page in real headless Chromium when the network goes: offline emulation through the
// DevTools protocol, the page's Tunnel button, a reload mid-answer, and the answer's link opened in
// a second tab. Each time the page must end with exactly the text an uninterrupted reader got.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Page } from "playwright-core";
import type { EventFrame } from "@unbroken/protocol";
import { ENDED, WEB_ROOT, ask, launchChromium, openTab, screenshotPath, untilAnswer, type Chromium } from "../helpers/browser.js";
import { RawClient, range, seqs, textOf } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";

// 300 words at 40 tokens/s: 7.5 s, longer than a Tunnel (4 s) with room to spare.
const LONG = "Tell me about the sea in 300 words";

/** The connection indicator's state, and every state it showed since the page loaded. */
async function watchIndicator(page: Page): Promise<void> {
  await page.evaluate(() => {
    const el = document.getElementById("conn") as HTMLElement;
    const seen: string[] = [el.dataset.state ?? ""];
    (window as unknown as { seenStates: string[] }).seenStates = seen;
    new MutationObserver(() => {
      if (seen[seen.length - 1] !== el.dataset.state) seen.push(el.dataset.state ?? "");
    }).observe(el, { attributes: true, attributeFilter: ["data-state"] });
  });
}

const seenStates = (page: Page): Promise<string[]> => page.evaluate(() => (window as unknown as { seenStates: string[] }).seenStates);

describe("demo page in Chromium, across network cuts", () => {
  let stack: Stack;
  let chromium: Chromium;
  let base: string;
  let reader: RawClient;

  before(async () => {
    chromium = await launchChromium(); // first: without Chromium, fail at once with what to install
    stack = await Stack.start({ edgeEnv: { WEB_ROOT }, workerEnv: { SCRIPTED_TPS: "40" } });
    base = stack.url.replace(/^ws/, "http").replace(/\/v1\/ws$/, "");
    reader = await RawClient.connect(stack.url);
  });
  after(async () => {
    await chromium?.close();
    reader?.close();
    await stack?.stop();
  });

  /** The whole log of rid as an uninterrupted reader (RawClient) sees it. */
  async function reference(rid: string): Promise<EventFrame[]> {
    const id = `ref-${rid}`;
    reader.send({ type: "subscribe", id, rid, after: 0 });
    await reader.next((f) => f.id === id);
    const log = await reader.untilEnd(rid, 90_000);
    assert.deepEqual(seqs(log), range(1, log.length));
    return log;
  }

  /** Waits for the page's answer to end and checks it against the log: same text, same last seq. */
  async function sameAsLog(page: Page, rid: string): Promise<void> {
    const done = await untilAnswer(page, (a) => ENDED.has(a.state), "the end", 90_000);
    const log = await reference(rid);
    assert.equal(done.rid, rid);
    assert.equal(done.state, "done");
    assert.equal(done.text, textOf(log), "the page shows exactly the log's text: nothing lost, nothing twice");
    assert.equal(done.seq, log.length);
  }

  it("offline (DevTools network emulation) mid-answer, then back: the page resumes", async () => {
    const { page, errors } = await openTab(chromium, `${base}/`);
    await page.locator("#conn[data-state=connected]").waitFor();
    await watchIndicator(page);
    const rid = await ask(page, LONG);
    await untilAnswer(page, (a) => a.seq > 15, "15 events");
    const cdp = await chromium.context.newCDPSession(page);
    await cdp.send("Network.enable");
    const offline = { latency: 0, downloadThroughput: -1, uploadThroughput: -1 };
    await cdp.send("Network.emulateNetworkConditions", { offline: true, ...offline });
    // Emulated offline leaves the socket open but silent; the client takes the browser's
    // `offline` event as the loss (else missed heartbeats would tell, after 2 × HEARTBEAT).
    await page.locator("#conn[data-state=reconnecting]").waitFor({ timeout: 60_000 });
    assert.match((await page.getAttribute("#conn", "title")) ?? "", /offline/);
    const during = await untilAnswer(page, () => true, "the answer");
    assert.notEqual(during.state, "done", "cut mid-answer");
    await page.waitForTimeout(1500); // the generation goes on meanwhile
    await cdp.send("Network.emulateNetworkConditions", { offline: false, ...offline });
    await page.locator("#conn[data-state=resumed]").waitFor({ timeout: 60_000 });
    await sameAsLog(page, rid);
    assert.deepEqual((await seenStates(page)).slice(0, 3), ["connected", "reconnecting", "resumed"]);
    assert.deepEqual(
      errors.filter((e) => !/ERR_INTERNET_DISCONNECTED|WebSocket/.test(e)),
      [],
    );
    await page.close();
  });

  it("Tunnel button: the socket is cut for a few seconds, the page catches up and goes on", async () => {
    const { page, errors } = await openTab(chromium, `${base}/`);
    await page.locator("#conn[data-state=connected]").waitFor();
    await watchIndicator(page);
    const rid = await ask(page, LONG);
    await untilAnswer(page, (a) => a.seq > 15, "15 events");
    await page.click("#tunnel");
    await page.locator("#conn[data-state=reconnecting]").waitFor();
    const during = await untilAnswer(page, () => true, "the answer");
    assert.notEqual(during.state, "done", "cut mid-answer");
    await page.screenshot({ path: screenshotPath("browser-tunnel.png") });
    await page.locator("#conn[data-state=resumed]").waitFor({ timeout: 60_000 });
    const caught = Number(await page.getAttribute("#conn", "data-caught"));
    assert.ok(caught > 0, "events were caught up after the reconnect");
    await page.screenshot({ path: screenshotPath("browser-resumed.png") });
    await sameAsLog(page, rid);
    assert.deepEqual((await seenStates(page)).slice(0, 3), ["connected", "reconnecting", "resumed"]);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("reload mid-answer resumes the same response", async () => {
    const { page, errors } = await openTab(chromium, `${base}/`);
    const rid = await ask(page, LONG);
    const before = await untilAnswer(page, (a) => a.seq > 15, "15 events");
    await page.reload();
    const resumed = await untilAnswer(page, (a) => a.rid === rid && a.text.length > 0, "the answer after the reload");
    assert.ok(resumed.text.startsWith(before.text.slice(0, 20)));
    assert.equal(await page.locator("#log .turn.question").count(), 1, "the question is still there");
    await sameAsLog(page, rid);
    assert.equal(await page.locator("#log .turn.answer").count(), 1);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("the answer's link in a second tab replays it and follows live", async () => {
    const first = await openTab(chromium, `${base}/`);
    const rid = await ask(first.page, LONG);
    await untilAnswer(first.page, (a) => a.seq > 15, "15 events");
    const href = await first.page.locator("#log .turn.answer .share").last().getAttribute("href");
    assert.equal(href, `#r=${rid}`);
    const second = await openTab(chromium, `${base}/${href}`);
    const shown = await untilAnswer(second.page, (a) => a.seq > 0, "the replay");
    assert.equal(shown.rid, rid);
    assert.notEqual(shown.state, "done", "it follows live, not only the replay");
    await sameAsLog(second.page, rid);
    await sameAsLog(first.page, rid);
    assert.deepEqual([...first.errors, ...second.errors], []);
    await first.page.close();
    await second.page.close();
  });
});
