import { test } from "node:test";
import assert from "node:assert/strict";
import { readUIMessageStream, type UIMessage, type UIMessageChunk } from "ai";
import type { ResponseEvent } from "@unbroken/protocol";
import { ChunkMapper } from "../src/ai-sdk-chunks.js";
import { answerUIParts, setToolOutputs } from "../src/ai-sdk-parts.js";
import type { ResponseEventFrame } from "../src/frames.js";
import { UnbrokenChatTransport, threadMessages } from "../src/index.js";
import type { FakeEdge, Frame, Peer } from "./fake-edge.js";
import { START, setup } from "./util.js";

const RID = "rid_abcdefgh";
const CHAT = "chat_0123456789";
const usage = { prompt_tokens: 3, completion_tokens: 9 };

const frames = (events: ResponseEvent[]): ResponseEventFrame[] =>
  events.map((event, i) => ({ type: "event", rid: RID, seq: i + 1, event }));

/** An answer with every kind of part the mapper makes: reasoning, a call, a dropped call, text around a steer. */
const ANSWER: ResponseEvent[] = [
  { kind: "start", model: "scripted", created_at: "2026-01-01T00:00:00Z" },
  { kind: "reasoning", text: "Let me think." },
  { kind: "tool_call", id: "call_1", name: "get_time" },
  { kind: "tool_args", id: "call_1", text: '{"timezone":"UTC"}' },
  { kind: "tool_done", id: "call_1", arguments: '{"timezone":"UTC"}' },
  { kind: "tool_call", id: "call_2", name: "get_time" },
  { kind: "tool_dropped", id: "call_2", reason: "worker lost" },
  { kind: "token", text: "It is " },
  { kind: "steer", text: "shorter" },
  { kind: "token", text: "noon." },
  { kind: "end", reason: "tool_calls", usage },
];

/** What the AI SDK itself builds from the transport's stream of the answer. */
async function builtByTheSdk(events: ResponseEvent[]): Promise<UIMessage["parts"]> {
  const mapper = new ChunkMapper(RID);
  const chunks: UIMessageChunk[] = [
    { type: "start", messageId: RID },
    { type: "start-step" },
    ...frames(events).flatMap((f) => mapper.map(f)),
  ];
  const stream = new ReadableStream<UIMessageChunk>({
    start(c) {
      for (const chunk of chunks) c.enqueue(chunk);
      c.close();
    },
  });
  let last: UIMessage | undefined;
  for await (const m of readUIMessageStream({ stream })) last = m;
  return last?.parts ?? [];
}

const plain = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

test("answerUIParts builds the parts the AI SDK builds from the transport's stream", async () => {
  const parts = answerUIParts(RID, frames(ANSWER));
  assert.deepEqual(plain(parts), plain(await builtByTheSdk(ANSWER)));
  assert.deepEqual(
    parts.map((p) => p.type),
    ["step-start", "reasoning", "tool-get_time", "tool-get_time", "step-start", "text", "steering-message", "text"],
  );
});

test("setToolOutputs gives a call the content of the tool message that answers it; a dropped call keeps its error", () => {
  const messages: UIMessage[] = [{ id: RID, role: "assistant", parts: answerUIParts(RID, frames(ANSWER)) }];
  setToolOutputs(messages, [
    { role: "tool", tool_call_id: "call_1", content: "12:00" },
    { role: "tool", tool_call_id: "call_2", content: "late" },
    { role: "tool", tool_call_id: "call_9", content: "nobody asked" },
  ]);
  const tools = messages[0]!.parts.filter((p) => p.type === "tool-get_time") as unknown as Record<string, unknown>[];
  assert.deepEqual(
    tools.map((p) => [p.toolCallId, p.state, p.output]),
    [
      ["call_1", "output-available", "12:00"],
      ["call_2", "output-error", undefined],
    ],
  );
});

