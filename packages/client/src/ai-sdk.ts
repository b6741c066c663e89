/**
 * A `ChatTransport` for the Vercel AI SDK (`ai` v5 and later; `useChat`, `Chat`, `AbstractChat`):
 * an app that already renders `useChat` gets resume, stop and steer from unbroken without
 * changing its UI.
 *
 * Only types are imported from `ai`, so the client has no runtime dependency on it; a bundle
 * that never imports `UnbrokenChatTransport` drops this module.
 */
import type { ChatTransport, UIMessage, UIMessageChunk } from "ai";
import { LIMITS, isRid, type ChatMessage, type GenerationParams } from "@unbroken/protocol";
import type { UnbrokenClient } from "./client.js";
import { UnbrokenError, callSafely, isUnbrokenError } from "./errors.js";
import type { ResponseEventFrame } from "./frames.js";
import type { ResponseHandle } from "./response.js";

/** What the transport remembers about a chat's latest answer. */
export interface ChatResponseRecord {
  /** The response id of the answer. */
  rid: string;
  /** The last seq the consumer has read; written only with `resume: "continue"`. */
  seq?: number;
}

/**
 * Where the transport remembers the answer each chat is streaming, so `reconnectToStream` finds
 * it. The default is an in-memory Map (reconnect works while the page lives); in a browser pass
 * `webStorageChatStore(localStorage)` so it also works after a reload. Synchronous on purpose:
 * `localStorage` is, and the transport needs the answer before its first await.
 */
export interface ChatResponseStore {
  get(chatId: string): ChatResponseRecord | undefined;
  set(chatId: string, value: ChatResponseRecord): void;
  delete(chatId: string): void;
}

/** The part of the Web Storage API (`localStorage`, `sessionStorage`) the store uses. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface UnbrokenChatTransportOptions<UI_MESSAGE extends UIMessage = UIMessage> {
  client: UnbrokenClient;
  /** Default: in memory. Browsers: `webStorageChatStore(localStorage)` to reconnect after a reload. */
  store?: ChatResponseStore;
  /** Turns the chat's UI messages into the generate request's messages. Default: `uiMessagesToChatMessages`. */
  toMessages?: (messages: UI_MESSAGE[]) => ChatMessage[];
  /** Generation parameters of every request (`max_tokens`, `temperature`, `seed`, `stop`…). */
  params?: GenerationParams;
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

const FINISH_REASON = { stop: "stop", length: "length", error: "error", cancelled: "other" } as const;

/**
 * `useChat({ transport: new UnbrokenChatTransport({ client }) })`.
 *
 * - `sendMessages` starts a generation and streams its events as UI message chunks. A dropped
 *   socket is invisible: the client reconnects and resumes from the last seq.
 * - The request's `abortSignal` (useChat's `stop()`) is a real stop: the generation is cancelled
 *   and the stream closes. Cancelling the returned stream without aborting only stops reading;
 *   the answer goes on and `reconnectToStream` can pick it up.
 * - `reconnectToStream` (useChat's `resume: true`, `resumeStream()`) returns the chat's running
 *   answer, or one that finished before it was read to the end, or null when there is none.
 * - `steer(chatId, text)` steers the chat's running answer; it appears as a `steering-message` part.
 *
 * The request's `headers`, `body` and `metadata` are not used: authentication is the client's
 * `token`.
 */
export class UnbrokenChatTransport<UI_MESSAGE extends UIMessage = UIMessage> implements ChatTransport<UI_MESSAGE> {
  /** Tells `useChat` whether a reconnect starts over (and it must rebuild the message). */
  readonly resumeStreamIsReplay: boolean;

  readonly #client: UnbrokenClient;
  readonly #store: ChatResponseStore;
  readonly #toMessages: (messages: UI_MESSAGE[]) => ChatMessage[];
  readonly #params: GenerationParams | undefined;
  readonly #continue: boolean;
  /** The latest stream of each chat on this transport. */
  readonly #active = new Map<string, Attachment>();

  constructor(options: UnbrokenChatTransportOptions<UI_MESSAGE>) {
    if (options?.client === undefined) throw new TypeError("UnbrokenChatTransport: options.client is required");
    this.#client = options.client;
    this.#store = options.store ?? memoryChatStore();
    this.#toMessages = options.toMessages ?? uiMessagesToChatMessages;
    this.#params = options.params;
    if (options.resume !== undefined && options.resume !== "replay" && options.resume !== "continue") {
      throw new TypeError('UnbrokenChatTransport: options.resume must be "replay" or "continue"');
    }
    this.#continue = options.resume === "continue";
    this.resumeStreamIsReplay = !this.#continue;
  }

