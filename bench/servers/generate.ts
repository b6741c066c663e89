// What both baseline servers run per request: the worker's own ScriptedGenerator (same
// text, same token sizes, same pacing code as the stack), one event per token, framed
// exactly like the edge's event frames. No log, no persistence: the "seed-style" server.

import type { GenerationBody } from "@unbroken/protocol";
import { ScriptedGenerator } from "@unbroken/generators";
import type { GenerateRequest } from "./common.js";

export { announce, parseRequest, type GenerateRequest } from "./common.js";

const tps = Number(process.env.SCRIPTED_TPS ?? "30");
const generator = new ScriptedGenerator({ tokensPerSecond: tps });

/** Streams one response to `send` (one call per event, already serialized). */
export async function generate(req: GenerateRequest, signal: AbortSignal, send: (seq: number, frame: string) => void): Promise<void> {
  let seq = 0;
  const emit = (event: object): void => {
    seq++;
    send(seq, JSON.stringify({ type: "event", rid: req.rid, seq, event }));
  };
  emit({ kind: "start", model: generator.model, created_at: new Date().toISOString() });
  const body: GenerationBody = { prompt: req.prompt, ...(req.params ? { params: req.params } : {}) };
  const session = generator.start({ rid: req.rid, body, steers: [], signal });
  for await (const out of session) {
    if (out.type === "token") emit({ kind: "token", text: out.text });
    else if (out.type === "steer") emit({ kind: "steer", text: out.text });
    else if (out.type === "done" && !signal.aborted) return emit({ kind: "end", reason: out.reason, usage: out.usage });
  }
  emit({ kind: "end", reason: "cancelled", usage: session.usage() });
}
