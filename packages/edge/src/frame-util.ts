import type { ServerFrame } from "@unbroken/protocol";
import type { RawData } from "ws";

/** The frame with the command's `id`, when it had one (so the client can match the answer). */
export function withId<T extends ServerFrame>(frame: T, id: string | undefined): T {
  return id === undefined ? frame : { ...frame, id };
}

/** A text frame's payload as a string, whichever way `ws` handed it over. */
export function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  return Buffer.from(data as ArrayBuffer).toString("utf8");
}