/** The fake edge follows threads too: `turns` per thread; an unknown one is `forbidden`. */
function withThreads(edge: FakeEdge, turns: Map<string, { rid: string; messages: object[] }[]>): void {
  edge.hook = (f: Frame, peer: Peer) => {
    if (f.type === "unfollow") {
      peer.send({ type: "ok", id: f.id, thread: f.thread });
      return true;
    }
    if (f.type !== "follow") return false;
    const list = turns.get(f.thread as string);
    if (list === undefined) {
      peer.send({ type: "error", id: f.id, thread: f.thread, code: "forbidden", message: "no" });
      return true;
    }
    peer.send({ type: "ok", id: f.id, thread: f.thread, last: list.length });
    for (const [i, t] of list.entries()) {
      if (i + 1 > (f.after as number)) peer.send({ type: "turn", thread: f.thread, seq: i + 1, created_at: 1, ...t });
    }
    return true;
  };
}

const user = (text: string): UIMessage => ({ id: `u-${text}`, role: "user", parts: [{ type: "text", text }] });

test("sendMessages generates in the chat's thread when the chat id can name one, and without one otherwise", async (t) => {
  const { edge, client } = await setup(t);
  const transport = new UnbrokenChatTransport({ client });
  for (const chatId of [CHAT, "c1"]) {
    await transport.sendMessages({
      trigger: "submit-message",
      chatId,
      messageId: undefined,
      messages: [user("hi")],
      abortSignal: undefined,
    });
  }
  assert.equal((await edge.nth("generate", 1)).frame.thread, CHAT);
  assert.equal((await edge.nth("generate", 2)).frame.thread, undefined);
});

test("reconnectToStream with an empty store streams the thread's running last answer, keyed by its rid, and caches it", async (t) => {
  const { edge, client } = await setup(t);
  withThreads(
    edge,
    new Map([
      [
        CHAT,
        [
          { rid: "rid_old_answer", messages: [] },
          { rid: RID, messages: [] },
        ],
      ],
    ]),
  );
  edge.append("rid_old_answer", START);
  edge.end("rid_old_answer");
  edge.append(RID, START);
  edge.tokens(RID, "Hel", "lo");
  const transport = new UnbrokenChatTransport({ client });
  const stream = await transport.reconnectToStream({ chatId: CHAT });
  assert.ok(stream !== null);
  const reader = stream.getReader();
  const chunks: UIMessageChunk[] = [];
  while (chunks.filter((c) => c.type === "text-delta").length < 2) chunks.push((await reader.read()).value as UIMessageChunk);
  assert.deepEqual(chunks[0], { type: "start", messageId: RID });
  assert.equal((await edge.nth("unfollow")).frame.thread, CHAT, "the follow is closed once the last turn is known");
  assert.equal(transport.activeRid(CHAT), RID);
  edge.end(RID);
  for (;;) if ((await reader.read()).done) break;
  assert.equal(edge.framesOf("subscribe").length, 1, "the running answer is subscribed once");
});

test("reconnectToStream returns null when the last answer has ended, the thread is unknown, or the chat id is no thread", async (t) => {
  const { edge, client } = await setup(t);
  withThreads(edge, new Map([[CHAT, [{ rid: RID, messages: [] }]]]));
  edge.append(RID, START);
  edge.end(RID);
  const transport = new UnbrokenChatTransport({ client });
  assert.equal(await transport.reconnectToStream({ chatId: CHAT }), null);
  assert.equal(edge.framesOf("subscribe").length, 1, "the ended answer is looked at, not streamed");
  assert.equal(await transport.reconnectToStream({ chatId: "chat_unknown_1" }), null);
  assert.equal(await transport.reconnectToStream({ chatId: "c1" }), null);
  assert.deepEqual(
    edge.framesOf("follow").map((r) => r.frame.thread),
    [CHAT, "chat_unknown_1"],
  );
});

