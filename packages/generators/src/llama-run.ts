// One generation inside the model process (see llama-child.ts): a chat turn on a context
// sequence, with steering. Imported only by the child; the worker process never loads
// node-llama-cpp.

import type {
  ChatHistoryItem,
  ChatModelResponse,
  LlamaChat,
  LlamaChatResponseChunk,
  LlamaContextSequence,
  LlamaModel,
} from "node-llama-cpp";
import type { Usage } from "@unbroken/protocol";
import type { FromChild, GenerateParams, ToChild } from "./llama-messages.js";

/** A context sequence and the chat that evaluates on it; a generation holds one at a time. */
export interface Slot {
  sequence: LlamaContextSequence;
  chat: LlamaChat;
}

type StartMessage = Extract<ToChild, { type: "start" }>;

/** Sampling temperature when the request gives none (llama.cpp's own default). */
export const DEFAULT_TEMPERATURE = 0.8;

/** The request as node-llama-cpp chat history, ending with the model turn to write or continue. */
export function toHistory(messages: StartMessage["messages"]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = messages.map((m) =>
    m.role === "assistant" ? { type: "model", response: [m.content] } : { type: m.role, text: m.content },
  );
  // A final assistant message is a prefill: the answer continues it.
  if (history.at(-1)?.type !== "model") history.push({ type: "model", response: [] });
  return history;
}

/**
 * Starts the model turn with what was already written: the reasoning as a thought segment
 * (still open when no text follows it, so the model goes on thinking), then the text.
 */
function continueTurn(history: ChatHistoryItem[], reasoning: string | undefined, text: string | undefined): ChatHistoryItem[] {
  const turn = history.at(-1) as ChatModelResponse;
  const written: ChatModelResponse["response"] = [];
  if (reasoning) written.push({ type: "segment", segmentType: "thought", text: reasoning, ended: Boolean(text) });
  if (text) written.push(text);
  return [...history.slice(0, -1), { ...turn, response: [...turn.response, ...written] }];
}

/**
 * What a response chunk is for the worker: answer text, or reasoning (a thought segment);
 * other segments (comments) and empty chunks are not part of the answer.
 */
export function chunkKind(chunk: Pick<LlamaChatResponseChunk, "type" | "segmentType" | "text">): "chunk" | "thought" | undefined {
  if (chunk.text === "") return undefined;
  if (chunk.type === undefined) return "chunk";
  return chunk.segmentType === "thought" ? "thought" : undefined;
}

/** Puts an instruction into the history just before the (partial) model turn. */
function insertBeforeTurn(history: ChatHistoryItem[], text: string): ChatHistoryItem[] {
  const turn = history.at(-1) as ChatModelResponse;
  return [...history.slice(0, -1), { type: "user", text }, turn];
}

export class ChildGeneration {
  private history: ChatHistoryItem[];
  private contextWindow: ChatHistoryItem[] | undefined;
  private readonly steers: string[] = [];
  private call: AbortController | undefined;
  private wake: (() => void) | undefined;
  private cancelled = false;
  private released = false;
  private promptTokens = 0;
  private completionTokens = 0;
  private reasoningTokens = 0;

  constructor(
    readonly id: string,
    private readonly req: StartMessage,
    private readonly model: LlamaModel,
    /** Generated tokens allowed: max_tokens, or the context size without it. */
    private readonly limit: number,
    private readonly send: (m: FromChild) => void,
  ) {
    let history = toHistory(req.messages);
    for (const s of req.steers) history = insertBeforeTurn(history, s);
    if (req.resumeText || req.resumeReasoning) history = continueTurn(history, req.resumeReasoning, req.resumeText);
    this.history = history;
  }

  steer(text: string): void {
    this.steers.push(text);
    this.call?.abort(); // stops at the next token boundary, keeping the partial turn
    this.wake?.();
  }

  cancel(): void {
    this.cancelled = true;
    this.call?.abort();
    this.wake?.();
  }

  release(): void {
    this.released = true;
    this.wake?.();
  }

  usage(): Usage {
    const reasoning = this.reasoningTokens > 0 ? { reasoning_tokens: this.reasoningTokens } : {};
    return { prompt_tokens: this.promptTokens, completion_tokens: this.completionTokens, ...reasoning };
  }

