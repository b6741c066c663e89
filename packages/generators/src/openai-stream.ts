import type { GenerationParams, ReasoningEffort, Tool, ToolChoice, Usage } from "@unbroken/protocol";
import { createParser, type EventSourceMessage, type ParseError } from "eventsource-parser";
import {
  type UpstreamError,
  badResponse,
  connectError,
  httpError,
  interruptedError,
  streamedError,
  timeoutError,
} from "./openai-errors.js";

/** What one streamed chat completion says, in order. */
export type ChatEvent =
  | { kind: "text"; text: string }
  /** `delta.reasoning_content` (vLLM up to 0.x, DeepSeek, llama.cpp) or `delta.reasoning` (newer vLLM, OpenRouter). */
  | { kind: "reasoning"; text: string }
  /** One element of `delta.tool_calls` (or a legacy `delta.function_call`), as sent: pieces of one call. */
  | ToolDelta
  | { kind: "finish"; reason: string }
  | { kind: "usage"; usage: Usage }
  /** `data: [DONE]`: the stream is complete. */
  | { kind: "done" };

/** A piece of a streamed tool call; every field but `kind` may be missing (see ToolCalls). */
export interface ToolDelta {
  kind: "tool";
  index: number | undefined;
  id: string | undefined;
  name: string | undefined;
  args: string | undefined;
}

export interface ChatRequest {
  /** The full endpoint, `{baseUrl}/chat/completions`. */
  url: string;
  apiKey: string | undefined;
  body: ChatBody;
  /** Aborting it closes the upstream request; the stream then throws an AbortError. */
  signal: AbortSignal;
  /** No bytes (headers or body) for this long: the stream throws `upstream_timeout`. */
  idleTimeoutMs: number;
  fetch: typeof fetch;
}

/** A chat message as the upstream takes it (see wireMessages). */
export type WireMessage =
  | { role: "system" | "user"; content: string }
  | {
      role: "assistant";
      content: string | null;
      tool_calls?: Array<{ id: string; type: "function"; function: { name: string; arguments: string } }>;
    }
  | { role: "tool"; content: string; tool_call_id: string };

export interface ChatBody {
  model: string;
  messages: WireMessage[];
  stream: true;
  stream_options: { include_usage: true };
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  seed?: number;
  stop?: string | string[];
  tools?: Tool[];
  tool_choice?: ToolChoice;
  reasoning_effort?: ReasoningEffort;
}

/** What a request offers besides its messages and sampling params. */
export interface ChatTools {
  tools?: Tool[] | undefined;
  tool_choice?: ToolChoice | undefined;
}

/**
 * A streaming chat completion request body; absent params are left to the server's defaults.
 * `tools`, `tool_choice` and `reasoning_effort` go upstream as given: a server that does not
 * know one answers 400 (`upstream_rejected`), which says more than silently dropping it.
 */
export function chatBody(
  model: string,
  messages: WireMessage[],
  params: GenerationParams,
  maxTokens: number | undefined,
  offered: ChatTools = {},
): ChatBody {
  const body: ChatBody = { model, messages, stream: true, stream_options: { include_usage: true } };
  if (maxTokens !== undefined) body.max_tokens = maxTokens;
  if (params.temperature !== undefined) body.temperature = params.temperature;
  if (params.top_p !== undefined) body.top_p = params.top_p;
  if (params.seed !== undefined) body.seed = params.seed;
  if (params.stop !== undefined) body.stop = params.stop;
  if (params.reasoning_effort !== undefined) body.reasoning_effort = params.reasoning_effort;
  if (offered.tools !== undefined && offered.tools.length > 0) body.tools = offered.tools;
  if (offered.tool_choice !== undefined) body.tool_choice = offered.tool_choice;
  return body;
}

/** Thrown when the caller's signal ended the stream (cancel, steer): not an upstream failure. */
export class StreamAborted extends Error {
  constructor() {
    super("the upstream request was aborted");
    this.name = "AbortError";
  }
}

