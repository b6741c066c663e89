/**
 * A `ChatTransport` for the Vercel AI SDK (`ai` v5 and later; `useChat`, `Chat`, `AbstractChat`):
 * an app that already renders `useChat` gets resume, stop and steer from unbroken without
 * changing its UI.
 *
 * Only types are imported from `ai`, so the client has no runtime dependency on it; a bundle
 * that never imports `UnbrokenChatTransport` drops this module.
 */
import type { ChatTransport, UIMessage, UIMessageChunk } from "ai";
import { isRid, type ChatMessage, type GenerationParams, type ReasoningEffort, type Tool, type ToolChoice } from "@unbroken/protocol";
import type { UnbrokenClient } from "./client.js";
import { UnbrokenError, callSafely, isUnbrokenError } from "./errors.js";
import type { ResponseEventFrame } from "./frames.js";
import type { ResponseHandle } from "./response.js";
import { ChunkMapper } from "./ai-sdk-chunks.js";
import { mergeOptions, requestOptions, type RequestOptions } from "./ai-sdk-options.js";
import { uiMessagesToChatMessages } from "./ai-sdk-messages.js";
import { abortError, cacheFound, isThreadId, lastRunningAnswer, threadMessages } from "./ai-sdk-thread.js";
import { memoryChatStore, type ChatResponseRecord, type ChatResponseStore } from "./ai-sdk-store.js";

export { uiMessagesToChatMessages } from "./ai-sdk-messages.js";
export { threadMessages, type ThreadMessagesOptions } from "./ai-sdk-thread.js";
export { webStorageChatStore, type ChatResponseRecord, type ChatResponseStore, type StorageLike } from "./ai-sdk-store.js";

export interface UnbrokenChatTransportOptions<UI_MESSAGE extends UIMessage = UIMessage> {
  client: UnbrokenClient;
  /** Default: in memory. Browsers: `webStorageChatStore(localStorage)` to reconnect after a reload. */
  store?: ChatResponseStore;
  /** Turns the chat's UI messages into the generate request's messages. Default: `uiMessagesToChatMessages`. */
  toMessages?: (messages: UI_MESSAGE[]) => ChatMessage[];
  /** Generation parameters of every request (`max_tokens`, `temperature`, `seed`, `stop`, `reasoning_effort`…). */
  params?: GenerationParams;
  /** Functions offered to the model in every request (OpenAI function tools); the app runs them. */
  tools?: Tool[];
  tool_choice?: ToolChoice;
  /** Shorthand for `params.reasoning_effort`. */
  reasoning_effort?: ReasoningEffort;
  /**
   * What `reconnectToStream` delivers. `"replay"` (default): the whole answer from its first
   * event, which is what `useChat` needs (it rebuilds the assistant message from the resumed
   * stream, and `resumeStreamIsReplay` tells it so). `"continue"`: only what comes after the seq
   * the store recorded as read, for consumers that keep the text they already have; not for
   * `useChat`.
   */
  resume?: "replay" | "continue";
}

type SendOptions<M extends UIMessage> = Parameters<ChatTransport<M>["sendMessages"]>[0];
type ReconnectOptions<M extends UIMessage> = Parameters<ChatTransport<M>["reconnectToStream"]>[0];
type Controller = ReadableStreamDefaultController<UIMessageChunk>;

/** One stream this transport handed out (or is about to) for a chat's answer. */
interface Attachment {
  readonly chatId: string;
  readonly rid: string;
  readonly kind: "send" | "reconnect";
  /** The UI message the answer streams into (the `start` chunk's `messageId`). */
  messageId: string;
  state: "handshake" | "streaming" | "done";
  handle: ResponseHandle | undefined;
  /** The handle of the attachment this one replaced, while it is still being released. */
  predecessor: ResponseHandle | undefined;
  /** Resolves once the replaced attachment's handle is gone, so this one may subscribe. */
  release: Promise<void> | undefined;
  accepted: boolean;
  superseded: boolean;
  controller: Controller | undefined;
  iterator: AsyncIterator<ResponseEventFrame> | undefined;
  /** Chunks of `pendingFrame` not yet handed to the reader. */
  pending: UIMessageChunk[];
  pendingFrame: ResponseEventFrame | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** Rejects a reconnect still waiting for the edge's `ok`. */
  interrupt: ((err: unknown) => void) | undefined;
}

const noop = (): void => undefined;

/** Edge answers after which there is nothing to reconnect to. */
const GONE_CODES = new Set(["not_found", "gone", "forbidden"]);

