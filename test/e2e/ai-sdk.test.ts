import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UnbrokenChatTransport, uiMessagesToChatMessages, webStorageChatStore, type ChatResponseStore } from "@unbroken/client";
import { readUIMessageStream, type UIMessageChunk } from "ai";
import { Stack } from "../helpers/stack.js";
import { aiSdkFixture, deltaCount, deltas, endReason, logOf, mapStorage, messageText, send, types, until } from "../helpers/ai-sdk.js";
import { textOf } from "../helpers/raw-client.js";
import { collect, read, readInto } from "../helpers/streams.js";

describe("AI SDK ChatTransport", () => {
  const fixture = aiSdkFixture();
  const { newClient } = fixture;

  it("streams an answer as start, start-step, text-start, text-delta…, text-end, finish-step, finish; a valid UIMessage", async () => {
    const transport = new UnbrokenChatTransport({ client: newClient() });
    const stream = await send(transport, "chat-send", "write 40 words about rivers");
    const [mine, sdk] = stream.tee();
    const [chunks, messages] = await Promise.all([read(mine), collect(readUIMessageStream({ stream: sdk, terminateOnError: true }))]);

    const start = chunks[0];
    assert.ok(start?.type === "start" && start.messageId !== undefined);
    const rid = start.messageId;
    const log = await logOf(fixture.stack().url, rid);
    assert.deepEqual(types(chunks).slice(0, 4), ["start", "start-step", "text-start", "text-delta"]);
    assert.deepEqual(types(chunks).slice(-3), ["text-end", "finish-step", "finish"]);
    assert.deepEqual(chunks.at(-1), { type: "finish", finishReason: "stop" });
    assert.equal(deltas(chunks), textOf(log));
    assert.ok(textOf(log).length > 100);

    const message = messages.at(-1)!;
    assert.equal(message.id, rid);
    assert.equal(message.role, "assistant");
    assert.deepEqual(JSON.parse(JSON.stringify(message.parts)), [
      { type: "step-start" },
      { type: "text", text: textOf(log), state: "done" },
    ]);
    // Read to the end: nothing is left to reconnect to.
    assert.equal(await transport.reconnectToStream({ chatId: "chat-send" }), null);
  });

  it("abortSignal is a real stop: the log ends cancelled, the stream closes, no delta after", async () => {
    const transport = new UnbrokenChatTransport({ client: newClient() });
    const abort = new AbortController();
    const stream = await send(transport, "chat-stop", "write 300 words about stopping", abort.signal);
    const rid = transport.activeRid("chat-stop")!;
    const reader = stream.getReader();
    const before: UIMessageChunk[] = [];
    await readInto(reader, before, deltaCount(5), "5 deltas");
    abort.abort();
    const rest = await readInto(reader, []);
    assert.deepEqual(
      rest.filter((c) => c.type === "text-delta"),
      [],
    );

    const log = await logOf(fixture.stack().url, rid);
    assert.equal(endReason(log), "cancelled");
    assert.ok(textOf(log).startsWith(deltas(before)));
    assert.ok(textOf(log).split(" ").length < 250, "stopped well before 300 words");
    await until(() => transport.activeRid("chat-stop") === undefined, "the store to forget the stopped answer");
    assert.equal(await transport.reconnectToStream({ chatId: "chat-stop" }), null);
  });

  it("a stop in one tab reaches another tab following the same chat: abort, then finish", async () => {
    const storage = mapStorage();
    const tabA = new UnbrokenChatTransport({ client: newClient(), store: webStorageChatStore(storage) });
    const tabB = new UnbrokenChatTransport({ client: newClient(), store: webStorageChatStore(storage) });
    const abort = new AbortController();
    const streamA = await send(tabA, "chat-tabs", "write 300 words about tabs", abort.signal);
    // Tab B looks once A's answer exists at the edge (its first delta): before that, a
    // subscribe to the rid the shared store names can still come ahead of its creation.
    const readerA = streamA.getReader();
    const seenA: UIMessageChunk[] = [];
    await readInto(readerA, seenA, deltaCount(1), "A's first delta");
    const streamB = await tabB.reconnectToStream({ chatId: "chat-tabs" });
    assert.ok(streamB);
    const following = read(streamB);
    await readInto(readerA, seenA, deltaCount(5), "5 deltas");
    abort.abort();
    const chunks = await following;
    assert.deepEqual(types(chunks).slice(-4), ["text-end", "abort", "finish-step", "finish"]);
    assert.deepEqual(chunks.slice(-3), [
      { type: "abort", reason: "cancelled" },
      { type: "finish-step" },
      { type: "finish", finishReason: "other" },
    ]);
    const log = await logOf(fixture.stack().url, (chunks[0] as { messageId: string }).messageId);
    assert.equal(endReason(log), "cancelled");
    assert.equal(deltas(chunks), textOf(log));
  });

  it("cancelling the stream without aborting only stops reading: the answer goes on and can be reconnected", async () => {
    const transport = new UnbrokenChatTransport({ client: newClient() });
    const stream = await send(transport, "chat-leave", "write 60 words about leaving");
    const reader = stream.getReader();
    await readInto(reader, [], (c) => c.length >= 4, "4 chunks");
    await reader.cancel();
    const again = await transport.reconnectToStream({ chatId: "chat-leave" });
    assert.ok(again);
    const chunks = await read(again);
    const rid = transport.activeRid("chat-leave") ?? (chunks[0] as { messageId: string }).messageId;
    const log = await logOf(fixture.stack().url, rid);
    assert.equal(endReason(log), "stop");
    assert.equal(deltas(chunks), textOf(log), "the reconnect replays the whole answer");
  });

  it("resumes through a cut, and after a reload (new client, new transport, same store) continues without a duplicate", async () => {
    const storage = mapStorage();
    const store = webStorageChatStore(storage);
    const first = new UnbrokenChatTransport({ client: newClient(fixture.proxy().url()), store, resume: "continue" });
    const stream = await send(first, "chat-reload", "write 120 words about tunnels");
    const reader = stream.getReader();
    const seen: UIMessageChunk[] = [];
    const readDeltas = async (n: number) => {
      const target = seen.filter((c) => c.type === "text-delta").length + n;
      await readInto(reader, seen, deltaCount(target), `${target} deltas`);
    };
    await readDeltas(8);
    fixture.proxy().cut(); // the client reconnects and resumes by itself: the stream does not notice
    await readDeltas(8);
    assert.ok(storage.map.size === 1, "the answer is in the store");

    // The page reloads: the socket dies, nothing is sent, the old objects are gone.
    fixture.proxy().setDown(true);
    reader.releaseLock();
    const rid = store.get("chat-reload")!.rid;
    assert.ok(store.get("chat-reload")!.seq! > 8);

    const second = new UnbrokenChatTransport({ client: newClient(), store, resume: "continue" });
    assert.equal(second.resumeStreamIsReplay, false);
    const resumed = await second.reconnectToStream({ chatId: "chat-reload" });
    assert.ok(resumed);
    const rest = await read(resumed);
    fixture.proxy().setDown(false);

    const log = await logOf(fixture.stack().url, rid);
    assert.deepEqual(rest[0], { type: "start", messageId: rid });
    assert.equal(rest[1]?.type, "start-step");
    assert.equal(rest[2]?.type, "text-start");
    assert.deepEqual(types(rest).slice(-3), ["text-end", "finish-step", "finish"]);
    assert.equal(deltas(seen) + deltas(rest), textOf(log));
    assert.equal(storage.map.size, 0, "read to the end: forgotten");
    assert.equal(await second.reconnectToStream({ chatId: "chat-reload" }), null);
  });

  it("replays the whole answer on reconnect by default, from a store that survived a reload", async () => {
    const storage = mapStorage();
    const first = new UnbrokenChatTransport({ client: newClient(), store: webStorageChatStore(storage) });
    const stream = await send(first, "chat-replay", "write 80 words about replay");
    const seen = await read(stream, deltaCount(6));

    const second = new UnbrokenChatTransport({ client: newClient(), store: webStorageChatStore(storage) });
    assert.equal(second.resumeStreamIsReplay, true);
    const resumed = await second.reconnectToStream({ chatId: "chat-replay" });
    assert.ok(resumed);
    const messages = await collect(readUIMessageStream({ stream: resumed, terminateOnError: true }));
    const rid = (seen[0] as { messageId: string }).messageId;
    const log = await logOf(fixture.stack().url, rid);
    assert.equal(messageText(messages.at(-1)), textOf(log));
    assert.ok(textOf(log).startsWith(deltas(seen)));
    assert.equal(storage.map.size, 0);
  });

  it("finished but not read to the end: a reconnect still returns it", async () => {
    const store = new Map<string, { rid: string; seq?: number }>();
    const mapStore: ChatResponseStore = {
      get: (k) => store.get(k),
      set: (k, v) => void store.set(k, v),
      delete: (k) => void store.delete(k),
    };
    const first = new UnbrokenChatTransport({ client: newClient(), store: mapStore, params: { max_tokens: 12 } });
    const stream = await send(first, "chat-late", "write 12 words, then stop");
    await read(stream, deltaCount(1));
    const rid = store.get("chat-late")!.rid;
    await logOf(fixture.stack().url, rid); // it has ended
    const second = new UnbrokenChatTransport({ client: newClient(), store: mapStore });
    const chunks = await read((await second.reconnectToStream({ chatId: "chat-late" }))!);
    assert.deepEqual(chunks.at(-1), { type: "finish", finishReason: "length" });
    assert.equal(store.size, 0);
  });

  it("steers the chat's running answer; the steer is a steering-message part between two text parts", async () => {
    const transport = new UnbrokenChatTransport({ client: newClient() });
    const stream = await send(transport, "chat-steer", "write 150 words about the sea");
    const [mine, sdk] = stream.tee();
    const messages = collect(readUIMessageStream({ stream: sdk, terminateOnError: true }));
    const reader = mine.getReader();
    const chunks: UIMessageChunk[] = [];
    await readInto(reader, chunks, deltaCount(8), "8 deltas");
    await transport.steer("chat-steer", "talk about cats instead");
    await readInto(reader, chunks);

    const rid = (chunks[0] as { messageId: string }).messageId;
    const log = await logOf(fixture.stack().url, rid);
    assert.equal(deltas(chunks), textOf(log));
    const at = chunks.findIndex((c) => c.type === "steering-message");
    assert.ok(at > 0);
    assert.deepEqual(chunks[at - 1]?.type, "text-end");
    assert.deepEqual(chunks[at], {
      type: "steering-message",
      id: `${rid}-steer-${log.find((e) => e.event.kind === "steer")!.seq}`,
      parts: [{ type: "text", text: "talk about cats instead" }],
    });
    assert.equal(chunks[at + 1]?.type, "text-start");

    const message = (await messages).at(-1)!;
    assert.deepEqual(
      message.parts.map((p) => p.type),
      ["step-start", "text", "steering-message", "text"],
    );
    assert.match(messageText(message), /cats/);
    // Sent back as history, the steer becomes a user turn between the two halves.
    assert.deepEqual(
      uiMessagesToChatMessages([message]).map((m) => m.role),
      ["assistant", "user", "assistant"],
    );
    await assert.rejects(transport.steer("chat-steer", "too late"), { code: "not_found" });
  });

  it("maps an end with reason error to an error chunk carrying its code and message", async () => {
    // No worker: the request times out in the queue and ends with no_worker.
    const lonely = await Stack.start({ workers: 0, edgeEnv: { QUEUE_TIMEOUT: "400ms" }, workerEnv: { QUEUE_TIMEOUT: "400ms" } });
    try {
      const client = newClient(lonely.url);
      const transport = new UnbrokenChatTransport({ client });
      const chunks = await read(await send(transport, "chat-error", "hello?"));
      assert.deepEqual(types(chunks), ["start", "start-step", "error", "finish-step", "finish"]);
      const error = chunks[2] as { errorText: string };
      assert.match(error.errorText, /^no_worker: /);
      assert.deepEqual(chunks[4], { type: "finish", finishReason: "error" });
    } finally {
      await lonely.stop();
    }
  });
});