test("threadMessages: user messages and ended answers in turn order, tool results as outputs, the running answer left to the store", async (t) => {
  const { edge, client } = await setup(t);
  withThreads(
    edge,
    new Map([
      [
        CHAT,
        [
          { rid: "rid_first_answer", messages: [{ role: "user", content: "time?" }] },
          { rid: "rid_second_answer", messages: [{ role: "tool", tool_call_id: "call_1", content: "12:00" }] },
          { rid: "rid_third_answer", messages: [{ role: "user", content: "and now?" }] },
        ],
      ],
    ]),
  );
  for (const [rid, events] of [
    ["rid_first_answer", ANSWER.slice(0, 5).concat([{ kind: "end", reason: "tool_calls", usage }])],
    ["rid_second_answer", [ANSWER[0]!, { kind: "token", text: "Noon." }, { kind: "end", reason: "stop", usage }]],
    ["rid_third_answer", [ANSWER[0]!, { kind: "token", text: "Still" }]],
  ] as const) {
    for (const e of events) edge.append(rid, e as Record<string, unknown>);
  }
  const transport = new UnbrokenChatTransport({ client });
  const messages = await transport.threadMessages(CHAT);
  assert.deepEqual(
    messages.map((m) => [m.id, m.role]),
    [
      ["rid_first_answer-user-0", "user"],
      ["rid_first_answer", "assistant"],
      ["rid_second_answer", "assistant"],
      ["rid_third_answer-user-0", "user"],
    ],
  );
  const call = messages[1]!.parts.find((p) => p.type === "tool-get_time") as unknown as Record<string, unknown>;
  assert.equal(call.state, "output-available");
  assert.equal(call.output, "12:00");
  assert.equal(transport.activeRid(CHAT), "rid_third_answer", "the running answer is recorded for reconnectToStream");
  assert.deepEqual(await threadMessages(client, "chat_unknown_1"), []);
  assert.deepEqual(await threadMessages(client, "c1"), []);
});

/** Holds the edge's answers to `follow` until `release()`. */
function heldFollows(edge: FakeEdge, turns: Map<string, { rid: string; messages: object[] }[]>): { release: () => void } {
  withThreads(edge, turns);
  const threads = edge.hook as NonNullable<FakeEdge["hook"]>;
  const held: (() => void)[] = [];
  let open = false;
  edge.hook = (f, peer, e) => {
    if (f.type !== "follow" || open) return threads(f, peer, e);
    held.push(() => threads(f, peer, e));
    return true;
  };
  return {
    release: () => {
      open = true;
      for (const answer of held.splice(0)) answer();
    },
  };
}

test("an abort while the thread is read rejects AbortError and lets the follow go; the next reconnect finds the answer", async (t) => {
  const { edge, client } = await setup(t);
  const gate = heldFollows(edge, new Map([[CHAT, [{ rid: RID, messages: [] }]]]));
  edge.append(RID, START);
  const transport = new UnbrokenChatTransport({ client });
  const abort = new AbortController();
  const first = transport.reconnectToStream({ chatId: CHAT, abortSignal: abort.signal });
  await edge.nth("follow");
  abort.abort();
  await assert.rejects(first, { name: "AbortError" });
  assert.equal((await edge.nth("unfollow")).frame.thread, CHAT);
  gate.release();
  const stream = await transport.reconnectToStream({ chatId: CHAT });
  assert.ok(stream !== null, "the same client may follow the thread again");
  await stream.cancel();
});

test("an answer found through the thread is let go when a send in the chat came meanwhile", async (t) => {
  const { edge, client } = await setup(t);
  const gate = heldFollows(edge, new Map([[CHAT, [{ rid: RID, messages: [] }]]]));
  edge.append(RID, START);
  const transport = new UnbrokenChatTransport({ client });
  const found = transport.reconnectToStream({ chatId: CHAT });
  await edge.nth("follow");
  const sent = await transport.sendMessages({
    trigger: "submit-message",
    chatId: CHAT,
    messageId: undefined,
    messages: [user("hi")],
    abortSignal: undefined,
  });
  const newer = transport.activeRid(CHAT);
  gate.release();
  assert.equal(await found, null);
  assert.equal(transport.activeRid(CHAT), newer, "the send's answer stays the chat's");
  assert.equal((await edge.nth("unsubscribe")).frame.rid, RID);
  await sent.cancel();
});
