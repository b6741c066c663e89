// Shared by the AI SDK tests: sending through the transport, reading chunks and messages,
// a storage, and the AI SDK's own Chat without React.
import { after, before } from "node:test";
import { UnbrokenClient, type UnbrokenChatTransport, type StorageLike } from "@unbroken/client";
import { AbstractChat, type ChatInit, type ChatState, type ChatStatus, type UIMessage, type UIMessageChunk } from "ai";
import type { EventFrame } from "@unbroken/protocol";
import { WebSocket } from "ws";
import { CuttableProxy } from "./proxy.js";
import { RawClient } from "./raw-client.js";
import { Stack } from "./stack.js";

export const fastReconnect = { minDelayMs: 20, maxDelayMs: 200 };

let nextId = 0;
export const userMessage = (text: string): UIMessage => ({ id: `u${++nextId}`, role: "user", parts: [{ type: "text", text }] });

export function send(
  transport: UnbrokenChatTransport,
  chatId: string,
  text: string,
  abortSignal?: AbortSignal,
): Promise<ReadableStream<UIMessageChunk>> {
  return transport.sendMessages({ trigger: "submit-message", chatId, messageId: undefined, messages: [userMessage(text)], abortSignal });
}

export const endReason = (log: EventFrame[]): string | undefined => {
  const last = log.at(-1)?.event;
  return last?.kind === "end" ? last.reason : undefined;
};
export const deltas = (chunks: UIMessageChunk[]): string => chunks.map((c) => (c.type === "text-delta" ? c.delta : "")).join("");
export const types = (chunks: UIMessageChunk[]): string[] => chunks.map((c) => c.type);
export const messageText = (m: UIMessage | undefined): string => (m?.parts ?? []).map((p) => (p.type === "text" ? p.text : "")).join("");

export const deltaCount = (n: number) => (chunks: UIMessageChunk[]) => chunks.filter((c) => c.type === "text-delta").length >= n;

/** The response's whole log, read on a socket of its own. */
export async function logOf(url: string, rid: string) {
  const reader = await RawClient.connect(url);
  try {
    await reader.request({ type: "subscribe", rid });
    return await reader.untilEnd(rid);
  } finally {
    reader.close();
  }
}

export function mapStorage(): StorageLike & { map: Map<string, string> } {
  const map = new Map<string, string>();
  return {
    map,
    getItem: (k) => map.get(k) ?? null,
    setItem: (k, v) => void map.set(k, v),
    removeItem: (k) => void map.delete(k),
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** `useChat` without React: the AI SDK's own Chat logic, with a plain state object. */
export class NodeChatState implements ChatState<UIMessage> {
  status: ChatStatus = "ready";
  error: Error | undefined = undefined;
  /** Every message a replace wrote, in order: what a UI would have rendered. */
  readonly rendered: UIMessage[] = [];
  messages: UIMessage[];
  constructor(messages: UIMessage[] = []) {
    this.messages = messages;
  }
  pushMessage = (m: UIMessage) => {
    this.messages = this.messages.concat(m);
  };
  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
  };
  replaceMessage = (i: number, m: UIMessage) => {
    const copy = this.snapshot(m);
    this.rendered.push(copy);
    this.messages = [...this.messages.slice(0, i), copy, ...this.messages.slice(i + 1)];
  };
  snapshot = <T>(thing: T): T => structuredClone(thing);
}

export class NodeChat extends AbstractChat<UIMessage> {
  readonly view: NodeChatState;
  constructor(init: ChatInit<UIMessage>) {
    const state = new NodeChatState(init.messages);
    super({ ...init, state });
    this.view = state;
  }
}

/**
 * The stack the AI SDK tests run on (a worker at 50 tokens/s, a cuttable proxy in front of the
 * edge) and a factory of clients, each closed after the suite. Call inside a `describe`.
 */
export function aiSdkFixture(): { stack: () => Stack; proxy: () => CuttableProxy; newClient: (url?: string) => UnbrokenClient } {
  let stack: Stack | undefined;
  let proxy: CuttableProxy | undefined;
  const clients: UnbrokenClient[] = [];
  before(async () => {
    stack = await Stack.start({ workerEnv: { SCRIPTED_TPS: "50" } });
    proxy = await CuttableProxy.start(stack.edges[0]!.port);
  });
  after(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await proxy?.close();
    await stack?.stop();
  });
  const started = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error("the fixture is not started (use it inside a describe)");
    return v;
  };
  return {
    stack: () => started(stack),
    proxy: () => started(proxy),
    newClient: (url = started(stack).url) => {
      const c = new UnbrokenClient({ url, WebSocket, reconnect: fastReconnect });
      clients.push(c);
      return c;
    },
  };
}
