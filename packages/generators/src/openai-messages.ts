import type { ChatMessage, GenerationBody } from "@unbroken/protocol";
import type { ResumeState } from "./generator.js";
import type { WireMessage } from "./openai-stream.js";

/** Asks the model to go on after a steer; the instruction itself comes first. */
export const STEER_CONTINUE =
  "Continue your previous answer from exactly where it stopped, following the instruction above. " +
  "Do not repeat any text you already wrote.";

/** Asks the model to go on after the upstream stream was cut. */
export const CUT_CONTINUE =
  "Your previous answer was cut off. Continue it from exactly where it stopped. " + "Do not repeat any text you already wrote.";

interface Break {
  /** The assistant text written since the previous break (never empty). */
  partial: string;
  /** Instructions given at this break; none when it is a continuation after a cut. */
  steers: string[];
}

/**
 * The messages of one response as it is steered and continued. The upstream sees:
 *
 *   the request's messages (a `prompt` is one user message), with the steers given before
 *   any text appended to the last user message;
 *   then for every break (steer or cut) after some text: an assistant message with the text
 *   written since the previous break, and a user message with the instructions and a request
 *   to continue the answer from where it stopped without repeating it.
 *
 * Instructions are merged into a user message rather than added as consecutive user messages
 * because several chat templates (Gemma, older Mistral, Llama 2) reject roles that do not
 * alternate, and servers such as vLLM answer those with HTTP 400.
 */
export class Conversation {
  private readonly base: ChatMessage[];
  private readonly first: string[];
  private readonly breaks: Break[] = [];

  constructor(body: GenerationBody, steers: string[]) {
    this.base = body.prompt !== undefined ? [{ role: "user", content: body.prompt }] : [...(body.messages ?? [])];
    this.first = [...steers];
  }

  /** A steer at a token boundary, `partial` being the text written since the previous break. */
  steer(partial: string, text: string): void {
    this.mark(partial).push(text);
  }

  /** The stream was cut after `partial` (since the previous break): the answer must go on. */
  cut(partial: string): void {
    this.mark(partial);
  }

  messages(): ChatMessage[] {
    const out = this.base.map((m) => ({ ...m }));
    if (this.first.length > 0) appendUser(out, this.first.join("\n\n"));
    for (const b of this.breaks) {
      out.push({ role: "assistant", content: b.partial });
      out.push({
        role: "user",
        content: b.steers.length > 0 ? `${b.steers.join("\n\n")}\n\n${STEER_CONTINUE}` : CUT_CONTINUE,
      });
    }
    return out;
  }

  /** The instruction list a new instruction joins: a new break after text, else the last one. */
  private mark(partial: string): string[] {
    if (partial.length > 0) {
      const b: Break = { partial, steers: [] };
      this.breaks.push(b);
      return b.steers;
    }
    return this.breaks.at(-1)?.steers ?? this.first;
  }
}

/**
 * The conversation of a response another worker began, rebuilt from its log: each logged
 * steer is a break after the text before it, and the text after the last break is a cut,
 * so the first request asks the model to continue the answer exactly where the log ends.
 * `steers` take effect at that point (they join the last break).
 */
export function resumedConversation(body: GenerationBody, resume: ResumeState, steers: string[]): Conversation {
  const convo = new Conversation(body, []);
  let partial = "";
  let s = 0;
  const steersUpTo = (i: number): void => {
    for (let st = resume.steers[s]; st !== undefined && st.at <= i; st = resume.steers[++s]) {
      convo.steer(partial, st.text);
      partial = "";
    }
  };
  for (const [i, text] of resume.tokens.entries()) {
    steersUpTo(i);
    partial += text;
  }
  steersUpTo(Number.POSITIVE_INFINITY);
  if (partial.length > 0) convo.cut(partial);
  for (const text of steers) convo.steer("", text);
  return convo;
}

function appendUser(messages: ChatMessage[], text: string): void {
  const last = messages.at(-1);
  if (last?.role === "user") last.content = last.content.length > 0 ? `${last.content}\n\n${text}` : text;
  else messages.push({ role: "user", content: text });
}

/**
 * Messages as the upstream takes them: an assistant message that made calls has `content:
 * null` when it wrote no text (what OpenAI itself returns; some templates render "" as an
 * empty text turn), and carries its `tool_calls`; tool messages keep their `tool_call_id`.
 */
export function wireMessages(messages: ChatMessage[]): WireMessage[] {
  return messages.map((m): WireMessage => {
    if (m.role !== "assistant") return { ...m };
    if (!m.tool_calls) return { role: "assistant", content: m.content };
    return {
      role: "assistant",
      content: m.content === "" ? null : m.content,
      tool_calls: m.tool_calls.map((c) => ({
        id: c.id,
        type: "function",
        function: { name: c.function.name, arguments: c.function.arguments },
      })),
    };
  });
}
