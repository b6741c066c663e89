/**
 * The chat's thread, for the AI SDK transport: the chat id is the thread id, so a device that
 * never saw the chat finds its running answer (`reconnectToStream`) and its conversation so far
 * (`threadMessages`) from the edge alone.
 */
import type { UIMessage } from "ai";
import { isRid } from "@unbroken/protocol";
import type { UnbrokenClient } from "./client.js";
import { callSafely, isUnbrokenError } from "./errors.js";
import type { ResponseHandle } from "./response.js";
import type { ThreadTurn } from "./thread.js";
import type { ChatResponseStore } from "./ai-sdk-store.js";
import { answerUIParts, setToolOutputs } from "./ai-sdk-parts.js";

const noop = (): void => undefined;

/** A thread the reader may not see and one that does not exist answer alike: no thread. */
const NO_THREAD = new Set(["forbidden", "not_found"]);
/** An answer that cannot be read any more: left out. */
const NO_ANSWER = new Set(["gone", "not_found", "forbidden"]);

/** Whether a chat id can name a thread (the rid rules); other chats keep the store-only behaviour. */
export const isThreadId = (chatId: string): boolean => isRid(chatId);

/**
 * The thread's turns as the edge holds them now, or null when there is no such thread (or it is
 * not the reader's). The follow is closed before this returns.
 */
export async function readTurns(client: UnbrokenClient, thread: string, signal?: AbortSignal): Promise<ThreadTurn[] | null> {
  const handle = client.thread(thread);
  const stop = (): void => void handle.close().catch(noop);
  signal?.addEventListener("abort", stop, { once: true });
  try {
    await handle.replayed;
    return [...handle.turns];
  } catch (err) {
    if (signal?.aborted) throw abortError(signal);
    if (isUnbrokenError(err) && NO_THREAD.has(err.code)) return null;
    throw err;
  } finally {
    signal?.removeEventListener("abort", stop);
    stop();
  }
}

/**
 * The answer a subscribe opens, unless it had already ended (or cannot be read): then it is
 * unsubscribed and undefined is returned. The caller owns a returned handle. An abort
 * unsubscribes at once, so the resume that replaced this one may subscribe the same rid.
 */
export async function openIfRunning(client: UnbrokenClient, rid: string, signal?: AbortSignal): Promise<ResponseHandle | undefined> {
  if (signal?.aborted) throw abortError(signal);
  const handle = client.subscribe(rid, { after: 0 });
  const stop = (): void => void handle.unsubscribe().catch(noop);
  signal?.addEventListener("abort", stop, { once: true });
  try {
    const accepted = await handle.accepted;
    if (signal?.aborted) throw abortError(signal);
    if (!accepted.ended) return handle;
  } catch (err) {
    if (signal?.aborted) throw abortError(signal);
    if (isUnbrokenError(err) && NO_ANSWER.has(err.code)) return undefined;
    throw err;
  } finally {
    signal?.removeEventListener("abort", stop);
  }
  stop();
  return undefined;
}

/**
 * The running answer of the thread's last turn, subscribed from its start; undefined when the
 * thread has no turn (or does not exist, or is not the reader's) or that answer has ended.
 */
export async function lastRunningAnswer(client: UnbrokenClient, thread: string, signal?: AbortSignal): Promise<ResponseHandle | undefined> {
  const last = (await readTurns(client, thread, signal))?.at(-1);
  return last === undefined ? undefined : openIfRunning(client, last.rid, signal);
}

/**
 * Records an answer found through the thread in the transport's store (the cache: the next
 * reconnect needs no round trip). False, the handle let go, when the store already holds
 * another answer: one sent in this chat while the thread was read is newer.
 */
export function cacheFound(store: ChatResponseStore, chatId: string, handle: ResponseHandle): boolean {
  const held = store.get(chatId)?.rid;
  if (held === undefined) callSafely(() => store.set(chatId, { rid: handle.rid }));
  else if (held !== handle.rid) {
    handle.unsubscribe().catch(noop);
    return false;
  }
  return true;
}

export interface ThreadMessagesOptions {
  /**
   * The store of the transport that resumes the chat next: the running answer (left out of the
   * messages) is recorded there, so `reconnectToStream` streams it even if it ends in between.
   */
  store?: ChatResponseStore;
}

/**
 * The conversation of a chat whose id is a thread, as `useChat`'s initial `messages`: the user
 * (and system) messages of each turn, then the turn's answer as an assistant message with the
 * same parts the transport's stream builds (text, reasoning, tool calls, steers). A turn that
 * brings only tool results (an agent loop's next request) adds them as the outputs of the calls
 * of the answer before it, as strings (the content the model got back).
 *
 * An answer's message id is its rid, as `reconnectToStream` uses for an answer it finds through
 * the thread. Answers still running are left out (`reconnectToStream` streams the last one);
 * answers that expired are left out, their turns' user messages kept. An unknown thread (or
 * another owner's) gives []. Reads every turn's answer, one after the other.
 */
export async function threadMessages<M extends UIMessage = UIMessage>(
  client: UnbrokenClient,
  chatId: string,
  options: ThreadMessagesOptions = {},
): Promise<M[]> {
  if (!isThreadId(chatId)) return [];
  const turns = (await readTurns(client, chatId)) ?? [];
  const out: UIMessage[] = [];
  for (const [i, turn] of turns.entries()) {
    out.push(...turnMessages(turn));
    setToolOutputs(out, turn.messages);
    const handle = await openIfEnded(client, turn.rid, i === turns.length - 1 ? { chatId, store: options.store } : undefined);
    if (handle === undefined) continue;
    const frames = [];
    for await (const frame of handle) frames.push(frame);
    out.push({ id: turn.rid, role: "assistant", parts: answerUIParts(turn.rid, frames) });
  }
  return out as M[];
}

/**
 * The ended answer of a turn, ready to be read to its end; undefined when it runs still (the
 * last turn's is then recorded in `last.store`) or cannot be read.
 */
async function openIfEnded(
  client: UnbrokenClient,
  rid: string,
  last: { chatId: string; store: ChatResponseStore | undefined } | undefined,
): Promise<ResponseHandle | undefined> {
  let handle: ResponseHandle;
  try {
    handle = client.subscribe(rid, { after: 0 });
  } catch (err) {
    // This client streams it already (its own generate, still running): left out like any running answer.
    if (isUnbrokenError(err) && err.code === "bad_request") return undefined;
    throw err;
  }
  try {
    if ((await handle.accepted).ended) return handle;
  } catch (err) {
    if (isUnbrokenError(err) && NO_ANSWER.has(err.code)) return undefined;
    throw err;
  }
  handle.unsubscribe().catch(noop);
  if (last?.store !== undefined && last.store.get(last.chatId) === undefined) last.store.set(last.chatId, { rid });
  return undefined;
}

/** A turn's user and system messages as UI messages (tool results are outputs, not messages). */
function turnMessages(turn: ThreadTurn): UIMessage[] {
  const out: UIMessage[] = [];
  for (const [i, m] of turn.messages.entries()) {
    if (m.role !== "user" && m.role !== "system") continue;
    out.push({ id: `${turn.rid}-${m.role}-${i}`, role: m.role, parts: [{ type: "text", text: m.content }] });
  }
  return out;
}

export function abortError(signal: AbortSignal | undefined): unknown {
  const reason: unknown = signal?.reason;
  if (reason instanceof Error && reason.name === "AbortError") return reason;
  return new DOMException("The request was aborted", "AbortError");
}
