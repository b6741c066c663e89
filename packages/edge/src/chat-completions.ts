import { LIMITS, ProtocolError, isRid, newRid, type EndEvent, type GenerateFrame } from "@unbroken/protocol";
import type { StoredEvent } from "@unbroken/store";
import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import type { HttpContext } from "./http-context.js";
import { describeIssues, readJsonBody, statusOf } from "./http-util.js";
import { Subscription } from "./subscription.js";

/** OpenAI's content may be a string or an array of parts; text parts are joined. */
const contentSchema = z.union([
  z.string(),
  z
    .array(z.looseObject({ type: z.string(), text: z.string().optional() }))
    .transform((parts) => parts.map((p) => (p.type === "text" ? (p.text ?? "") : "")).join("")),
]);

const requestSchema = z.object({
  model: z.string().optional(),
  messages: z
    .array(z.object({ role: z.enum(["system", "developer", "user", "assistant"]), content: contentSchema.nullable() }))
    .min(1)
    .max(LIMITS.messages),
  stream: z.boolean().optional(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  max_tokens: z.number().int().positive().max(LIMITS.maxTokens).nullish(),
  max_completion_tokens: z.number().int().positive().max(LIMITS.maxTokens).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  seed: z.number().int().nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(LIMITS.stopSequences)]).nullish(),
  n: z.literal(1).nullish(),
});
type ChatRequest = z.infer<typeof requestSchema>;

const RID_HEADER = "x-unbroken-rid";

/** Errors in OpenAI's shape, so its SDKs surface the message. */
function sendOpenAIError(res: ServerResponse, err: unknown): void {
  const e = err instanceof ProtocolError ? err : new ProtocolError("internal", "internal error");
  const body = JSON.stringify({ error: { message: e.message, type: e.code, code: e.code, param: null } });
  res.writeHead(statusOf(e.code), { "content-type": "application/json" });
  res.end(body);
}

function toGenerate(body: ChatRequest, rid: string): GenerateFrame {
  const params: NonNullable<GenerateFrame["params"]> = {};
  const maxTokens = body.max_completion_tokens ?? body.max_tokens;
  if (maxTokens != null) params.max_tokens = maxTokens;
  if (body.temperature != null) params.temperature = body.temperature;
  if (body.top_p != null) params.top_p = body.top_p;
  if (body.seed != null) params.seed = body.seed;
  if (body.stop != null) params.stop = body.stop;
  const messages = body.messages.map((m) => ({
    role: m.role === "developer" ? ("system" as const) : m.role,
    content: m.content ?? "",
  }));
  return { type: "generate", rid, messages, params };
}

const FINISH: Record<EndEvent["reason"], string> = {
  stop: "stop",
  length: "length",
  tool_calls: "tool_calls",
  cancelled: "stop",
  error: "stop",
};

/**
 * `POST /v1/chat/completions`, OpenAI-compatible, backed by the same pipeline: the
 * completion's `id` is the response's rid (also in the `x-unbroken-rid` header), so the
 * answer can be resumed or followed with the native API. Sending `x-unbroken-rid` makes
 * the request idempotent. Unlike OpenAI, a dropped connection does not stop generation.
 */
export async function chatCompletions(ctx: HttpContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    const principal = await ctx.principal(req);
    const parsed = requestSchema.safeParse(await readJsonBody(req, ctx.maxBodyBytes));
    if (!parsed.success) throw new ProtocolError("bad_request", describeIssues(parsed.error.issues));
    const asked = req.headers[RID_HEADER];
    const rid = typeof asked === "string" && isRid(asked) ? asked : `chatcmpl-${newRid()}`;
    const { existing, record } = await ctx.responses.generate(principal, toGenerate(parsed.data, rid));
    const acceptedAt = existing ? undefined : performance.now();
    const reply = parsed.data.stream ? new StreamReply(res, rid, parsed.data) : new WholeReply(res, rid);
    const sub = new Subscription(
      ctx.subscriptions,
      rid,
      0,
      (e) => {
        reply.event(e);
        // A reader that stopped reading is cut off; it can follow the rest at /v1/responses/{id}/events.
        if (res.writableLength > ctx.limits.maxSocketBuffer && !res.destroyed) {
          res.destroy();
          ctx.onSlowConsumer?.("chat");
        }
      },
      () => undefined,
      { transport: "chat", acceptedAt, onGone: () => res.destroy() },
    );
    res.on("close", () => sub.close());
    sub.start(record);
  } catch (err) {
    if (res.headersSent) return void res.destroy();
    const e = toProtocol(err);
    ctx.metrics.error(e.code, "http");
    sendOpenAIError(res, e);
  }
}

