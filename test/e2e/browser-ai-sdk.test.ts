// The AI SDK's `useChat` (@ai-sdk/react in a React 19 page, StrictMode) with the transport in
// real headless Chromium: an agent loop (onToolCall, addToolOutput, sendAutomaticallyWhen), and a
// reload in the middle of a streamed tool call that resumes (resume: true) with intact parts.
// The page (test/helpers/ai-sdk-page.ts) exposes what React rendered on `window`.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { UIMessage } from "ai";
import type { Page } from "playwright-core";
import type { EventFrame } from "@unbroken/protocol";
import { buildAiSdkPage, shownText, untilState, type AiSdkPageState } from "../helpers/ai-sdk-page.js";
import { endReason, logOf } from "../helpers/ai-sdk.js";
import { launchChromium, openTab, type Chromium } from "../helpers/browser.js";
import { textOf } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";

type ToolPartView = { type: string; toolCallId: string; state: string; input?: unknown; rawInput?: string };

const toolParts = (m: UIMessage | undefined): ToolPartView[] =>
  (m?.parts ?? []).filter((p) => p.type.startsWith("tool-")) as unknown as ToolPartView[];
const textOfMessage = (m: UIMessage | undefined): string => (m?.parts ?? []).map((p) => (p.type === "text" ? p.text : "")).join("");
const doneArguments = (log: EventFrame[]): string[] => log.flatMap((f) => (f.event.kind === "tool_done" ? [f.event.arguments] : []));

const answered = (name: string) => (s: AiSdkPageState) =>
  s.status === "ready" && new RegExp(`The result of ${name}`).test(textOfMessage(s.messages[1]));

describe("useChat (React) with the transport in Chromium", () => {
  let stack: Stack;
  let chromium: Chromium;
  let site: { dir: string; remove: () => void };
  let base: string;

  before(async () => {
    chromium = await launchChromium(); // first: without Chromium, fail at once with what to install
    site = await buildAiSdkPage();
    // 20 tokens/s: a call with 16 arguments streams for seconds, long enough to reload inside it.
    stack = await Stack.start({ edgeEnv: { WEB_ROOT: site.dir }, workerEnv: { SCRIPTED_TPS: "20" } });
    base = stack.url.replace(/^ws/, "http").replace(/\/v1\/ws$/, "");
  });
  after(async () => {
    await chromium?.close();
    await stack?.stop();
    site?.remove();
  });

  async function open(): Promise<{ page: Page; errors: string[] }> {
    const tab = await openTab(chromium, `${base}/`);
    await tab.page.locator("body[data-ready]").waitFor({ state: "attached" });
    return tab;
  }

  it("an agent loop: the call, the page's result, a second request with the tool message, the text answer", async () => {
    const { page, errors } = await open();
    await page.evaluate(() => (window as unknown as { send: (t: string) => void }).send("What time is it? Use get_time, in 20 words"));
    const s = await untilState(page, answered("get_time"), "the answer after the call");
    assert.deepEqual(
      s.messages.map((m) => m.role),
      ["user", "assistant"],
    );
    const answer = s.messages[1] as UIMessage;
    assert.deepEqual(
      answer.parts.map((p) => p.type),
      ["step-start", "tool-get_time", "step-start", "text"],
    );
    assert.equal(s.calls.length, 1, "onToolCall ran once");
    const first = await logOf(stack.url, s.calls[0]!.rid);
    assert.equal(endReason(first), "tool_calls");
    assert.deepEqual(toolParts(answer)[0]?.input, JSON.parse(doneArguments(first)[0] as string));
    assert.equal(toolParts(answer)[0]?.state, "output-available");
    assert.ok(textOfMessage(answer).startsWith('The result of get_time is {"time":"12:00"}.'));
    assert.deepEqual(s.rids.length, 2);
    assert.equal(s.rids[0], s.calls[0]!.rid);
    assert.equal(answer.id, s.rids[0], "the second answer continues the first's message");
    assert.equal(textOfMessage(answer), textOf(await logOf(stack.url, s.rids[1] as string)));
    assert.equal(await shownText(page), textOfMessage(answer), "React rendered the answer");
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("a reload in the middle of a streamed tool call resumes with intact parts, and the loop goes on", async () => {
    const { page, errors } = await open();
    await page.evaluate(() => (window as unknown as { send: (t: string) => void }).send("Please call file_report, in 20 words"));
    const before = await untilState(page, (s) => (toolParts(s.messages[1])[0]?.rawInput?.length ?? 0) > 20, "some of the call's arguments");
    assert.equal(toolParts(before.messages[1])[0]?.state, "input-streaming");
    await page.reload();
    await page.locator("body[data-ready]").waitFor({ state: "attached" });
    const s = await untilState(page, answered("file_report"), "the answer after the call");

    assert.equal(s.calls.length, 1, "the reloaded page ran the call once");
    const log = await logOf(stack.url, s.calls[0]!.rid);
    const args = doneArguments(log)[0] as string;
    assert.ok(args.length > (toolParts(before.messages[1])[0]?.rawInput?.length ?? 0), "reloaded inside the call");
    assert.deepEqual(
      s.messages.map((m) => m.role),
      ["user", "assistant"],
    );
    assert.deepEqual(
      s.messages[1]!.parts.map((p) => p.type),
      ["step-start", "tool-file_report", "step-start", "text"],
    );
    const [tool] = toolParts(s.messages[1]);
    assert.equal(tool?.state, "output-available");
    assert.deepEqual(tool?.input, JSON.parse(args));
    // Every state the reloaded page rendered: one part per call, its streamed input a prefix of
    // the call's arguments (a delta shown twice would not be).
    for (const m of s.rendered) {
      const parts = toolParts(m);
      assert.ok(parts.length <= 1, "one tool part");
      const raw = parts[0]?.rawInput;
      if (raw !== undefined) assert.ok(args.startsWith(raw), `a prefix of the arguments: ${raw}`);
    }
    assert.ok(
      s.rendered.some((m) => toolParts(m)[0]?.state === "input-streaming"),
      "the resumed chat streamed the call",
    );
    assert.equal(s.rids.length, 1, "the reloaded page sent one request: the tool result");
    assert.equal(textOfMessage(s.messages[1]), textOf(await logOf(stack.url, s.rids[0] as string)));
    assert.equal(await shownText(page), textOfMessage(s.messages[1]), "React rendered the answer");
    assert.deepEqual(errors, []);
    await page.close();
  });
});
