import type { Tool } from "@unbroken/client";

/**
 * The demo's one tool, run in the page: the local time. Offered in every generate the page
 * sends; a call's result goes back as a `tool` message in a new generate.
 */
export const GET_TIME: Tool = {
  type: "function",
  function: {
    name: "get_time",
    description: "The current date and time, as the user's browser tells it.",
    parameters: {
      type: "object",
      properties: {
        timezone: { type: "string", description: 'An IANA time zone such as "Europe/Paris", or "local" for the user\'s own.' },
      },
      required: ["timezone"],
    },
  },
};

export const TOOLS: Tool[] = [GET_TIME];

/** Runs a call the model made; the result is text for the `tool` message (JSON). */
export function runTool(name: string, input: unknown, now = new Date()): string {
  if (name !== GET_TIME.function.name) return JSON.stringify({ error: `unknown tool ${name}` });
  const asked = typeof input === "object" && input !== null ? (input as { timezone?: unknown }).timezone : undefined;
  const local = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const zone = typeof asked === "string" && validZone(asked) ? asked : local;
  const time = new Intl.DateTimeFormat("en-GB", { dateStyle: "medium", timeStyle: "long", timeZone: zone }).format(now);
  // A zone the browser does not know (a model's guess) falls back to the local one, and says so.
  const note = typeof asked === "string" && asked !== "local" && zone !== asked ? { note: `unknown time zone ${asked}; local time` } : {};
  return JSON.stringify({ timezone: zone, time, ...note });
}

function validZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}