function toProtocol(err: unknown): ProtocolError {
  return err instanceof ProtocolError ? err : new ProtocolError("internal", "internal error", { cause: err });
}

interface Reply {
  event(e: StoredEvent): void;
}

const created = () => Math.floor(Date.now() / 1000);

class WholeReply implements Reply {
  private text = "";
  private model = "unbroken";

  constructor(
    private readonly res: ServerResponse,
    private readonly rid: string,
  ) {}

  event(e: StoredEvent): void {
    const ev = e.frame.event as { kind: string; text?: string; model?: string };
    if (ev.kind === "start") this.model = ev.model ?? this.model;
    if (ev.kind === "token") this.text += ev.text ?? "";
    if (ev.kind !== "end") return;
    const end = e.frame.event as unknown as EndEvent;
    if (end.reason === "error") {
      sendOpenAIError(
        this.res,
        new ProtocolError("internal", `generation failed: ${end.error?.code ?? "error"}: ${end.error?.message ?? ""}`),
      );
      return;
    }
    const body = JSON.stringify({
      id: this.rid,
      object: "chat.completion",
      created: created(),
      model: this.model,
      choices: [{ index: 0, message: { role: "assistant", content: this.text }, finish_reason: FINISH[end.reason], logprobs: null }],
      usage: { ...end.usage, total_tokens: end.usage.prompt_tokens + end.usage.completion_tokens },
    });
    this.res.writeHead(200, { "content-type": "application/json", [RID_HEADER]: this.rid });
    this.res.end(body);
  }
}

class StreamReply implements Reply {
  private model = "unbroken";
  private readonly created = created();

  constructor(
    private readonly res: ServerResponse,
    private readonly rid: string,
    private readonly body: ChatRequest,
  ) {
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      "x-accel-buffering": "no",
      [RID_HEADER]: rid,
    });
  }

  private chunk(delta: object, finish: string | null, extra: object = {}): void {
    const choices = [{ index: 0, delta, finish_reason: finish, logprobs: null }];
    const data = { id: this.rid, object: "chat.completion.chunk", created: this.created, model: this.model, choices, ...extra };
    this.res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  event(e: StoredEvent): void {
    const ev = e.frame.event as { kind: string; text?: string; model?: string };
    if (ev.kind === "start") {
      this.model = ev.model ?? this.model;
      this.chunk({ role: "assistant", content: "" }, null);
      return;
    }
    if (ev.kind === "token") {
      this.chunk({ content: ev.text ?? "" }, null);
      return;
    }
    if (ev.kind !== "end") return;
    const end = e.frame.event as unknown as EndEvent;
    if (end.reason === "error") {
      const error = { message: end.error?.message ?? "generation failed", type: "server_error", code: end.error?.code ?? "error" };
      this.res.write(`data: ${JSON.stringify({ error })}\n\n`);
    } else {
      this.chunk({}, FINISH[end.reason]);
      if (this.body.stream_options?.include_usage) {
        const usage = { ...end.usage, total_tokens: end.usage.prompt_tokens + end.usage.completion_tokens };
        const data = { id: this.rid, object: "chat.completion.chunk", created: this.created, model: this.model, choices: [], usage };
        this.res.write(`data: ${JSON.stringify(data)}\n\n`);
      }
    }
    this.res.end("data: [DONE]\n\n");
  }
}
