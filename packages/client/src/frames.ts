import {
  acceptedFrameSchema,
  looseEventFrameSchema,
  okFrameSchema,
  pongFrameSchema,
  turnFrameSchema,
  type AcceptedFrame,
  type EventFrame,
  type OkFrame,
  type PongFrame,
  type TurnFrame,
} from "@unbroken/protocol";

/**
 * An event frame as the client hands it out. Its `event` is typed as the kinds protocol v1 knows
 * (`start`, `token`, `steer`, `end`), but a later edge may send kinds this version does not know:
 * they are passed through unchanged, so always keep a default branch.
 */
export type ResponseEventFrame = EventFrame;

export interface WelcomeInfo {
  type: "welcome";
  protocol: number;
  session: string;
  heartbeat_ms: number;
}

/** Error frames are read leniently: a code this version does not know is still an error. */
export interface ErrorInfo {
  type: "error";
  id?: string;
  rid?: string;
  /** The thread a `follow` failed for. */
  thread?: string;
  code: string;
  message: string;
}

export type IncomingFrame =
  | WelcomeInfo
  | AcceptedFrame
  | OkFrame
  | PongFrame
  | ErrorInfo
  | { type: "goaway" }
  | ResponseEventFrame
  | TurnFrame;

function optString(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/**
 * Decodes one message from the edge. Frames of unknown types, binary frames and malformed frames
 * give undefined and are ignored (forward compatibility: a later edge may send more).
 */
export function decodeServerFrame(data: unknown): IncomingFrame | undefined {
  if (typeof data !== "string") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const obj = value as Record<string, unknown>;
  switch (obj.type) {
    case "event": {
      const r = looseEventFrameSchema.safeParse(obj);
      return r.success ? (r.data as unknown as ResponseEventFrame) : undefined;
    }
    case "welcome": {
      const { protocol, session, heartbeat_ms } = obj;
      if (typeof protocol !== "number" || typeof session !== "string") return undefined;
      const hb = typeof heartbeat_ms === "number" && heartbeat_ms > 0 ? heartbeat_ms : 0;
      return { type: "welcome", protocol, session, heartbeat_ms: hb };
    }
    case "accepted": {
      const r = acceptedFrameSchema.safeParse(obj);
      return r.success ? r.data : undefined;
    }
    case "ok": {
      const r = okFrameSchema.safeParse(obj);
      return r.success ? r.data : undefined;
    }
    case "pong": {
      const r = pongFrameSchema.safeParse(obj);
      return r.success ? r.data : undefined;
    }
    case "error": {
      const code = optString(obj.code);
      if (code === undefined) return undefined;
      const frame: ErrorInfo = { type: "error", code, message: optString(obj.message) ?? code };
      const id = optString(obj.id);
      const rid = optString(obj.rid);
      const thread = optString(obj.thread);
      if (id !== undefined) frame.id = id;
      if (rid !== undefined) frame.rid = rid;
      if (thread !== undefined) frame.thread = thread;
      return frame;
    }
    case "goaway":
      return { type: "goaway" };
    case "turn": {
      const r = turnFrameSchema.safeParse(obj);
      return r.success ? r.data : undefined;
    }
    default:
      return undefined;
  }
}