  async sendMessages(options: SendOptions<UI_MESSAGE>): Promise<ReadableStream<UIMessageChunk>> {
    const { chatId, messages, abortSignal } = options;
    throwIfAborted(abortSignal);
    const request = { messages: this.#toMessages(messages), ...(this.#params ? { params: this.#params } : {}) };
    const handle = this.#client.generate(request);
    this.#store.set(chatId, { rid: handle.rid });
    const att = this.#attach(chatId, handle.rid, "send", abortSignal);
    att.handle = handle;
    handle.accepted.then(() => (att.accepted = true), noop);
    return this.#open(att, handle);
  }

  async reconnectToStream(options: ReconnectOptions<UI_MESSAGE>): Promise<ReadableStream<UIMessageChunk> | null> {
    const { chatId, abortSignal } = options;
    throwIfAborted(abortSignal);
    const record = this.#read(chatId);
    if (record === undefined) return null;
    // Everything up to the subscribe happens before the first await: useChat aborts a resume it
    // replaces right before starting the next one, and that abort must not be taken for a stop.
    const prev = this.#active.get(chatId);
    const release = prev !== undefined && prev.rid === record.rid ? this.#supersede(prev) : undefined;
    const att = this.#attach(chatId, record.rid, "reconnect", abortSignal);
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

  #attach(chatId: string, rid: string, kind: Attachment["kind"], signal: AbortSignal | undefined): Attachment {
    const att: Attachment = {
      chatId,
      rid,
      kind,
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
          controller.enqueue({ type: "start", messageId: handle.rid });
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
      this.#record(att.chatId, { rid: att.rid, seq: frame.seq });
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
    return typeof seq === "number" && Number.isSafeInteger(seq) && seq > 0 ? { rid: record.rid, seq } : { rid: record.rid };
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

/** Turns one response's event frames into UI message chunks (the `start` chunk is sent before). */
class ChunkMapper {
  readonly #rid: string;
  #textId: string | undefined;

  constructor(rid: string) {
    this.#rid = rid;
  }

  map(frame: ResponseEventFrame): UIMessageChunk[] {
    const ev = frame.event;
    const out: UIMessageChunk[] = [];
    switch (ev.kind) {
      case "token":
        if (typeof ev.text !== "string" || ev.text === "") break;
        if (this.#textId === undefined) {
          // Named after the seq it starts at, so a replay gives the same ids.
          this.#textId = `text-${frame.seq}`;
          out.push({ type: "text-start", id: this.#textId });
        }
        out.push({ type: "text-delta", id: this.#textId, delta: ev.text });
        break;
      case "steer":
        // The text after a steer is a new part, so the marker sits where it took effect.
        this.#closeText(out);
        out.push({ type: "steering-message", id: `${this.#rid}-steer-${frame.seq}`, parts: [{ type: "text", text: ev.text }] });
        break;
      case "end": {
        this.#closeText(out);
        if (ev.reason === "error") {
          const code = ev.error?.code ?? "error";
          out.push({ type: "error", errorText: `${code}: ${ev.error?.message ?? "the generation failed"}` });
        } else if (ev.reason === "cancelled") {
          out.push({ type: "abort", reason: "cancelled" });
        }
        out.push({ type: "finish", finishReason: FINISH_REASON[ev.reason] ?? "other" });
        break;
      }
      default:
        break; // `start`, and kinds a later edge may add
    }
    return out;
  }

  #closeText(out: UIMessageChunk[]): void {
    if (this.#textId === undefined) return;
    out.push({ type: "text-end", id: this.#textId });
    this.#textId = undefined;
  }
}

/**
 * The default `toMessages`: each message's text parts joined, roles kept (`system`, `user`,
 * `assistant`). A steer inside an assistant answer becomes a user message between its two
 * halves. Messages without text are left out, and at most the last 256 are sent.
 */
export function uiMessagesToChatMessages(messages: readonly UIMessage[]): ChatMessage[] {
  const out: ChatMessage[] = [];
  const push = (role: ChatMessage["role"], content: string): void => {
    if (content !== "") out.push({ role, content });
  };
  for (const message of messages) {
    const role = message.role;
    if (role !== "system" && role !== "user" && role !== "assistant") continue;
    let text = "";
    for (const part of message.parts) {
      if (part.type === "text") text += part.text;
      else if (part.type === "steering-message") {
        push(role, text);
        text = "";
        push("user", part.parts.map((p) => (p.type === "text" ? p.text : "")).join(""));
      }
    }
    push(role, text);
  }
  return out.slice(-LIMITS.messages);
}

/** A store in `localStorage` or `sessionStorage`: one key per chat, `prefix` + chatId. */
export function webStorageChatStore(storage: StorageLike, prefix = "unbroken:chat:"): ChatResponseStore {
  return {
    get(chatId) {
      const raw = storage.getItem(prefix + chatId);
      if (raw === null) return undefined;
      try {
        const value = JSON.parse(raw) as Partial<ChatResponseRecord> | null;
        if (typeof value?.rid !== "string") return undefined;
        return typeof value.seq === "number" ? { rid: value.rid, seq: value.seq } : { rid: value.rid };
      } catch {
        return undefined;
      }
    },
    set(chatId, value) {
      storage.setItem(prefix + chatId, JSON.stringify(value));
    },
    delete(chatId) {
      storage.removeItem(prefix + chatId);
    },
  };
}

function memoryChatStore(): ChatResponseStore {
  const map = new Map<string, ChatResponseRecord>();
  return {
    get: (chatId) => map.get(chatId),
    set: (chatId, value) => void map.set(chatId, value),
    delete: (chatId) => void map.delete(chatId),
  };
}

function abortError(signal: AbortSignal | undefined): unknown {
  const reason: unknown = signal?.reason;
  if (reason instanceof Error && reason.name === "AbortError") return reason;
  return new DOMException("The request was aborted", "AbortError");
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}
