import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UnbrokenChatTransport, newRid, threadMessages } from "@unbroken/client";
import { readUIMessageStream, type UIMessage, type UIMessageChunk } from "ai";
import { aiSdkFixture, deltaCount, deltas, logOf, send, userMessage } from "../helpers/ai-sdk.js";
import { textOf } from "../helpers/raw-client.js";
import { collect, read, readInto } from "../helpers/streams.js";

// The chat id is the thread: a device that never saw the chat (a fresh client, an empty store)
// finds its running answer and its conversation through the edge alone.

const startId = (chunks: UIMessageChunk[]): string | undefined => {
  const first = chunks[0];
  return first?.type === "start" ? first.messageId : undefined;
};
const plain = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

describe("AI SDK transport on a thread (issue 13)", () => {
  const fixture = aiSdkFixture();
  const { newClient } = fixture;

  it("another device reconnects to the chat's running answer through its thread, and loads the conversation", async () => {
    const chatId = newRid();
    const deviceA = new UnbrokenChatTransport({ client: newClient() });
    const sent = await send(deviceA, chatId, "write 150 words about glaciers");
    const readerA = sent.getReader();
    const chunksA = await readInto(readerA, [], deltaCount(3), "3 deltas on device A");
    const rid = deviceA.activeRid(chatId) as string;

    // Device C: a bare reconnect, store empty: found through the thread alone.
    const deviceC = new UnbrokenChatTransport({ client: newClient() });
    const streamC = await deviceC.reconnectToStream({ chatId });
    assert.ok(streamC !== null, "the running answer is found through the thread");
    // Device B: loads the conversation first (the running answer is left out), then resumes.
    const deviceB = new UnbrokenChatTransport({ client: newClient() });
    const loaded = await deviceB.threadMessages(chatId);
    assert.deepEqual(plain(loaded), [
      { id: loaded[0]?.id, role: "user", parts: [{ type: "text", text: "write 150 words about glaciers" }] },
    ]);
    const streamB = await deviceB.reconnectToStream({ chatId });
    assert.ok(streamB !== null);
    const [chunksB, chunksC] = await Promise.all([read(streamB), read(streamC), readInto(readerA, chunksA)]);

    const log = await logOf(fixture.stack().url, rid);
    for (const [name, chunks] of [
      ["A", chunksA],
      ["B", chunksB],
      ["C", chunksC],
    ] as const) {
      assert.equal(deltas(chunks), textOf(log), `device ${name} has the whole answer`);
      assert.equal(startId(chunks), rid, `device ${name}'s message is keyed by the rid`);
      assert.deepEqual(chunks.at(-1), { type: "finish", finishReason: "stop" });
    }

    // Ended: nothing to reconnect to, on any device, store or no store.
    assert.equal(await deviceC.reconnectToStream({ chatId }), null);
    assert.equal(await new UnbrokenChatTransport({ client: newClient() }).reconnectToStream({ chatId }), null);

    // The conversation so far is the same the live stream built.
    const [built] = await collect(readUIMessageStream({ stream: replay(chunksB), terminateOnError: true })).then((ms) => ms.slice(-1));
    const messages = await threadMessages(newClient(), chatId);
    assert.deepEqual(
      messages.map((m) => m.role),
      ["user", "assistant"],
    );
    assert.equal(messages[1]?.id, rid);
    assert.deepEqual(plain(messages[1]?.parts), plain(built?.parts));
    assert.deepEqual(plain(messages[1]?.parts), [{ type: "step-start" }, { type: "text", text: textOf(log), state: "done" }]);
  });

  it("threadMessages: each turn's user messages, then its answer, in order", async () => {
    const chatId = newRid();
    const client = newClient();
    const transport = new UnbrokenChatTransport({ client });
    const first = userMessage("write 10 words about salt");
    const chunks1 = await read(await send(transport, chatId, "write 10 words about salt"));
    const answer1: UIMessage = { id: startId(chunks1) as string, role: "assistant", parts: [{ type: "text", text: deltas(chunks1) }] };
    const second = userMessage("and 10 about pepper");
    const stream2 = await transport.sendMessages({
      trigger: "submit-message",
      chatId,
      messageId: undefined,
      messages: [{ ...first, parts: [{ type: "text", text: "write 10 words about salt" }] }, answer1, second],
      abortSignal: undefined,
    });
    const chunks2 = await read(stream2);

    const messages = await threadMessages(newClient(), chatId);
    assert.deepEqual(
      messages.map((m) => [m.role, m.parts.map((p) => (p.type === "text" ? p.text : p.type)).join("|")]),
      [
        ["user", "write 10 words about salt"],
        ["assistant", `step-start|${deltas(chunks1)}`],
        ["user", "and 10 about pepper"],
        ["assistant", `step-start|${deltas(chunks2)}`],
      ],
    );
    assert.deepEqual(
      messages.filter((m) => m.role === "assistant").map((m) => m.id),
      [startId(chunks1), startId(chunks2)],
    );
  });

  it("a chat id that is no thread id, and an unknown thread, have nothing to reconnect to or load", async () => {
    const client = newClient();
    const transport = new UnbrokenChatTransport({ client });
    // "short" cannot name a thread: the answer is generated without one, found by the store only.
    const chunks = await read(await send(transport, "short", "write 5 words about ink"));
    assert.ok(deltas(chunks).length > 0);
    assert.equal(await new UnbrokenChatTransport({ client: newClient() }).reconnectToStream({ chatId: "short" }), null);
    assert.deepEqual(await threadMessages(client, "short"), []);
    const unknown = newRid();
    assert.equal(await transport.reconnectToStream({ chatId: unknown }), null);
    assert.deepEqual(await threadMessages(client, unknown), []);
  });
});

/** A stream of chunks already read, to build the message the AI SDK builds from them. */
function replay(chunks: UIMessageChunk[]): ReadableStream<UIMessageChunk> {
  return new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(c);
      controller.close();
    },
  });
}
