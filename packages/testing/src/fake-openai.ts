// A real local HTTP server speaking the OpenAI chat completions streaming format, with a
// scripted behaviour per request, for testing the openai generator end to end over sockets.
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One element of `delta.tool_calls`; absent fields are not sent (as vLLM and OpenAI omit them). */
export interface ToolCallDelta {
  index?: number;
  id?: string;
  name?: string;
  arguments?: string;
}

export type Step =
  /** A content delta chunk. */
  | { text: string }
  /**
   * A reasoning delta chunk: `delta.reasoning_content` (vLLM before the rename, DeepSeek,
   * llama.cpp; the default), `delta.reasoning` (newer vLLM, OpenRouter), or both with the
   * same text (servers that keep the old field as a copy).
   */
  | { reasoning: string; field?: "reasoning_content" | "reasoning" | "both" }
  /** A chunk whose delta is `{tool_calls: [...]}`; `type: "function"` is added beside an id. */
  | { tool: ToolCallDelta | ToolCallDelta[] }
  /** A chunk with this finish_reason and an empty delta, or `delta` (vLLM sends the rest of a call's arguments with it). */
  | { finish: string; delta?: Record<string, unknown> }
  /**
   * The final usage chunk (`choices: []`), as sent for `stream_options.include_usage`;
   * `reasoning_tokens` goes into `completion_tokens_details`, as OpenAI sends it.
   */
  | { usage: { prompt_tokens: number; completion_tokens: number; reasoning_tokens?: number } }
  /** `data: [DONE]`. */
  | { done: true }
  /** Any JSON object as a `data:` event. */
  | { chunk: unknown }
  /** Bytes written as they are (for malformed events). */
  | { raw: string }
  | { sleep: number }
  /** Sends nothing more until the client closes the connection. */
  | { hang: true }
  /** Destroys the socket at once: the stream is cut mid-answer. */
  | { destroy: true };

export interface Script {
  /** A non-200 status answered with `body` (default a JSON error) and no stream. */
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  /** Never answers, not even headers, until the client gives up. */
  silent?: boolean;
  /** The SSE steps of a 200 answer; the response ends after the last one. */
  steps?: Step[];
  /**
   * Writes the answer's bytes in pieces of this many bytes, each flushed on its own, so SSE
   * events (and multi-byte characters) are split across TCP reads as a proxy may split them.
   */
  split?: number;
}

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  // biome-ignore lint/suspicious/noExplicitAny: whatever JSON the client sent; tests read the fields they expect
  body: any;
  /** Resolves when the client closed the connection before the server ended the response. */
  closedByClient: Promise<void>;
  clientClosed: boolean;
}

/** Text and finish chunks of a typical answer, ended with usage and [DONE]. */
export function answer(tokens: string[], opts: { finish?: string; usage?: [number, number] | null } = {}): Step[] {
  const steps: Step[] = [{ chunk: chunk({ role: "assistant", content: "" }) }, ...tokens.map((text) => ({ text }))];
  steps.push({ finish: opts.finish ?? "stop" });
  if (opts.usage !== null) {
    const [p, c] = opts.usage ?? [5, tokens.length];
    steps.push({ usage: { prompt_tokens: p, completion_tokens: c } });
  }
  steps.push({ done: true });
  return steps;
}

/** The first chunk of every answer of OpenAI and vLLM: the role, and empty content. */
export const ROLE_STEP: Step = { chunk: chunk({ role: "assistant", content: "" }) };

/**
 * A call as OpenAI streams it: index, id, type and name with `arguments: ""` first, then the
 * arguments in fragments of `size` characters, each chunk carrying only index and arguments.
 */
export function openaiToolCall(index: number, id: string, name: string, args: string, size = 4): Step[] {
  const steps: Step[] = [{ tool: { index, id, name, arguments: "" } }];
  for (let i = 0; i < args.length; i += size) steps.push({ tool: { index, arguments: args.slice(i, i + size) } });
  return steps;
}

/**
 * A call as vLLM's hermes parser streams it: index, id (`chatcmpl-tool-…`), type and name
 * without arguments, then the whole arguments in one delta.
 */
export function vllmToolCall(index: number, id: string, name: string, args: string): Step[] {
  return [{ tool: { index, id, name } }, { tool: { index, arguments: args } }];
}

/** A whole answer that calls tools: optional reasoning, the calls, finish tool_calls, usage, [DONE]. */
export function toolAnswer(
  calls: Step[],
  opts: { reasoning?: string[]; field?: "reasoning_content" | "reasoning" | "both"; usage?: [number, number, number?] | null } = {},
): Step[] {
  const steps: Step[] = [ROLE_STEP];
  for (const r of opts.reasoning ?? []) steps.push({ reasoning: r, ...(opts.field ? { field: opts.field } : {}) });
  steps.push(...calls, { finish: "tool_calls" });
  if (opts.usage !== null) {
    const [p, c, r] = opts.usage ?? [5, calls.length];
    steps.push({ usage: { prompt_tokens: p, completion_tokens: c, ...(r === undefined ? {} : { reasoning_tokens: r }) } });
  }
  steps.push({ done: true });
  return steps;
}

