import * as z from "zod";

/** A rid becomes a NATS subject token, so only these characters ever get there. */
export const RID_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;

export const ridSchema = z.string().regex(RID_PATTERN, "rid must match ^[A-Za-z0-9_-]{8,64}$");

/** A thread id follows the rid's rules: it becomes a subject token too. */
export const threadIdSchema = z.string().regex(RID_PATTERN, "thread must match ^[A-Za-z0-9_-]{8,64}$");

export function isRid(value: unknown): value is string {
  return typeof value === "string" && RID_PATTERN.test(value);
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/** 22 characters of a 64-symbol alphabet: 132 random bits, more than the 96 the protocol asks. */
export function newRid(): string {
  const bytes = new Uint8Array(22);
  globalThis.crypto.getRandomValues(bytes);
  let out = "";
  for (const b of bytes) out += ALPHABET[b & 63];
  return out;
}
