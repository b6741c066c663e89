import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UnbrokenChatTransport, webStorageChatStore, type Tool } from "@unbroken/client";
import { lastAssistantMessageIsCompleteWithToolCalls, type UIMessage } from "ai";
import type { EventFrame } from "@unbroken/protocol";
import { NodeChat, aiSdkFixture, endReason, logOf, mapStorage, messageText, until } from "../helpers/ai-sdk.js";
import { textOf } from "../helpers/raw-client.js";
import { within } from "../helpers/within.js";

// The transport under the AI SDK's own Chat (what useChat runs), without React.

const GET_TIME: Tool = {
  type: "function",
  function: {
    name: "get_time",
    parameters: { type: "object", properties: { timezone: { type: "string" } }, required: ["timezone"] },
  },
};
/** A tool with many required properties: its arguments stream in many deltas (a long window to cut in). */
const FILE_REPORT: Tool = {
  type: "function",
  function: {
    name: "file_report",
    parameters: {
      type: "object",
      properties: Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`field_${i}`, { type: "string" }])),
      required: Array.from({ length: 16 }, (_, i) => `field_${i}`),
    },
  },
};

type ToolPartView = { type: string; toolCallId: string; state: string; input?: unknown; output?: unknown; rawInput?: string };
const toolParts = (m: UIMessage | undefined): ToolPartView[] =>
  (m?.parts ?? []).filter((p) => p.type.startsWith("tool-")) as unknown as ToolPartView[];
const doneArguments = (log: EventFrame[]): string[] => log.flatMap((f) => (f.event.kind === "tool_done" ? [f.event.arguments] : []));

/** Every rid the transport's store was given, in order (each answer of an agent loop is a response of its own). */
function recordRids(storage: ReturnType<typeof mapStorage>): string[] {
  const rids: string[] = [];
  const setItem = storage.setItem;
  storage.setItem = (key, value) => {
    const rid = (JSON.parse(value) as { rid: string }).rid;
    if (!rids.includes(rid)) rids.push(rid);
    setItem(key, value);
  };
  return rids;
}

