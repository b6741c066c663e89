import type { LooseEventFrame } from "@unbroken/protocol";

/**
 * One stored event as read back: the exact text that was stored (the frame a client gets, byte
 * for byte), its seq and kind, and its stream sequence. Forwarding needs nothing more, so the
 * frame's body is parsed only when someone asks for `frame`.
 */
export class StoredEvent {
  private parsed: LooseEventFrame | undefined;

  constructor(
    readonly raw: string,
    readonly seq: number,
    readonly kind: string,
    readonly streamSeq: number,
    frame?: LooseEventFrame,
    /** When JetStream stored it (ms since the epoch), where the read told (a direct or last get), or when it arrived on the live subject (sent as it was stored). */
    readonly storedAt?: number,
  ) {
    this.parsed = frame;
  }

  /** The parsed frame. A body that does not parse (nothing of ours writes one) reads as its seq and kind alone. */
  get frame(): LooseEventFrame {
    if (this.parsed === undefined) {
      let value: unknown;
      try {
        value = JSON.parse(this.raw);
      } catch {
        value = undefined;
      }
      this.parsed = isEventFrame(value) ? value : { type: "event", rid: "", seq: this.seq, event: { kind: this.kind } };
    }
    return this.parsed;
  }
}

const decoder = new TextDecoder();

/**
 * Reads one stored event, or null when it is not an event frame. The log is written by this
 * system's own writers as `{"type":"event","rid":…,"seq":…,"event":{"kind":…,…}}`; that shape is
 * read by a scan of its head, without parsing the body (no schema validation, no objects, on
 * the path every event takes to every reader). Anything else goes through JSON.parse and a
 * check of what readers rely on (type, rid, seq, kind).
 */
export function decodeEvent(data: Uint8Array, streamSeq = 0, storedAt?: number): StoredEvent | null {
  const raw = decoder.decode(data);
  return scanEvent(raw, streamSeq, storedAt) ?? parseEvent(raw, streamSeq, storedAt);
}

const HEAD = '{"type":"event","rid":"';
const SEQ = '","seq":';
const EVENT_KIND = ',"event":{"kind":"';
const KINDS = ["token", "reasoning", "tool_args", "start", "tool_call", "tool_done", "steer", "handover", "end", "tool_dropped"];

function scanEvent(raw: string, streamSeq: number, storedAt?: number): StoredEvent | null {
  if (!raw.startsWith(HEAD) || !raw.endsWith("}}")) return null;
  let i = HEAD.length;
  while (isRidChar(raw.charCodeAt(i))) i++;
  if (i === HEAD.length || !raw.startsWith(SEQ, i)) return null;
  i += SEQ.length;
  const digits = i;
  let seq = 0;
  for (let c = raw.charCodeAt(i); c >= 48 && c <= 57; c = raw.charCodeAt(++i)) seq = seq * 10 + (c - 48);
  if (i === digits || i - digits > 15 || seq === 0 || raw.charCodeAt(digits) === 48) return null;
  if (!raw.startsWith(EVENT_KIND, i)) return null;
  i += EVENT_KIND.length;
  const end = raw.indexOf('"', i);
  if (end <= i || raw.lastIndexOf("\\", end) >= i) return null;
  return new StoredEvent(raw, seq, knownKind(raw, i, end) ?? raw.slice(i, end), streamSeq, undefined, storedAt);
}

function parseEvent(raw: string, streamSeq: number, storedAt?: number): StoredEvent | null {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return null;
  }
  return isEventFrame(value) ? new StoredEvent(raw, value.seq, value.event.kind, streamSeq, value, storedAt) : null;
}

/** The kind between `from` and `to` as one of the known kinds' strings (no new string per event). */
function knownKind(raw: string, from: number, to: number): string | undefined {
  for (const k of KINDS) if (k.length === to - from && raw.startsWith(k, from)) return k;
  return undefined;
}

function isRidChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 95;
}

function isEventFrame(value: unknown): value is LooseEventFrame {
  if (typeof value !== "object" || value === null) return false;
  const f = value as { type?: unknown; rid?: unknown; seq?: unknown; event?: unknown };
  const event = f.event as { kind?: unknown } | null | undefined;
  return (
    f.type === "event" &&
    typeof f.rid === "string" &&
    typeof f.seq === "number" &&
    Number.isSafeInteger(f.seq) &&
    f.seq > 0 &&
    typeof event === "object" &&
    event !== null &&
    typeof event.kind === "string"
  );
}
