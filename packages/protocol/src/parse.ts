import type { z } from "zod";
import { CLIENT_FRAME_SCHEMAS, LIMITS, type ClientFrame } from "./frames.js";
import type { ErrorFrame } from "./frames.js";

export type ParseResult = { ok: true; frame: ClientFrame } | { ok: false; error: ErrorFrame };

function fail(message: string, id?: string): ParseResult {
  const error: ErrorFrame = { type: "error", code: "bad_request", message };
  if (id !== undefined) error.id = id;
  return { ok: false, error };
}

function describe(issues: z.core.$ZodIssue[]): string {
  const first = issues[0];
  if (!first) return "invalid frame";
  const path = first.path.length > 0 ? `${first.path.join(".")}: ` : "";
  return `${path}${first.message}`;
}

/**
 * Turns one text frame into a validated client frame, or the `bad_request` to answer with.
 * The reply carries the frame's id only when that id is itself valid, as the protocol says.
 */
export function parseClientFrame(text: string): ParseResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return fail("frame is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return fail("frame must be a JSON object");
  }
  const obj = value as Record<string, unknown>;
  const rawId = Object.hasOwn(obj, "id") ? obj.id : undefined;
  if (rawId !== undefined && (typeof rawId !== "string" || rawId.length > LIMITS.frameId)) {
    return fail(`id must be a string of at most ${LIMITS.frameId} characters`);
  }
  const id = rawId as string | undefined;
  const type = Object.hasOwn(obj, "type") ? obj.type : undefined;
  if (typeof type !== "string") return fail("frame needs a string field type", id);
  if (!Object.hasOwn(CLIENT_FRAME_SCHEMAS, type)) return fail(`unknown frame type ${JSON.stringify(type.slice(0, 40))}`, id);
  const schema = CLIENT_FRAME_SCHEMAS[type as keyof typeof CLIENT_FRAME_SCHEMAS];
  const parsed = schema.safeParse(obj);
  if (!parsed.success) return fail(describe(parsed.error.issues), id);
  return { ok: true, frame: parsed.data as ClientFrame };
}
