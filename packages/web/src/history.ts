import type { ChatMessage } from "@unbroken/client";
import type { Answer, ToolPart } from "./model.js";

/** One turn of the thread as history: its new messages (user or tool), then its answer. */
export interface HistoryTurn {
  messages: readonly ChatMessage[];
  answer: Answer;
}

/** The text of an answer without its steer markers, reasoning and calls. */
export function answerText(answer: Answer): string {
  let text = "";
  for (const p of answer.parts) if (p.kind === "text") text += p.text;
  return text;
}

/**
 * An answer as an assistant message: its text, and the calls it made that `answered` holds a
 * result for (a call no tool message answers would make the request invalid). An answer whose
 * events expired is an empty message: it still closes its turn, so the next turn's new
 * messages are only its own.
 */
export function assistantMessage(answer: Answer, answered: ReadonlySet<string>): ChatMessage {
  const content = answerText(answer);
  const calls = answer.parts.filter((p): p is ToolPart => p.kind === "tool" && p.state === "done" && answered.has(p.id));
  if (calls.length === 0) return { role: "assistant", content };
  return {
    role: "assistant",
    content,
    tool_calls: calls.map((c) => ({ id: c.id, type: "function" as const, function: { name: c.name, arguments: c.args } })),
  };
}

const toolIds = (messages: readonly ChatMessage[]): Set<string> =>
  new Set(messages.flatMap((m) => (m.role === "tool" ? [m.tool_call_id] : [])));

const sizeOf = (messages: readonly ChatMessage[]): number => messages.reduce((n, m) => n + JSON.stringify(m).length, 0);

/**
 * The messages of a generate that appends `next` (a question, or tool results) to a thread
 * whose turns are `turns`: the recent conversation, kept well under a frame, then `next`.
 * Old turns are dropped whole, and the kept part starts at a question, so a tool result
 * never loses its call.
 */
export function historyMessages(
  turns: readonly HistoryTurn[],
  next: readonly ChatMessage[],
  maxChars = 16_000,
  maxMessages = 32,
): ChatMessage[] {
  const blocks = turns.map((t, i) => {
    const following = i + 1 < turns.length ? (turns[i + 1] as HistoryTurn).messages : next;
    return [...t.messages, assistantMessage(t.answer, toolIds(following))];
  });
  let size = sizeOf(next);
  let count = next.length;
  let from = blocks.length;
  while (from > 0) {
    const block = blocks[from - 1] as ChatMessage[];
    if (from < blocks.length && (size + sizeOf(block) > maxChars || count + block.length > maxMessages)) break;
    size += sizeOf(block);
    count += block.length;
    from--;
  }
  // Back to the turn that asked: a tool round kept without its question would lose its call.
  while (from > 0 && from < blocks.length && blocks[from]?.[0]?.role !== "user") from--;
  return [...blocks.slice(from).flat(), ...next];
}