  /** Runs until cancelled, failed, or ended and released; never throws. */
  async run(slot: Slot): Promise<void> {
    try {
      // A resumed answer is in the history already: its tokens are completion, not prompt.
      const tokens = (text: string | undefined): number => (text ? this.model.tokenize(text).length : 0);
      this.reasoningTokens = tokens(this.req.resumeReasoning);
      const resumed = this.reasoningTokens + tokens(this.req.resumeText);
      this.completionTokens = resumed;
      this.promptTokens = Math.max(0, this.rendered(slot, this.history) - resumed);
      let reason: "stop" | "length" | undefined;
      for (;;) {
        if (this.cancelled) return this.send({ type: "end", id: this.id, reason: "cancelled", usage: this.usage() });
        if (this.steers.length > 0) {
          this.applySteers(slot);
          reason = undefined;
          continue;
        }
        if (reason !== undefined) {
          this.send({ type: "end", id: this.id, reason, usage: this.usage() });
          await this.nextEvent();
          if (this.released && this.steers.length === 0 && !this.cancelled) return;
          continue;
        }
        const remaining = this.limit - this.completionTokens;
        reason = remaining <= 0 ? "length" : await this.generate(slot, remaining);
      }
    } catch (err) {
      this.send({ type: "failed", id: this.id, message: err instanceof Error ? err.message : String(err), usage: this.usage() });
    } finally {
      this.call = undefined;
    }
  }

  private applySteers(slot: Slot): void {
    const before = this.rendered(slot, this.history);
    for (const text of this.steers.splice(0)) {
      this.history = insertBeforeTurn(this.history, text);
      if (this.contextWindow) this.contextWindow = insertBeforeTurn(this.contextWindow, text);
      this.send({ type: "steered", id: this.id, text, usage: this.usage() });
    }
    // The instruction is new prompt; the partial answer was counted as completion already.
    this.promptTokens += Math.max(0, this.rendered(slot, this.history) - before);
  }

  /** One evaluation: undefined when stopped for a steer or cancel. */
  private async generate(slot: Slot, remaining: number): Promise<"stop" | "length" | undefined> {
    const call = new AbortController();
    this.call = call;
    const meter = slot.sequence.tokenMeter;
    const base = this.completionTokens - meter.getState().usedOutputTokens;
    // Every sampled token counts, also one held back as the start of a stop trigger or of
    // a multi-byte character and then dropped, so max_tokens gives exactly max_tokens.
    const count = (): number => (this.completionTokens = base + meter.getState().usedOutputTokens);
    let res: Awaited<ReturnType<ChildGeneration["respond"]>>;
    try {
      res = await this.respond(slot, call, remaining, count);
    } catch (err) {
      // Stopped while the prompt was still being evaluated: nothing was generated.
      if (call.signal.aborted) return undefined;
      throw err;
    } finally {
      this.call = undefined;
    }
    count();
    this.history = res.lastEvaluation.cleanHistory;
    this.contextWindow = res.lastEvaluation.contextWindow;
    switch (res.metadata.stopReason) {
      case "abort":
        return undefined;
      case "maxTokens":
        return "length";
      default:
        return "stop";
    }
  }

  private respond(slot: Slot, call: AbortController, remaining: number, count: () => number) {
    const p: GenerateParams = this.req.params;
    return slot.chat.generateResponse(this.history, {
      signal: call.signal,
      stopOnAbortSignal: true,
      maxTokens: remaining,
      temperature: p.temperature ?? DEFAULT_TEMPERATURE,
      ...(p.top_p !== undefined ? { topP: p.top_p } : {}),
      ...(p.seed !== undefined ? { seed: p.seed } : {}),
      ...(p.stop.length > 0 ? { customStopTriggers: p.stop } : {}),
      ...(this.contextWindow ? { lastEvaluationContextWindow: { history: this.contextWindow } } : {}),
      onToken: count,
      // reasoning_effort "none": no thinking at all, where the chat wrapper has thought segments.
      ...(p.reasoning_effort === "none" ? { budgets: { thoughtTokens: 0 } } : {}),
      onResponseChunk: (chunk) => {
        count();
        const kind = chunkKind(chunk);
        if (kind === undefined) return;
        if (kind === "thought") this.reasoningTokens += chunk.tokens.length;
        this.send({ type: kind, id: this.id, text: chunk.text, tokens: chunk.tokens.length, usage: this.usage() });
      },
    });
  }

  /** Waits for a steer, cancel or release after an `end`. */
  private nextEvent(): Promise<void> {
    if (this.released || this.cancelled || this.steers.length > 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = () => {
        this.wake = undefined;
        resolve();
      };
    });
  }

  /** Tokens of the history as the chat template renders it for evaluation. */
  private rendered(slot: Slot, history: ChatHistoryItem[]): number {
    const { contextText } = slot.chat.chatWrapper.generateContextState({ chatHistory: history });
    return contextText.tokenize(this.model.tokenizer).length;
  }
}