/** A Chat that runs every call the model makes (the result: `output`) and sends the results back by itself. */
function agentChat(init: { id: string; transport: UnbrokenChatTransport; messages?: UIMessage[] }, onCall: (rid: string) => void) {
  const chat: NodeChat = new NodeChat({
    ...init,
    sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithToolCalls,
    onToolCall: ({ toolCall }) => {
      onCall(init.transport.activeRid(init.id) as string);
      void chat.addToolOutput({ tool: toolCall.toolName, toolCallId: toolCall.toolCallId, output: { time: "12:00" } });
    },
  });
  return chat;
}
describe("AI SDK Chat over the transport", () => {
  const fixture = aiSdkFixture();
  const { newClient } = fixture;

  describe("driven by the AI SDK's own Chat (useChat without React)", () => {
    it("sendMessage: one user and one assistant message, the assistant's text is the log's", async () => {
      const chat = new NodeChat({ id: "c-send", transport: new UnbrokenChatTransport({ client: newClient() }) });
      await chat.sendMessage({ text: "write 40 words about lakes" });
      assert.equal(chat.status, "ready");
      assert.deepEqual(
        chat.messages.map((m) => m.role),
        ["user", "assistant"],
      );
      const log = await logOf(fixture.stack().url, chat.messages[1]!.id);
      assert.equal(messageText(chat.messages[1]), textOf(log));
    });

    it("stop() cancels the generation and keeps the text so far", async () => {
      const client = newClient();
      const chat = new NodeChat({ id: "c-stop", transport: new UnbrokenChatTransport({ client }) });
      const sent = chat.sendMessage({ text: "write 300 words about brakes" });
      await until(() => messageText(chat.messages[1]).length > 20, "some text");
      await chat.stop();
      await sent;
      assert.equal(chat.status, "ready");
      const log = await logOf(fixture.stack().url, chat.messages[1]!.id);
      assert.equal(endReason(log), "cancelled");
      const kept = messageText(chat.messages[1]);
      assert.ok(textOf(log).startsWith(kept));
      // The bound: once the transport has let go of the answer (its handle saw the cancelled
      // end), the same socket replays the ended answer to its end, so anything of it still on
      // the way to this client has arrived by then.
      let replay: ReturnType<typeof client.subscribe> | undefined;
      await until(() => {
        try {
          replay = client.subscribe(chat.messages[1]!.id);
          return true;
        } catch {
          return false; // the transport still holds the answer's live handle
        }
      }, "the transport letting go of the answer");
      await within(replay!.done, "the replay's end");
      assert.equal(messageText(chat.messages[1]), kept, "no text after stop");
    });

    it("resumeStream() after a reload rebuilds the answer in place: one assistant message, no duplicate", async () => {
      const storage = mapStorage();
      const clientA = newClient(fixture.proxy().url());
      const chatA = new NodeChat({
        id: "c-reload",
        transport: new UnbrokenChatTransport({ client: clientA, store: webStorageChatStore(storage) }),
      });
      void chatA.sendMessage({ text: "write 100 words about bridges" });
      await until(() => messageText(chatA.messages[1]).length > 40, "some text");
      fixture.proxy().cut();
      await until(() => messageText(chatA.messages[1]).length > 120, "more text after the cut");
      // The app persisted the messages (with the partial answer); then the page reloads.
      const persisted = structuredClone(chatA.messages);
      fixture.proxy().setDown(true);

      const chatB = new NodeChat({
        id: "c-reload",
        messages: persisted,
        transport: new UnbrokenChatTransport({ client: newClient(), store: webStorageChatStore(storage) }),
      });
      // React's StrictMode mounts twice: the first resume is replaced by the second, and that
      // abort is not a stop.
      void chatB.resumeStream();
      await chatB.resumeStream();
      fixture.proxy().setDown(false);
      assert.equal(chatB.status, "ready");
      assert.deepEqual(
        chatB.messages.map((m) => m.role),
        ["user", "assistant"],
      );
      const rid = chatB.messages[1]!.id;
      const log = await logOf(fixture.stack().url, rid);
      assert.equal(endReason(log), "stop");
      assert.equal(messageText(chatB.messages[1]), textOf(log));
      assert.equal(storage.map.size, 0);
    });

    it("transport.steer() shows up in the message the Chat builds", async () => {
      const transport = new UnbrokenChatTransport({ client: newClient() });
      const chat = new NodeChat({ id: "c-steer", transport });
      const sent = chat.sendMessage({ text: "write 120 words about mountains" });
      await until(() => messageText(chat.messages[1]).length > 30, "some text");
      await transport.steer(chat.id, "mention cats");
      await sent;
      const parts = chat.messages[1]!.parts;
      assert.deepEqual(
        parts.map((p) => p.type),
        ["step-start", "text", "steering-message", "text"],
      );
      const log = await logOf(fixture.stack().url, chat.messages[1]!.id);
      assert.equal(messageText(chat.messages[1]), textOf(log));
    });

    it("an agent loop: onToolCall runs the call, addToolOutput and sendAutomaticallyWhen send the result, the answer goes on", async () => {
      const storage = mapStorage();
      const rids = recordRids(storage);
      const store = webStorageChatStore(storage);
      const transport = new UnbrokenChatTransport({ client: newClient(), store, tools: [GET_TIME], reasoning_effort: "minimal" });
      const called: string[] = [];
      const chat = agentChat({ id: "c-agent", transport }, (rid) => called.push(rid));
      await chat.sendMessage({ text: "What time is it? Use get_time, and answer in 20 words" });
      await until(
        () => chat.status === "ready" && /The result of get_time/.test(messageText(chat.messages[1])),
        "the answer after the call",
      );
      assert.deepEqual(
        chat.messages.map((m) => m.role),
        ["user", "assistant"],
      );
      const answer = chat.messages[1] as UIMessage;
      // One assistant message, two steps: reasoning and the call, then reasoning and the text.
      assert.deepEqual(
        answer.parts.map((p) => p.type),
        ["step-start", "reasoning", "tool-get_time", "step-start", "reasoning", "text"],
      );
      assert.equal(called.length, 1, "onToolCall ran once");
      assert.equal(rids.length, 2, "two requests");
      assert.equal(called[0], rids[0]);
      assert.equal(answer.id, rids[0], "the second answer continues the first's message");
      const first = await logOf(fixture.stack().url, rids[0] as string);
      assert.equal(endReason(first), "tool_calls");
      const [tool] = toolParts(answer);
      assert.equal(tool?.state, "output-available");
      assert.deepEqual(tool?.input, JSON.parse(doneArguments(first)[0] as string));
      assert.deepEqual(tool?.input, { timezone: "sample" });
      // The second request carried the tool message: its answer starts with the result.
      const second = await logOf(fixture.stack().url, rids[1] as string);
      assert.equal(endReason(second), "stop");
      assert.equal(messageText(answer), textOf(second));
      assert.ok(textOf(second).startsWith('The result of get_time is {"time":"12:00"}.'));
      await until(() => chat.status === "ready", "no third request");
      assert.equal(chat.messages.length, 2);
    });

    it("a reload in the middle of a streamed tool call resumes with intact parts, and the loop goes on", async () => {
      const storage = mapStorage();
      const clientA = newClient(fixture.proxy().url());
      const chatA = new NodeChat({
        id: "c-tool-reload",
        transport: new UnbrokenChatTransport({ client: clientA, store: webStorageChatStore(storage), tools: [FILE_REPORT] }),
      });
      void chatA.sendMessage({ text: "Please call file_report" });
      await until(() => (toolParts(chatA.messages[1])[0]?.rawInput?.length ?? 0) > 20, "some of the call's arguments");
      fixture.proxy().cut();
      fixture.proxy().setDown(true);
      // The app persisted the messages (with the call half streamed); then the page reloads.
      const persisted = structuredClone(chatA.messages);
      assert.equal(toolParts(persisted[1])[0]?.state, "input-streaming");
      await clientA.close();

      const transport = new UnbrokenChatTransport({ client: newClient(), store: webStorageChatStore(storage), tools: [FILE_REPORT] });
      const called: string[] = [];
      const chatB = agentChat({ id: "c-tool-reload", transport, messages: persisted }, (rid) => called.push(rid));
      await chatB.resumeStream();
      await until(
        () => chatB.status === "ready" && /The result of file_report/.test(messageText(chatB.messages[1])),
        "the answer after the call",
      );
      fixture.proxy().setDown(false);

      const log = await logOf(fixture.stack().url, called[0] as string);
      const args = doneArguments(log)[0] as string;
      assert.equal(called.length, 1);
      assert.deepEqual(
        chatB.messages.map((m) => m.role),
        ["user", "assistant"],
      );
      assert.deepEqual(
        chatB.messages[1]!.parts.map((p) => p.type),
        ["step-start", "tool-file_report", "step-start", "text"],
      );
      const [tool] = toolParts(chatB.messages[1]);
      assert.equal(tool?.state, "output-available");
      assert.deepEqual(tool?.input, JSON.parse(args));
      // Every state the resumed chat rendered: one part per call, and its streamed input a prefix
      // of the call's arguments (a delta shown twice would not be).
      for (const m of chatB.view.rendered.filter((r) => r.role === "assistant")) {
        const parts = toolParts(m);
        assert.ok(parts.length <= 1, "one tool part");
        const raw = parts[0]?.rawInput;
        if (raw !== undefined) assert.ok(args.startsWith(raw), `a prefix of the arguments: ${raw}`);
      }
      assert.ok(
        chatB.view.rendered.some((m) => toolParts(m)[0]?.state === "input-streaming"),
        "the resumed chat streamed the call",
      );
    });
  });
});