export function chunk(delta: Record<string, unknown>, finish: string | null = null): unknown {
  return {
    id: "chatcmpl-fake",
    object: "chat.completion.chunk",
    created: 1_700_000_000,
    model: "fake-model",
    choices: [{ index: 0, delta, finish_reason: finish }],
  };
}

export class FakeOpenAI {
  /** Every request received, in order, with its parsed body (tests assert what was sent upstream). */
  readonly requests: ReceivedRequest[] = [];
  private server: Server | undefined;
  private readonly waiters: Array<() => void> = [];

  /** `scripts[i]` answers request i; requests past the end get the last script. */
  constructor(private readonly scripts: Script[]) {}

  async start(): Promise<string> {
    const server = createServer((req, res) => {
      let raw = "";
      req.setEncoding("utf8");
      req.on("data", (d: string) => (raw += d));
      req.on("end", () => {
        let body: unknown;
        try {
          body = JSON.parse(raw);
        } catch {
          body = raw;
        }
        let markClosed!: () => void;
        const rec: ReceivedRequest = {
          method: req.method ?? "",
          url: req.url ?? "",
          headers: req.headers,
          body,
          closedByClient: new Promise<void>((resolve) => (markClosed = resolve)),
          clientClosed: false,
        };
        res.on("close", () => {
          if (!res.writableFinished) {
            rec.clientClosed = true;
            markClosed();
          }
        });
        const index = this.requests.length;
        this.requests.push(rec);
        for (const w of this.waiters.splice(0)) w();
        const script = this.scripts[Math.min(index, this.scripts.length - 1)] ?? {};
        void this.answer(script, res, rec);
      });
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  }

  /** Resolves once at least `n` requests have arrived. */
  async waitForRequests(n: number): Promise<void> {
    while (this.requests.length < n) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async answer(script: Script, res: ServerResponse, rec: ReceivedRequest): Promise<void> {
    if (script.silent) return; // the client's idle timeout must end it
    if (script.status !== undefined && script.status !== 200) {
      res.writeHead(script.status, { "content-type": "application/json", ...script.headers });
      res.end(script.body ?? JSON.stringify({ error: { message: `scripted ${script.status}`, type: "fake" } }));
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", ...script.headers });
    res.flushHeaders();
    // Each write is awaited until handed to the socket, so a `destroy` cuts after what came before.
    const write = (data: string): Promise<void> => writeSplit(res, data, script.split);
    for (const step of script.steps ?? []) {
      if (rec.clientClosed) return;
      if ("text" in step) await write(event(chunk({ content: step.text })));
      else if ("reasoning" in step) await write(event(chunk(reasoningDelta(step.reasoning, step.field))));
      else if ("tool" in step) await write(event(chunk({ tool_calls: [step.tool].flat().map(toolCallDelta) })));
      else if ("finish" in step) await write(event(chunk(step.delta ?? {}, step.finish)));
      else if ("usage" in step)
        await write(event({ id: "chatcmpl-fake", object: "chat.completion.chunk", choices: [], usage: usageOf(step.usage) }));
      else if ("done" in step) await write("data: [DONE]\n\n");
      else if ("chunk" in step) await write(event(step.chunk));
      else if ("raw" in step) await write(step.raw);
      else if ("sleep" in step) await new Promise((r) => setTimeout(r, step.sleep));
      else if ("hang" in step) return void (await rec.closedByClient);
      else if ("destroy" in step) return void res.socket?.destroy();
    }
    res.end();
  }
}

function reasoningDelta(text: string, field: "reasoning_content" | "reasoning" | "both" = "reasoning_content"): Record<string, unknown> {
  return field === "both" ? { reasoning: text, reasoning_content: text } : { [field]: text };
}

function toolCallDelta(d: ToolCallDelta): Record<string, unknown> {
  const fn: Record<string, string> = {};
  if (d.name !== undefined) fn.name = d.name;
  if (d.arguments !== undefined) fn.arguments = d.arguments;
  return {
    ...(d.index === undefined ? {} : { index: d.index }),
    ...(d.id === undefined ? {} : { id: d.id, type: "function" }),
    ...(Object.keys(fn).length > 0 ? { function: fn } : {}),
  };
}

function usageOf(u: { prompt_tokens: number; completion_tokens: number; reasoning_tokens?: number }): Record<string, unknown> {
  const { reasoning_tokens, ...counts } = u;
  return {
    ...counts,
    total_tokens: u.prompt_tokens + u.completion_tokens,
    ...(reasoning_tokens === undefined ? {} : { completion_tokens_details: { reasoning_tokens } }),
  };
}

/** Writes `data` at once, or in pieces of `split` bytes with a pause between them so each is its own read. */
async function writeSplit(res: ServerResponse, data: string, split: number | undefined): Promise<void> {
  const bytes = Buffer.from(data, "utf8");
  const size = split && split > 0 ? split : bytes.length;
  for (let i = 0; i < bytes.length; i += size) {
    if (i > 0) await new Promise((r) => setTimeout(r, 1));
    await new Promise<void>((resolve) => res.write(bytes.subarray(i, i + size), () => resolve()));
  }
}

function event(data: unknown): string {
  return `data: ${JSON.stringify(data)}\n\n`;
}

/** A port nothing listens on: bound once, then closed. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