/**
 * `useChat({ transport: new UnbrokenChatTransport({ client }) })`.
 *
 * - `sendMessages` starts a generation and streams its events as UI message chunks. A dropped
 *   socket is invisible: the client reconnects and resumes from the last seq.
 * - The request's `abortSignal` (useChat's `stop()`) is a real stop: the generation is cancelled
 *   and the stream closes. Cancelling the returned stream without aborting only stops reading;
 *   the answer goes on and `reconnectToStream` can pick it up.
 * - A chat id that is a valid thread id (rid rules; the AI SDK's own ids are) is the chat's
 *   thread: every answer is a turn of it. Other chat ids work without a thread (store only).
 * - `reconnectToStream` (useChat's `resume: true`, `resumeStream()`) returns the answer the
 *   store (a cache) records, even one that finished before it was read to the end; else the
 *   thread's last answer while it runs, on any device; else null.
 * - `steer(chatId, text)` steers the chat's running answer; it appears as a `steering-message` part.
 *
 * The request's `body` (useChat's `sendMessage(message, { body })`) may carry `tools`,
 * `tool_choice`, `params` and `reasoning_effort` for that request: they replace the constructor's
 * (`params` are merged key by key). `headers` and `metadata` are not used: authentication is the
 * client's `token`.
 */
export class UnbrokenChatTransport<UI_MESSAGE extends UIMessage = UIMessage> implements ChatTransport<UI_MESSAGE> {
  /** Tells `useChat` whether a reconnect starts over (and it must rebuild the message). */
  readonly resumeStreamIsReplay: boolean;

  readonly #client: UnbrokenClient;
  readonly #store: ChatResponseStore;
  readonly #toMessages: (messages: UI_MESSAGE[]) => ChatMessage[];
  readonly #defaults: RequestOptions;
  readonly #continue: boolean;
  /** The latest stream of each chat on this transport. */
  readonly #active = new Map<string, Attachment>();

  constructor(options: UnbrokenChatTransportOptions<UI_MESSAGE>) {
    if (options?.client === undefined) throw new TypeError("UnbrokenChatTransport: options.client is required");
    this.#client = options.client;
    this.#store = options.store ?? memoryChatStore();
    this.#toMessages = options.toMessages ?? uiMessagesToChatMessages;
    this.#defaults = requestOptions(options, "options");
    if (options.resume !== undefined && options.resume !== "replay" && options.resume !== "continue") {
      throw new TypeError('UnbrokenChatTransport: options.resume must be "replay" or "continue"');
    }
    this.#continue = options.resume === "continue";
    this.resumeStreamIsReplay = !this.#continue;
  }

