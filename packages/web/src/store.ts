import type { ChatMessage } from "@unbroken/client";

/** A piece of an answer: generated text, or a steer instruction at the spot it took effect. */
export type Part = { kind: "text" | "steer"; text: string };

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

/** The text of an answer without its steer markers. */
export function answerText(turn: AnswerTurn): string {
  return turn.parts
    .filter((p) => p.kind === "text")
    .map((p) => p.text)
    .join("");
}

/** `?token=` (kept for this tab, then removed from the address bar) or the one kept earlier. */
export function takeToken(): string | undefined {
  const url = new URL(location.href);
  const given = url.searchParams.get("token");
  if (given !== null) {
    if (given === "") sessionStorage.removeItem(TOKEN_KEY);
    else sessionStorage.setItem(TOKEN_KEY, given);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

/** The messages a new question is sent with: the recent conversation, kept well under a frame. */
export function recentMessages(turns: Turn[], question: string, maxChars = 16_000): ChatMessage[] {
  const out: ChatMessage[] = [{ role: "user", content: question }];
  let size = question.length;
  for (let i = turns.length - 1; i >= 0 && out.length < 16; i--) {
    const t = turns[i] as Turn;
    const msg: ChatMessage = t.role === "user" ? { role: "user", content: t.text } : { role: "assistant", content: answerText(t) };
    if (t.role === "assistant" && t.shared) continue;
    size += msg.content.length;
    if (size > maxChars) break;
    out.unshift(msg);
  }
  return out;
}
