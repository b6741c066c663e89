import { ProtocolError, type GenerateFrame } from "@unbroken/protocol";
import type { IncomingMessage } from "node:http";
import type { Logger } from "pino";
import type { EdgeLimits } from "./config.js";

/**
 * Token buckets by key (a client address, a rid): `rate` tokens per second up to `burst`.
 * A bucket that has refilled is the same as none, so such buckets are swept away and the map
 * stays as large as the keys active in the last `burst / rate` seconds.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private sweptAt = 0;

  constructor(
    readonly rate: number,
    readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one token for `key`; false when its bucket is empty. */
  take(key: string): boolean {
    const now = this.now();
    this.sweep(now);
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    const tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate);
    if (tokens < 1) {
      this.buckets.set(key, { tokens, at: now });
      return false;
    }
    this.buckets.set(key, { tokens: tokens - 1, at: now });
    return true;
  }

  get size(): number {
    return this.buckets.size;
  }

  private sweep(now: number): void {
    if (now - this.sweptAt < 1_000 || this.buckets.size < 1_000) return;
    this.sweptAt = now;
    const full = (this.burst / this.rate) * 1000;
    for (const [key, b] of this.buckets) if (now - b.at >= full) this.buckets.delete(key);
  }
}

/** Whether a response still runs (or waits in the queue); false once ended or unknown. */
export type IsLive = (rid: string) => Promise<boolean>;

interface Slot {
  /** False while the response is being created: not checked against the store yet. */
  confirmed: boolean;
  since: number;
}

/**
 * Generations started and not ended, per key (`s:<session>`, `o:<owner>`). Ends are learned
 * from subscriptions that see `end`; the rest (a client that unsubscribed, an HTTP generate)
 * by asking the store, when a key is full and every SWEEP_MS for slots older than that.
 */
export class ActiveGenerations {
  private readonly byKey = new Map<string, Map<string, Slot>>();
  private readonly keysOf = new Map<string, Set<string>>();
  private readonly pruning = new Map<string, Promise<void>>();
  private readonly prunedAt = new Map<string, number>();

  constructor(
    private readonly isLive: IsLive,
    private readonly log: Logger,
  ) {}

  count(key: string): number {
    return this.byKey.get(key)?.size ?? 0;
  }

  has(key: string, rid: string): boolean {
    return this.byKey.get(key)?.has(rid) ?? false;
  }

  /** Reserves rid under every key whose limit allows it; returns the first full key instead. */
  tryAdd(rid: string, keys: ReadonlyArray<readonly [key: string, limit: number]>): string | undefined {
    for (const [key, limit] of keys) if (!this.has(key, rid) && this.count(key) >= limit) return key;
    for (const [key] of keys) {
      let slots = this.byKey.get(key);
      if (!slots) {
        slots = new Map();
        this.byKey.set(key, slots);
      }
      if (!slots.has(rid)) slots.set(rid, { confirmed: false, since: Date.now() });
      let ks = this.keysOf.get(rid);
      if (!ks) {
        ks = new Set();
        this.keysOf.set(rid, ks);
      }
      ks.add(key);
    }
    return undefined;
  }

  /** The response was created: from now on the store says whether it still runs. */
  confirm(rid: string): void {
    for (const key of this.keysOf.get(rid) ?? []) {
      const slot = this.byKey.get(key)?.get(rid);
      if (slot) slot.confirmed = true;
    }
  }

  /** The response ended (or was never created): it no longer counts anywhere. */
  remove(rid: string): void {
    for (const key of this.keysOf.get(rid) ?? []) {
      const slots = this.byKey.get(key);
      slots?.delete(rid);
      if (slots?.size === 0) this.byKey.delete(key);
    }
    this.keysOf.delete(rid);
  }

  /** A key that no longer exists (a closed socket): its slots go, the others stay. */
  dropKey(key: string): void {
    for (const rid of this.byKey.get(key)?.keys() ?? []) {
      const ks = this.keysOf.get(rid);
      ks?.delete(key);
      if (ks?.size === 0) this.keysOf.delete(rid);
    }
    this.byKey.delete(key);
    this.prunedAt.delete(key);
  }

  /** Asks the store about key's confirmed slots and drops the ended ones; at most once a second per key. */
  prune(key: string, minAgeMs = 0): Promise<void> {
    const running = this.pruning.get(key);
    if (running) return running;
    if (minAgeMs === 0 && Date.now() - (this.prunedAt.get(key) ?? 0) < 1_000) return Promise.resolve();
    const p = this.runPrune(key, minAgeMs).finally(() => {
      this.pruning.delete(key);
      if (this.byKey.has(key)) this.prunedAt.set(key, Date.now());
    });
    this.pruning.set(key, p);
    return p;
  }

  private async runPrune(key: string, minAgeMs: number): Promise<void> {
    const cutoff = Date.now() - minAgeMs;
    const rids = [...(this.byKey.get(key) ?? [])].filter(([, s]) => s.confirmed && s.since <= cutoff).map(([rid]) => rid);
    for (let i = 0; i < rids.length; i += 16) {
      await Promise.all(
        rids.slice(i, i + 16).map(async (rid) => {
          try {
            if (!(await this.isLive(rid))) this.remove(rid);
          } catch (err) {
            this.log.debug({ rid, err: String(err) }, "could not check whether a generation still runs");
          }
        }),
      );
    }
  }