const MAX_ERROR_BODY = 4096;
const MAX_EVENT_CHARS = 1 << 20;

/**
 * Sends one streaming chat completion request and yields what it says. Throws an
 * UpstreamError for every failure (HTTP status, connection, cut, malformed chunk, idle) and
 * StreamAborted when `signal` ended it. Returns without a `done` event when the body ends
 * without `data: [DONE]` (the caller decides whether that was a cut).
 */
export async function* streamChat(req: ChatRequest): AsyncGenerator<ChatEvent, void> {
  const ac = new AbortController();
  const onAbort = (): void => ac.abort();
  req.signal.addEventListener("abort", onAbort, { once: true });
  if (req.signal.aborted) ac.abort();
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  // Every wait on the upstream is bounded by the idle timeout; waits on our consumer are not.
  const guard = async <T>(p: Promise<T>, classify: (err: unknown) => UpstreamError): Promise<T> => {
    timer = setTimeout(() => {
      timedOut = true;
      ac.abort();
    }, req.idleTimeoutMs);
    try {
      return await p;
    } catch (err) {
      if (timedOut) throw timeoutError(req.idleTimeoutMs);
      if (req.signal.aborted) throw new StreamAborted();
      throw classify(err);
    } finally {
      clearTimeout(timer);
    }
  };
  try {
    const headers: Record<string, string> = { "content-type": "application/json", accept: "text/event-stream" };
    if (req.apiKey) headers.authorization = `Bearer ${req.apiKey}`;
    const res = await guard(req.fetch(req.url, { method: "POST", headers, body: JSON.stringify(req.body), signal: ac.signal }), (err) =>
      connectError(req.url, err),
    );
    if (!res.ok) {
      // The status decides; the body only adds detail, so a body that fails to arrive is skipped.
      let text = "";
      try {
        text = await guard(readSome(res, MAX_ERROR_BODY), (err) => interruptedError(err));
      } catch (err) {
        if (err instanceof StreamAborted) throw err;
      }
      throw httpError(res.status, res.headers, text);
    }
    if ((res.headers.get("content-type") ?? "").includes("application/json")) {
      throw badResponse("the upstream answered with JSON, not an event stream: does it support stream: true?");
    }
    if (!res.body) throw badResponse("the upstream answered with no body");

    const events: EventSourceMessage[] = [];
    let parseError: ParseError | undefined;
    const parser = createParser({
      onEvent: (e) => events.push(e),
      onError: (e) => {
        if (e.type === "max-buffer-size-exceeded") parseError = e;
      },
      maxBufferSize: MAX_EVENT_CHARS,
    });
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const r = await guard(reader.read(), interruptedError);
      if (r.done) {
        parser.feed(decoder.decode());
        parser.reset({ consume: true }); // an unterminated last event still counts
      } else {
        parser.feed(decoder.decode(r.value, { stream: true }));
      }
      if (parseError) throw badResponse("the upstream sent an event larger than 1 MiB", parseError);
      for (let e = events.shift(); e !== undefined; e = events.shift()) {
        if (e.data.trim() === "[DONE]") {
          yield { kind: "done" };
          return;
        }
        yield* interpret(e);
      }
      if (r.done) return;
    }
  } finally {
    clearTimeout(timer);
    req.signal.removeEventListener("abort", onAbort);
    ac.abort(); // a no-op after a complete body; otherwise frees the connection
  }
}

