/**
 * A piece of an answer: generated text, the model's reasoning, a steer instruction at the spot
 * it took effect, or a tool call (its arguments as they streamed, then its result).
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
  /** The call's result: run by this page, or read from the next turn's `tool` message. */
  result?: string;
}

/** One answer as the page holds it: what its log's events (1..seq) fold into. */
export interface Answer {
  rid: string;
  parts: Part[];
  seq: number;
  /** How it ended; absent while it runs. */
  end?: { reason: string; detail?: string };
  /** Opened from a `#r=` link: not part of the thread, its question is not known here. */
  shared?: boolean;
}