  /** Checks every key's slots older than `minAgeMs` (a periodic sweep). */
  async sweep(minAgeMs: number): Promise<void> {
    for (const key of [...this.byKey.keys()]) await this.prune(key, minAgeMs);
  }
}

/**
 * How deep a tool's `parameters` may nest. A JSON Schema is a handful of levels; a body of
 * tens of thousands of nested arrays would overflow the stack where the frame is serialized.
 */
export const MAX_SCHEMA_DEPTH = 64;

/** The depth of a JSON value (a scalar is 0), counted without recursion; stops past `limit`. */
export function jsonDepth(value: unknown, limit: number): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (typeof v !== "object" || v === null) continue;
    if (depth + 1 > deepest) deepest = depth + 1;
    if (deepest > limit) return deepest;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return deepest;
}

/** UTF-8 bytes of what a generation is asked, by what asks it: the model reads all of it. */
export interface PromptSize {
  /** The prompt, or every message's content, a call's name and arguments, a tool result. */
  messages: number;
  /** The `tools` as JSON: names, descriptions, parameter schemas. */
  tools: number;
}

export function promptSize(frame: Pick<GenerateFrame, "prompt" | "messages" | "tools">): PromptSize {
  let messages = frame.prompt === undefined ? 0 : Buffer.byteLength(frame.prompt);
  for (const m of frame.messages ?? []) {
    messages += Buffer.byteLength(m.content);
    if (m.role === "assistant")
      for (const c of m.tool_calls ?? []) messages += Buffer.byteLength(c.function.name) + Buffer.byteLength(c.function.arguments);
  }
  const tools = frame.tools?.length ? Buffer.byteLength(JSON.stringify(frame.tools)) : 0;
  return { messages, tools };
}

/** The total of `promptSize`: what MAX_PROMPT_BYTES bounds. */
export function promptBytes(frame: Pick<GenerateFrame, "prompt" | "messages" | "tools">): number {
  const { messages, tools } = promptSize(frame);
  return messages + tools;
}

/** `bad_request` naming the first tool whose parameters nest deeper than MAX_SCHEMA_DEPTH. */
function checkSchemaDepth(frame: GenerateFrame): void {
  for (const [i, tool] of (frame.tools ?? []).entries()) {
    if (jsonDepth(tool.function.parameters, MAX_SCHEMA_DEPTH) > MAX_SCHEMA_DEPTH)
      throw new ProtocolError("bad_request", `tools.${i}.function.parameters: nested deeper than ${MAX_SCHEMA_DEPTH} levels`);
  }
}

function tooLarge(frame: GenerateFrame, limit: number): ProtocolError | undefined {
  const { messages, tools } = promptSize(frame);
  if (messages + tools <= limit) return undefined;
  const what =
    tools === 0 ? `the prompt is ${messages} bytes` : `the prompt is ${messages + tools} bytes (messages ${messages}, tools ${tools})`;
  return new ProtocolError("too_large", `${what}; at most ${limit} (MAX_PROMPT_BYTES)`);
}

/**
 * Checks a generate against MAX_PROMPT_BYTES (the messages, the calls in them, the tool results
 * and the tools' schemas together: the model reads them all) and MAX_TOKENS_CEILING; returns
 * the frame to run (with `max_tokens` set to the ceiling when it is below the protocol's
 * maximum and none was asked).
 */
export function checkRequest(frame: GenerateFrame, limits: EdgeLimits, protocolMaxTokens: number): GenerateFrame {
  checkSchemaDepth(frame);
  const large = tooLarge(frame, limits.maxPromptBytes);
  if (large) throw large;
  const asked = frame.params?.max_tokens;
  if (asked !== undefined && asked > limits.maxTokensCeiling) {
    throw new ProtocolError("bad_request", `params.max_tokens: at most ${limits.maxTokensCeiling} on this edge (MAX_TOKENS_CEILING)`);
  }
  if (asked === undefined && limits.maxTokensCeiling < protocolMaxTokens) {
    return { ...frame, params: { ...frame.params, max_tokens: limits.maxTokensCeiling } };
  }
  return frame;
}

/** The client's address: the socket's peer, or behind a trusted proxy the last `X-Forwarded-For` entry. */
export function clientAddress(req: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    const header = req.headers["x-forwarded-for"];
    const list = (Array.isArray(header) ? header.join(",") : (header ?? "")).split(",");
    const last = list[list.length - 1]?.trim();
    if (last) return last;
  }
  return req.socket.remoteAddress ?? "unknown";
}

/** A replay held for a reader that took nothing of what waits for it for this long: a slow consumer. */
export const STALL_MS = 5_000;

/**
 * Resolves once `buffered()` is at most `target`; calls `stalled` (and resolves) when it has
 * not gone down for STALL_MS. Polls: it only runs while a reader is behind.
 */
export async function drained(buffered: () => number, target: number, stalled: () => void): Promise<void> {
  let low = buffered();
  let progressAt = Date.now();
  while (low > target) {
    await new Promise((r) => setTimeout(r, 10));
    const now = buffered();
    if (now < low) {
      low = now;
      progressAt = Date.now();
    } else if (Date.now() - progressAt >= STALL_MS) {
      return stalled();
    }
  }
}

export const rateLimited = (message: string, rid?: string) => new ProtocolError("rate_limited", message, rid === undefined ? {} : { rid });