/** One SSE event of an OpenAI chat completion stream. */
function* interpret(e: EventSourceMessage): Generator<ChatEvent> {
  let chunk: unknown;
  try {
    chunk = JSON.parse(e.data);
  } catch (err) {
    if (e.event === "error") throw streamedError(e.data);
    throw badResponse("the upstream sent a malformed chunk", err, JSON.stringify(e.data.slice(0, 120)));
  }
  if (typeof chunk !== "object" || chunk === null || Array.isArray(chunk)) {
    throw badResponse("the upstream sent a chunk that is not an object", undefined, JSON.stringify(e.data.slice(0, 120)));
  }
  const o = chunk as Record<string, unknown>;
  if (e.event === "error" || (o.error !== undefined && o.error !== null)) throw streamedError(o);
  const choices = o.choices;
  if (choices !== undefined && choices !== null && !Array.isArray(choices)) {
    throw badResponse("the upstream sent a chunk whose choices is not an array");
  }
  const choice = (choices as unknown[] | undefined)?.[0] as Record<string, unknown> | undefined;
  const delta = choice?.delta as Record<string, unknown> | null | undefined;
  if (delta && typeof delta === "object") yield* deltaEvents(delta);
  const reason = choice?.finish_reason;
  if (typeof reason === "string") yield { kind: "finish", reason };
  const usage = o.usage as Record<string, unknown> | null | undefined;
  if (usage && typeof usage === "object") {
    const prompt = count(usage.prompt_tokens);
    const completion = count(usage.completion_tokens);
    if (prompt !== undefined && completion !== undefined) {
      const details = usage.completion_tokens_details as Record<string, unknown> | null | undefined;
      const reasoning = details && typeof details === "object" ? count(details.reasoning_tokens) : undefined;
      yield {
        kind: "usage",
        usage: {
          prompt_tokens: prompt,
          completion_tokens: completion,
          ...(reasoning === undefined ? {} : { reasoning_tokens: reasoning }),
        },
      };
    }
  }
}

/**
 * The parts of one delta, in the order a model writes them when one chunk holds several:
 * reasoning, then text, then tool calls. When a server sends both reasoning fields they
 * carry the same text (a compatibility copy), so only `reasoning_content` is taken.
 */
function* deltaEvents(delta: Record<string, unknown>): Generator<ChatEvent> {
  const reasoning = nonEmpty(delta.reasoning_content) ?? nonEmpty(delta.reasoning);
  if (reasoning !== undefined) yield { kind: "reasoning", text: reasoning };
  const content = nonEmpty(delta.content);
  if (content !== undefined) yield { kind: "text", text: content };
  const calls = delta.tool_calls;
  if (Array.isArray(calls)) {
    for (const c of calls) {
      if (typeof c !== "object" || c === null) throw badResponse("the upstream sent a tool_calls element that is not an object");
      yield toolDelta(c as Record<string, unknown>);
    }
  } else if (calls !== undefined && calls !== null) {
    throw badResponse("the upstream sent a delta whose tool_calls is not an array");
  }
  // The deprecated single function call (no id, no index): one call at index 0.
  const legacy = delta.function_call;
  if (legacy && typeof legacy === "object" && !Array.isArray(calls)) yield toolDelta({ index: 0, function: legacy });
}

function toolDelta(c: Record<string, unknown>): ToolDelta {
  const fn = c.function && typeof c.function === "object" ? (c.function as Record<string, unknown>) : {};
  const index = typeof c.index === "number" && Number.isInteger(c.index) && c.index >= 0 ? c.index : undefined;
  return {
    kind: "tool",
    index,
    id: nonEmpty(c.id),
    name: nonEmpty(fn.name),
    args: typeof fn.arguments === "string" ? fn.arguments : undefined,
  };
}

function nonEmpty(v: unknown): string | undefined {
  return typeof v === "string" && v.length > 0 ? v : undefined;
}

function count(n: unknown): number | undefined {
  return typeof n === "number" && Number.isFinite(n) && n >= 0 ? Math.floor(n) : undefined;
}

/** Up to `max` characters of a body, then the rest is dropped. */
async function readSome(res: Response, max: number): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  for (;;) {
    const r = await reader.read();
    if (r.done) return text + decoder.decode();
    text += decoder.decode(r.value, { stream: true });
    if (text.length >= max) {
      await reader.cancel().catch(() => {});
      return text.slice(0, max);
    }
  }
}