  async sendMessages(options: SendOptions<UI_MESSAGE>): Promise<ReadableStream<UIMessageChunk>> {
    const { chatId, messages, abortSignal } = options;
    throwIfAborted(abortSignal);
    const extra = mergeOptions(this.#defaults, requestOptions(options.body ?? {}, "body"));
    // The chat is the thread: other devices find its answers by following it.
    const thread = isThreadId(chatId) ? { thread: chatId } : {};
    const handle = this.#client.generate({ messages: this.#toMessages(messages), ...extra, ...thread });
    // An agent loop's next answer (the last message is the assistant's, with tool results)
    // continues that message, as the AI SDK's own server does: same id, a new step.
    const last = messages.at(-1);
    const messageId = last?.role === "assistant" ? last.id : handle.rid;
    this.#store.set(chatId, { rid: handle.rid, ...(messageId !== handle.rid ? { messageId } : {}) });
    const att = this.#attach(chatId, handle.rid, "send", abortSignal, messageId);
    att.handle = handle;
    handle.accepted.then(() => (att.accepted = true), noop);
    return this.#open(att, handle);
  }

  async reconnectToStream(options: ReconnectOptions<UI_MESSAGE>): Promise<ReadableStream<UIMessageChunk> | null> {
    const { chatId, abortSignal } = options;
    throwIfAborted(abortSignal);
    const record = this.#read(chatId);
    if (record === undefined) return this.#reconnectByThread(chatId, abortSignal);
    // Everything up to the subscribe happens before the first await: useChat aborts a resume it
    // replaces right before starting the next one, and that abort must not be taken for a stop.
    const prev = this.#active.get(chatId);
    const release = prev !== undefined && prev.rid === record.rid ? this.#supersede(prev) : undefined;
    const att = this.#attach(chatId, record.rid, "reconnect", abortSignal, record.messageId ?? record.rid);
    att.release = release;
    att.predecessor = release !== undefined ? prev?.handle : undefined;
    const interrupted = new Promise<never>((_, reject) => (att.interrupt = reject));
    interrupted.catch(noop);
    let handle: ResponseHandle;
    try {
      if (release !== undefined) await Promise.race([release, interrupted]);
      handle = this.#client.subscribe(record.rid, { after: this.#continue ? (record.seq ?? 0) : 0 });
      att.handle = handle;
      att.predecessor = undefined;
      await Promise.race([handle.accepted, interrupted]);
      att.accepted = true;
      att.interrupt = undefined;
    } catch (err) {
      att.interrupt = undefined;
      if (att.state === "done") throw err; // aborted or replaced: the abort path settles the handle
      this.#finish(att);
      if (isUnbrokenError(err) && GONE_CODES.has(err.code)) {
        this.#forget(chatId, record.rid);
        return null;
      }
      throw err;
    }
    return this.#open(att, handle);
  }

  /** The store knows nothing of the chat; its thread may (another device's answer, say). */
  async #reconnectByThread(chatId: string, signal: AbortSignal | undefined): Promise<ReadableStream<UIMessageChunk> | null> {
    if (!isThreadId(chatId)) return null;
    const handle = await lastRunningAnswer(this.#client, chatId, signal);
    if (handle === undefined || !cacheFound(this.#store, chatId, handle)) return null;
    const rid = handle.rid;
    // The message id is the rid, never the last message's: the answer is the thread's last turn,
    // so the chat's last message is its user message (or, in an agent loop, the answer before,
    // which a replay under its id would wipe and rebuild with this answer's parts only). A new
    // assistant message keyed by the rid is also what `threadMessages` makes of it later.
    const att = this.#attach(chatId, rid, "reconnect", signal, rid);
    att.handle = handle;
    att.accepted = true;
    return this.#open(att, handle);
  }

  /** `threadMessages` of the chat, its running answer recorded in this transport's store. */
  threadMessages(chatId: string): Promise<UI_MESSAGE[]> {
    return threadMessages<UI_MESSAGE>(this.#client, chatId, { store: this.#store });
  }

  /**
   * Steers the answer this transport is streaming for the chat; resolves once the worker took the
   * instruction. Rejects `not_found` when the chat has no answer streaming here, `finished` when it
   * has ended.
   */
  steer(chatId: string, text: string): Promise<void> {
    const handle = this.#active.get(chatId)?.handle;
    if (handle === undefined) {
      return Promise.reject(new UnbrokenError("not_found", `chat ${chatId} has no answer streaming through this transport`));
    }
    return handle.steer(text);
  }

  /** The rid of the chat's current answer: the one streaming here, else the one the store holds. */
  activeRid(chatId: string): string | undefined {
    return this.#active.get(chatId)?.rid ?? this.#store.get(chatId)?.rid;
  }

  /** Stops reading every stream of this transport. Cancels nothing and leaves the client open. */
  close(): void {
    for (const att of [...this.#active.values()]) this.#leave(att);
  }

  #attach(chatId: string, rid: string, kind: Attachment["kind"], signal: AbortSignal | undefined, messageId: string): Attachment {
    const att: Attachment = {
      chatId,
      rid,
      kind,
      messageId,
      state: "handshake",
      handle: undefined,
      predecessor: undefined,
      release: undefined,
      accepted: false,
      superseded: false,
      controller: undefined,
      iterator: undefined,
      pending: [],
      pendingFrame: undefined,
      signal,
      onAbort: undefined,
      interrupt: undefined,
    };
    this.#active.set(chatId, att);
    if (signal !== undefined) {
      att.onAbort = () => this.#onAbort(att);
      signal.addEventListener("abort", att.onAbort, { once: true });
    }
    return att;
  }

  #open(att: Attachment, handle: ResponseHandle): ReadableStream<UIMessageChunk> {
    const iterator = handle[Symbol.asyncIterator]();
    att.iterator = iterator;
    const mapper = new ChunkMapper(handle.rid);
    return new ReadableStream<UIMessageChunk>(
      {
        start: (controller) => {
          att.controller = controller;
          if (att.state !== "handshake") return controller.close();
          att.state = "streaming";
          controller.enqueue({ type: "start", messageId: att.messageId });
          // Each answer is a step of its own: useChat's `lastAssistantMessageIsCompleteWithToolCalls`
          // looks at the last step, and an agent loop's answers share one assistant message.
          controller.enqueue({ type: "start-step" });
        },
        pull: (controller) => this.#pull(att, iterator, mapper, controller),
        cancel: () => this.#leave(att),
      },
      { highWaterMark: 0 },
    );
  }

  async #pull(att: Attachment, it: AsyncIterator<ResponseEventFrame>, mapper: ChunkMapper, controller: Controller): Promise<void> {
    // One chunk per pull: with highWaterMark 0 a pull answers exactly one read, so once the last
    // chunk of a frame is enqueued the reader has it (the seq `resume: "continue"` records).
    // A pull that enqueues nothing is not called again, so read events until a chunk comes.
    while (att.pending.length === 0) {
      if (att.state !== "streaming") return;
      let next: IteratorResult<ResponseEventFrame>;
      try {
        next = await it.next();
      } catch (err) {
        if (att.state !== "streaming") return;
        if (isUnbrokenError(err) && GONE_CODES.has(err.code)) this.#forget(att.chatId, att.rid);
        this.#finish(att, err);
        return;
      }
      if (att.state !== "streaming") return;
      if (next.done) return this.#finish(att);
      att.pending = mapper.map(next.value);
      att.pendingFrame = next.value;
    }
    controller.enqueue(att.pending.shift() as UIMessageChunk);
    const frame = att.pendingFrame;
    if (att.pending.length > 0 || frame === undefined) return;
    att.pendingFrame = undefined;
    if (frame.event.kind === "end") {
      this.#forget(att.chatId, att.rid);
      this.#finish(att);
    } else if (this.#continue) {
      this.#record(att.chatId, { rid: att.rid, seq: frame.seq, ...(att.messageId !== att.rid ? { messageId: att.messageId } : {}) });
    }
  }

  /** The request's signal fired: a stop, unless a reconnect to the same answer replaces this one. */
  #onAbort(att: Attachment): void {
    if (att.state === "done") return;
    // Stays the chat's latest until the microtask, so a reconnect started right now finds it.
    this.#finish(att, undefined, true);
    queueMicrotask(() => {
      if (att.superseded) return;
      if (this.#active.get(att.chatId) === att) this.#active.delete(att.chatId);
      this.#stop(att);
    });
  }

  #stop(att: Attachment): void {
    const handle = att.handle ?? att.predecessor;
    if (handle === undefined) return;
    const forget = (): void => this.#forget(att.chatId, att.rid);
    handle.cancel().then(forget, forget);
  }

  /** The reader cancelled the stream: stop reading, let the answer go on. */
  #leave(att: Attachment): void {
    if (att.state === "done") return;
    this.#finish(att);
    att.handle?.unsubscribe().catch(noop);
  }

  /** A reconnect to the same answer replaces `prev`; resolves once its handle is released. */
  #supersede(prev: Attachment): Promise<void> | undefined {
    prev.superseded = true;
    this.#finish(prev);
    const handle = prev.handle;
    if (handle === undefined) return prev.release;
    if (handle.ended) return undefined;
    if (prev.kind === "send" && !prev.accepted) {
      // Unsubscribing a generate before it is accepted would stop it from being re-sent.
      return handle.accepted.then(noop, noop).then(() => void handle.unsubscribe().catch(noop));
    }
    handle.unsubscribe().catch(noop);
    return undefined;
  }

