import type { ChatMessage, ReasoningEffort } from "@unbroken/client";

/**
 * A piece of an answer: generated text, the model's reasoning, a steer instruction at the spot
 * it took effect, or a tool call (its arguments as they streamed, then the page's result).
 */
export type Part = TextLikePart | ToolPart;
export interface TextLikePart {
  kind: "text" | "steer" | "reasoning";
  text: string;
}
export interface ToolPart {
  kind: "tool";
  id: string;
  name: string;
  args: string;
  state: "streaming" | "done" | "dropped";
  /** What the page's tool returned, once it ran. */
  result?: string;
}

export interface UserTurn {
  role: "user";
  text: string;
}

export interface AnswerTurn {
  role: "assistant";
  rid: string;
  /** What the answer shows, exactly as the log's events came (seq 1..seq). */
  parts: Part[];
  seq: number;
  /** Set once the edge accepted the request: from then on a reload subscribes from `seq`. */
  accepted: boolean;
  /** The request, kept until it is accepted so a reload can re-send it (same rid, idempotent). */
  request?: ChatMessage[];
  /** The reasoning effort it was asked with (the page's "Think first" toggle). */
  effort?: ReasoningEffort;
  /** How it ended; absent while it runs. */
  end?: { reason: string; detail?: string };
  /** Opened from a link: the question is not known here. */
  shared?: boolean;
}

export type Turn = UserTurn | AnswerTurn;

const KEY = "unbroken.chat.v1";
const TOKEN_KEY = "unbroken.token";

/** The conversation of this tab, kept in sessionStorage so a reload resumes it. */
export function loadTurns(): Turn[] {
  try {
    const raw = sessionStorage.getItem(KEY);
    const value: unknown = raw ? JSON.parse(raw) : [];
    return Array.isArray(value) ? (value as Turn[]) : [];
  } catch {
    return [];
  }
}

let pending: Turn[] | undefined;
let timer: ReturnType<typeof setTimeout> | undefined;

/** Saves soon (coalesced: one write per burst of events); `flush` writes at once. */
export function saveTurns(turns: Turn[]): void {
  pending = turns;
  timer ??= setTimeout(flushTurns, 50);
}

export function flushTurns(): void {
  clearTimeout(timer);
  timer = undefined;
  if (pending === undefined) return;
  try {
    sessionStorage.setItem(KEY, JSON.stringify(pending));
  } catch {
    // storage full or disabled: the page still works, a reload just starts over
  }
  pending = undefined;
}

/** The text of an answer without its steer markers, reasoning and calls. */
export function answerText(turn: AnswerTurn): string {
  let text = "";
  for (const p of turn.parts) if (p.kind === "text") text += p.text;
  return text;
}

/** What `takeToken` found: the token to use, and whether a link's token was turned down. */
export interface TakenToken {
  token: string | undefined;
  /** A link carried another identity than the tab's, and the user kept the tab's. */
  refused: boolean;
}

export const REPLACE_IDENTITY =
  "This link asks this tab to use another identity (its ?token=). Whoever made the link could then read what you ask " +
  "here, and the answers you have would no longer open. Use the link's identity instead of this tab's?";

/**
 * `?token=` (kept for this tab, then removed from the address bar) or the one kept earlier. A
 * link never silently replaces an identity the tab already has: a link made by someone else
 * would make the tab talk as them, and they would read it. The user is asked (`ask`, confirm()
 * on the page); declined, the tab keeps its own. An empty `?token=` asks to drop it, likewise.
 */
export function takeToken(ask: (question: string) => boolean = (q) => confirm(q)): TakenToken {
  const url = new URL(location.href);
  const given = url.searchParams.get("token");
  const kept = sessionStorage.getItem(TOKEN_KEY) ?? undefined;
  let refused = false;
  if (given !== null) {
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
    const asked = given === "" ? undefined : given;
    if (asked !== kept) {
      if (kept === undefined || ask(REPLACE_IDENTITY)) {
        if (asked === undefined) sessionStorage.removeItem(TOKEN_KEY);
        else sessionStorage.setItem(TOKEN_KEY, asked);
      } else refused = true;
    }
  }
  return { token: sessionStorage.getItem(TOKEN_KEY) ?? undefined, refused };
}

/** An answer as history: its text, and when it called tools, the calls and their results. */
export function answerMessages(turn: AnswerTurn): ChatMessage[] {
  const calls = turn.parts.filter((p): p is ToolPart => p.kind === "tool" && p.state === "done" && p.result !== undefined);
  if (calls.length === 0) return [{ role: "assistant", content: answerText(turn) }];
  return [
    {
      role: "assistant",
      content: answerText(turn),
      tool_calls: calls.map((c) => ({ id: c.id, type: "function" as const, function: { name: c.name, arguments: c.args } })),
    },
    ...calls.map((c): ChatMessage => ({ role: "tool", tool_call_id: c.id, content: c.result ?? "" })),
  ];
}

/**
 * The recent conversation as messages, kept well under a frame; `question`, when given, is
 * the last. A turn is kept whole or not at all, so a tool result never loses its call.
 */
export function recentMessages(turns: Turn[], question?: string, maxChars = 16_000): ChatMessage[] {
  const out: ChatMessage[] = question === undefined ? [] : [{ role: "user", content: question }];
  let size = question?.length ?? 0;
  for (let i = turns.length - 1; i >= 0 && out.length < 16; i--) {
    const t = turns[i] as Turn;
    if (t.role === "assistant" && t.shared) continue;
    const msgs: ChatMessage[] = t.role === "user" ? [{ role: "user", content: t.text }] : answerMessages(t);
    size += msgs.reduce((n, m) => n + m.content.length + JSON.stringify(m.role === "assistant" ? (m.tool_calls ?? []) : []).length, 0);
    if (size > maxChars && out.length > 0) break;
    out.unshift(...msgs);
  }
  return out;
}
