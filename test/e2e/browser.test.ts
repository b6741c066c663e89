// The demo page in real headless Chromium (Debian's package): streaming, Stop, Steer, and the
// minimal <script type="module"> example of docs/client.md ("The client in a page of your own").
// Network cuts, reload and a second tab are in browser-resume.test.ts.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
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
  type Chromium,
} from "../helpers/browser.js";
import { RawClient, textOf, tokenCount } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";
import { SignJWT } from "jose";
import type { Dialog } from "playwright-core";

describe("demo page in Chromium", () => {
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

  /** The response as an uninterrupted reader sees it: the whole log, read with RawClient. */
  async function reference(rid: string): Promise<EventFrame[]> {
    const id = `ref-${rid}`;
    reader.send({ type: "subscribe", id, rid, after: 0 });
    await reader.next((f) => f.id === id);
    return reader.untilEnd(rid, 90_000);
  }

  it("streams an answer into the page, equal to the log", async () => {
    const { page, errors } = await openTab(chromium, `${base}/`);
    await page.locator("#conn[data-state=connected]").waitFor();
    const rid = await ask(page, "Tell me about rivers in 300 words");
    const early = await untilAnswer(page, (a) => a.state === "streaming" && a.text.split(" ").length > 25, "25 words");
    await page.screenshot({ path: screenshotPath("browser-mid-stream.png") });
    // It keeps growing while it streams: the answer is not delivered in one piece at the end.
    await untilAnswer(page, (a) => a.seq > early.seq && a.text.startsWith(early.text), "more tokens");
    const done = await untilAnswer(page, (a) => ENDED.has(a.state), "the end");
    const log = await reference(rid);
    assert.equal(done.rid, rid);
    assert.equal(done.state, "done");
    assert.equal(done.text, textOf(log));
    assert.equal(done.seq, log.length);
    assert.deepEqual(done.endMarks, []);
    assert.equal(await page.locator("#steer").isHidden(), true, "the composer is back to asking");
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("Stop cancels: the page shows stopped and no token after it", async () => {
    const { page, errors } = await openTab(chromium, `${base}/`);
    const rid = await ask(page, "Tell me about glaciers in 800 words");
    await untilAnswer(page, (a) => a.text.split(" ").length > 10, "10 words");
    await page.click("#stop");
    const stopped = await untilAnswer(page, (a) => ENDED.has(a.state), "the end");
    const log = await reference(rid);
    const end = log.at(-1)?.event;
    assert.equal(end?.kind === "end" && end.reason, "cancelled");
    assert.equal(stopped.state, "stopped");
    assert.deepEqual(stopped.endMarks, ["■ stopped"]);
    assert.equal(stopped.afterEnd, "");
    assert.equal(stopped.text, textOf(log));
    assert.ok(tokenCount(log) < 700, "it stopped well before the end");
    // Nothing arrives later either.
    await page.waitForTimeout(500);
    assert.deepEqual(await answerOnPage(page), stopped);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("Steer: the marker shows inline where the steer event sits, and the continuation changes", async () => {
    const question = "Tell me about forests in 800 words";
    const { page, errors } = await openTab(chromium, `${base}/`);
    const rid = await ask(page, question);
    await untilAnswer(page, (a) => a.text.split(" ").length > 10, "10 words");
    await page.fill("#steer-text", "talk about bridges");
    await page.click("#steer-send");
    const steered = await untilAnswer(page, (a) => a.steers.length === 1, "the steer marker");
    assert.match(steered.steers[0] as string, /talk about bridges/);
    await untilAnswer(page, (a) => a.seq > steered.seq + 20, "20 events after the steer");
    await page.click("#stop");
    const final = await untilAnswer(page, (a) => ENDED.has(a.state), "the end");
    await page.setViewportSize({ width: 390, height: 760 }); // and how it looks on a phone
    await page.screenshot({ path: screenshotPath("browser-steered-narrow.png") });
    const log = await reference(rid);
    assert.equal(final.text, textOf(log));

    // The marker sits where the steer event is in the log: the text before it is the log's before it.
    const at = log.findIndex((e) => e.event.kind === "steer");
    assert.ok(at > 0, "the log has a steer event");
    const markerAt = await page.evaluate(() => {
      const body = document.querySelector("#log .turn.answer:last-of-type .answer-body") as HTMLElement;
      let text = "";
      for (const n of Array.from(body.children)) {
        if (n.classList.contains("steer-mark")) return text;
        if (n.classList.contains("seg")) text += n.textContent ?? "";
      }
      return undefined;
    });
    assert.equal(markerAt, textOf(log.slice(0, at)));

    // Against the same question unsteered (the scripted generator is deterministic): the same
    // up to the steer, different after it.
    // Compared as text: tokens may share events, and differently in each run (coalescing).
    const before = tokenCount(log.slice(0, at));
    const after = log.slice(at).filter((e) => e.event.kind === "token");
    const plain = await reader.request({
      type: "generate",
      messages: [{ role: "user", content: question }],
      params: { max_tokens: before + tokenCount(after) },
    });
    const unsteered = textOf(await reader.untilEnd(plain.rid as string, 90_000));
    const prefix = textOf(log.slice(0, at));
    assert.equal(unsteered.slice(0, prefix.length), prefix);
    assert.notEqual(unsteered.slice(prefix.length), textOf(after));
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("the README's minimal example works against the bundle the edge serves", async () => {
    const bundle = await fetch(`${base}/unbroken-client.js`);
    assert.equal(bundle.status, 200);
    assert.match(bundle.headers.get("content-type") ?? "", /javascript/);
    const question = "Tell me about lakes";
    const { page, errors } = await openTab(chromium, `${base}/minimal.html?q=${encodeURIComponent(question)}`);
    await page.locator("body[data-done]").waitFor({ timeout: 60_000 });
    const shown = await page.locator("#out").textContent();
    const same = await reader.request({ type: "generate", prompt: question });
    assert.equal(shown, textOf(await reader.untilEnd(same.rid as string, 90_000)));
    assert.equal(await page.getAttribute("body", "data-done"), "stop");
    assert.deepEqual(errors, []);
    await page.close();
  });
});

describe("demo page in Chromium with AUTH=jwt", () => {
  const secret = "browser-test-secret-browser-test-secret";
  let stack: Stack;
  let chromium: Chromium;
  let base: string;

  before(async () => {
    chromium = await launchChromium();
    stack = await Stack.start({ edgeEnv: { WEB_ROOT, AUTH: "jwt", JWT_SECRET: secret }, workerEnv: { SCRIPTED_TPS: "200" } });
    base = stack.url.replace(/^ws/, "http").replace(/\/v1\/ws$/, "");
  });
  after(async () => {
    await chromium?.close();
    await stack?.stop();
  });

  it("?token= is used for hello, kept for the tab and taken out of the address bar", async () => {
    const jwt = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("alice").sign(new TextEncoder().encode(secret));
    const { page, errors } = await openTab(chromium, `${base}/?token=${jwt}`);
    await page.locator("#conn[data-state=connected]").waitFor();
    assert.equal(new URL(page.url()).search, "");
    await ask(page, "Tell me about owls");
    assert.equal((await untilAnswer(page, (a) => ENDED.has(a.state), "the end")).state, "done");
    await page.reload(); // the token stays with the tab
    await page.locator("#conn[data-state=connected]").waitFor();
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("a link's ?token= never silently replaces the tab's identity: asked, declined keeps it, accepted takes the new one", async () => {
    const key = new TextEncoder().encode(secret);
    const alice = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("alice").sign(key);
    const mallory = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("mallory").sign(key);
    const { page, errors } = await openTab(chromium, `${base}/?token=${alice}`);
    await page.locator("#conn[data-state=connected]").waitFor();
    const kept = () => page.evaluate(() => sessionStorage.getItem("unbroken.token"));
    const asked: string[] = [];
    const visit = async (token: string, answer: "accept" | "dismiss") => {
      const onDialog = (d: Dialog) => {
        asked.push(d.type());
        void (answer === "accept" ? d.accept() : d.dismiss());
      };
      page.on("dialog", onDialog);
      await page.goto(`${base}/?token=${token}`);
      await page.locator("#conn[data-state=connected]").waitFor();
      page.off("dialog", onDialog);
      assert.equal(new URL(page.url()).search, "", "the token leaves the address bar either way");
    };
    await visit(mallory, "dismiss");
    assert.deepEqual(asked, ["confirm"]);
    assert.equal(await kept(), alice, "declined: the tab keeps its identity");
    assert.match((await page.locator("#notice").textContent()) ?? "", /token was not used/);
    await visit(alice, "dismiss");
    assert.deepEqual(asked, ["confirm"], "the same token again asks nothing");
    await visit(mallory, "accept");
    assert.deepEqual(asked, ["confirm", "confirm"]);
    assert.equal(await kept(), mallory, "accepted: the link's identity");
    assert.equal(await page.locator("#notice").isHidden(), true);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("without a token the indicator says the edge refused it", async () => {
    const { page } = await openTab(chromium, `${base}/`);
    await page.locator("#conn[data-state=closed]").waitFor();
    assert.match((await page.locator("#conn").textContent()) ?? "", /unauthorized/);
    await page.close();
  });
});