  /** Delivers nothing more on this attachment's stream: closes it (or errors it with `error`). */
  #finish(att: Attachment, error?: unknown, keepActive = false): void {
    if (att.state === "done") return;
    att.state = "done";
    if (att.onAbort !== undefined) att.signal?.removeEventListener("abort", att.onAbort);
    if (!keepActive && this.#active.get(att.chatId) === att) this.#active.delete(att.chatId);
    att.interrupt?.(abortError(att.signal));
    att.iterator?.return?.().catch(noop);
    try {
      if (error === undefined) att.controller?.close();
      else att.controller?.error(error);
    } catch {
      // already closed by its reader
    }
  }

  #read(chatId: string): ChatResponseRecord | undefined {
    const record = this.#store.get(chatId);
    if (record === undefined) return undefined;
    if (typeof record !== "object" || record === null || !isRid(record.rid)) {
      this.#store.delete(chatId);
      return undefined;
    }
    const seq = record.seq;
    return {
      rid: record.rid,
      ...(typeof seq === "number" && Number.isSafeInteger(seq) && seq > 0 ? { seq } : {}),
      ...(typeof record.messageId === "string" && record.messageId !== "" ? { messageId: record.messageId } : {}),
    };
  }

  #record(chatId: string, value: ChatResponseRecord): void {
    callSafely(() => {
      if (this.#store.get(chatId)?.rid === value.rid) this.#store.set(chatId, value);
    });
  }

  /** Forgets the chat's answer, unless the store has moved on to a newer one. */
  #forget(chatId: string, rid: string): void {
    callSafely(() => {
      if (this.#store.get(chatId)?.rid === rid) this.#store.delete(chatId);
    });
  }
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}
