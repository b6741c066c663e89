import { ProtocolError, newRid, type EndEvent } from "@unbroken/protocol";
import type { StoredEvent } from "@unbroken/store";
import type { IncomingMessage, ServerResponse } from "node:http";
import { streamClient, type StreamSlot } from "./budgets.js";
import { ChatStreamDeltas, ChatWholeMessage, chatUsage, type ChatDelta } from "./chat-chunks.js";
import { parseChatRequest, toGenerate, type ChatRequest } from "./chat-request.js";
import type { HttpContext } from "./http-context.js";
import { chosenRid, readJsonBody } from "./http-util.js";
import { sendOpenAIError, writeOpenAIError } from "./openai-error.js";
import { Subscription } from "./subscription.js";

const RID_HEADER = "x-unbroken-rid";

/**
 * `POST /v1/chat/completions`, OpenAI-compatible, backed by the same pipeline: the
 * completion's `id` is the response's rid (also in the `x-unbroken-rid` header), so the
 * answer can be resumed or followed with the native API. Sending `x-unbroken-rid` makes
 * the request idempotent. Unlike OpenAI, a dropped connection does not stop generation.
 */
export async function chatCompletions(ctx: HttpContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let slot: StreamSlot | undefined;
  try {
    const principal = await ctx.principal(req);
    const asked = chosenRid(req);
    const body = parseChatRequest(await readJsonBody(req, ctx.maxBodyBytes));
    const rid = asked ?? `chatcmpl-${newRid()}`;
    // Streamed or whole, the request is held open until the end: a stream for the budgets,
    // counted before anything starts (a refused request generates nothing).
    const held = ctx.responses.streams.open(streamClient(principal, ctx.address(req)), false, rid);
    slot = held;
    res.on("close", () => held.release());
    const { existing, record } = await ctx.responses.generate(principal, toGenerate(body, rid));
    const acceptedAt = existing ? undefined : performance.now();
    const reply = body.stream ? new StreamReply(res, rid, body) : new WholeReply(res, rid);
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
      { transport: "chat", acceptedAt, onGone: () => res.destroy(), slot },
    );
    res.on("close", () => sub.close());
    sub.start(record);
  } catch (err) {
    slot?.release();
    sendOpenAIError(ctx, res, err);
  }
}

interface Reply {
  event(e: StoredEvent): void;
}

const created = () => Math.floor(Date.now() / 1000);

type LooseEvent = { kind: string; model?: string; [key: string]: unknown };

/** The completion, answered whole once the response has ended. */
class WholeReply implements Reply {
  private readonly answer = new ChatWholeMessage();
  private model = "unbroken";

  constructor(
    private readonly res: ServerResponse,
    private readonly rid: string,
  ) {}

  event(e: StoredEvent): void {
    const ev = e.frame.event as LooseEvent;
    if (ev.kind === "start") this.model = ev.model ?? this.model;
    this.answer.event(ev);
    if (ev.kind !== "end") return;
    const end = e.frame.event as EndEvent;
    if (end.reason === "error") {
      const why = `generation failed: ${end.error?.code ?? "error"}: ${end.error?.message ?? ""}`;
      writeOpenAIError(this.res, new ProtocolError("internal", why));
      return;
    }
    const choice = { index: 0, message: this.answer.message(), finish_reason: this.answer.finishReason(end), logprobs: null };
    const body = JSON.stringify({
      id: this.rid,
      object: "chat.completion",
      created: created(),
      model: this.model,
      choices: [choice],
      usage: chatUsage(end.usage),
    });
    this.res.writeHead(200, { "content-type": "application/json", [RID_HEADER]: this.rid });
    this.res.end(body);
  }
}

/** The completion as `chat.completion.chunk`s, then `[DONE]`. */
class StreamReply implements Reply {
  private readonly deltas = new ChatStreamDeltas();
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
    // Now, not with the first chunk: a queued answer's client learns its rid at once.
    res.flushHeaders();
  }

  private send(choices: object[], extra: object = {}): void {
    const data = { id: this.rid, object: "chat.completion.chunk", created: this.created, model: this.model, choices, ...extra };
    this.res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  private chunk(delta: ChatDelta, finish: string | null = null): void {
    this.send([{ index: 0, delta, finish_reason: finish, logprobs: null }]);
  }

  event(e: StoredEvent): void {
    const ev = e.frame.event as LooseEvent;
    if (ev.kind === "start") this.model = ev.model ?? this.model;
    for (const delta of this.deltas.event(ev)) this.chunk(delta);
    if (ev.kind !== "end") return;
    const end = e.frame.event as EndEvent;
    if (end.reason === "error") {
      const error = { message: end.error?.message ?? "generation failed", type: "server_error", code: end.error?.code ?? "error" };
      this.res.write(`data: ${JSON.stringify({ error })}\n\n`);
    } else {
      for (const delta of this.deltas.roleIfUnsent()) this.chunk(delta);
      this.chunk({}, this.deltas.finishReason(end));
      // OpenAI's usage chunk: no choices, after the one with finish_reason.
      if (this.body.stream_options?.include_usage) this.send([], { usage: chatUsage(end.usage) });
    }
    this.res.end("data: [DONE]\n\n");
  }
}
