import type { ResumeState } from "./generator.js";

/** What a resumed log holds besides its text, for the rules in OpenAISession.resumed(). */
export interface LoggedParts {
  /** Calls the log began (`tool_call`) and neither completed nor dropped, in order. */
  open: string[];
  /** Calls the log completed (`tool_done`). */
  completed: number;
  /** Whether the log has any reasoning. */
  reasoning: boolean;
  /** Every call id the log used: new calls must not repeat one. */
  ids: Set<string>;
}

export function loggedParts(resume: ResumeState | undefined): LoggedParts {
  const parts: LoggedParts = { open: [], completed: 0, reasoning: false, ids: new Set() };
  for (const out of resume?.outputs ?? []) {
    if (out.type === "reasoning") parts.reasoning = true;
    else if (out.type === "tool_call") {
      parts.ids.add(out.id);
      parts.open.push(out.id);
    } else if (out.type === "tool_done" || out.type === "tool_dropped") {
      parts.open = parts.open.filter((id) => id !== out.id);
      if (out.type === "tool_done") parts.completed++;
    }
  }
  return parts;
}
