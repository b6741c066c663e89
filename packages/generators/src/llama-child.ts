// The model process: LlamaGenerator forks this file so that llama.cpp runs apart from the
// worker. A native abort here (a malformed GGUF trips a GGML_ASSERT) ends only this
// process; the parent sees it exit and fails the generations it was running.
//
// It loads one GGUF, makes one context with a sequence per concurrent generation, and runs
// generations as the parent asks (protocol: llama-messages.ts). It exits when the parent
// disconnects, so it never outlives the worker.

import { stat } from "node:fs/promises";
import { basename } from "node:path";
import type { Llama, LlamaContext, LlamaModel } from "node-llama-cpp";
import { fromChildSchema, toChildSchema, type FromChild, type ToChild } from "./llama-messages.js";
import { ChildGeneration, type Slot } from "./llama-run.js";

type Init = Extract<ToChild, { type: "init" }>;

// Never download or build llama.cpp: use the installed prebuilt binaries or fail. Read by
// node-llama-cpp when it is first imported, hence the dynamic import below.
process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = "true";

function send(msg: FromChild): void {
  if (!process.connected) return;
  process.send?.(fromChildSchema.parse(msg));
}

const log = (level: "debug" | "info" | "warn" | "error", message: string): void => send({ type: "log", level, message });

/** llama.cpp's own error lines: "Failed to load model" alone says nothing about why. */
const recentErrors: string[] = [];

let llama: Llama | undefined;
let model: LlamaModel | undefined;
let context: LlamaContext | undefined;
let limit = 0;
const free: Slot[] = [];
const queue: ChildGeneration[] = [];
const running = new Map<string, ChildGeneration>();

async function load(init: Init): Promise<void> {
  const began = performance.now();
  const { getLlama, LlamaChat, LlamaLogLevel } = await import("node-llama-cpp");
  llama = await getLlama({
    gpu: init.gpu,
    build: "never", // prebuilt binaries only; never clone or compile llama.cpp
    maxThreads: init.threads,
    progressLogs: false,
    logLevel: LlamaLogLevel.warn,
    logger: (level, message) => {
      const text = message.trim();
      if (text === "") return;
      if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) {
        recentErrors.push(text);
        if (recentErrors.length > 5) recentErrors.shift();
        log("error", text);
      } else log(level === LlamaLogLevel.warn ? "warn" : "debug", text);
    },
  });
  model = await llama.loadModel({ modelPath: init.modelPath });
  context = await model.createContext({
    sequences: init.concurrency,
    threads: init.threads,
    contextSize: init.contextSize ?? { max: 8192 },
  });
  for (let i = 0; i < init.concurrency; i++) {
    const sequence = context.getSequence();
    free.push({ sequence, chat: new LlamaChat({ contextSequence: sequence, autoDisposeSequence: false }) });
  }
  limit = context.contextSize;
  send({
    type: "ready",
    model: model.fileInfo.metadata.general?.name ?? basename(init.modelPath),
    gpu: llama.gpu,
    contextSize: context.contextSize,
    threads: init.threads,
    loadMs: Math.round(performance.now() - began),
  });
}

async function loadFailure(init: Init, err: unknown): Promise<string> {
  const message = err instanceof Error ? err.message : String(err);
  const details = recentErrors.filter((e) => !message.includes(e));
  const truncated = await truncation(init.modelPath).catch(() => undefined);
  if (truncated) details.unshift(truncated);
  return details.length > 0 ? `${message}: ${details.join("; ")}` : message;
}

/** llama.cpp rejects a truncated file without saying so; the GGUF header tells. */
async function truncation(file: string): Promise<string | undefined> {
  if (!llama) return undefined;
  const { readGgufFileInfo, GgufInsights } = await import("node-llama-cpp");
  const info = await readGgufFileInfo(file);
  const first = info.fullTensorInfo?.[0];
  if (!first) return undefined;
  const dataStart = Number(first.fileOffset) - Number(first.offset);
  const need = dataStart + (await GgufInsights.from(info, llama)).modelSize;
  const { size } = await stat(file);
  return size < need ? `the file is truncated (${size} bytes; its tensors need ${need})` : undefined;
}

/** Gives free sequences to queued generations, first come first served. */
function schedule(): void {
  for (;;) {
    const gen = queue[0];
    const slot = free.at(-1); // the most recently used: its cache most likely holds this prefix
    if (!gen || !slot) return;
    queue.shift();
    free.pop();
    running.set(gen.id, gen);
    void gen.run(slot).finally(() => {
      running.delete(gen.id);
      free.push(slot);
      schedule();
    });
  }
}

function onMessage(raw: unknown): void {
  const parsed = toChildSchema.safeParse(raw);
  if (!parsed.success) {
    log("warn", `malformed message from the worker ignored: ${parsed.error.message}`);
    return;
  }
  const msg = parsed.data;
  switch (msg.type) {
    case "init":
      load(msg).catch(async (err: unknown) => send({ type: "load_failed", message: await loadFailure(msg, err) }));
      return;
    case "start": {
      if (!model) {
        const usage = { prompt_tokens: 0, completion_tokens: 0 };
        send({ type: "failed", id: msg.id, message: "the model is not loaded", usage });
        return;
      }
      const cap = msg.params.max_tokens === undefined ? limit : msg.params.max_tokens;
      queue.push(new ChildGeneration(msg.id, msg, model, cap, send));
      schedule();
      return;
    }
    case "steer":
    case "cancel":
    case "release": {
      const gen = running.get(msg.id);
      if (gen) {
        if (msg.type === "steer") gen.steer(msg.text);
        else if (msg.type === "cancel") gen.cancel();
        else gen.release();
        return;
      }
      // Still waiting for a sequence: a steer is applied when it starts; a cancel ends it.
      const at = queue.findIndex((g) => g.id === msg.id);
      const queued = queue[at];
      if (!queued) return;
      if (msg.type === "steer") queued.steer(msg.text);
      else if (msg.type === "cancel") {
        queue.splice(at, 1);
        send({ type: "end", id: msg.id, reason: "cancelled", usage: queued.usage() });
      }
      return;
    }
    case "shutdown":
      void shutdown();
      return;
  }
}

async function shutdown(): Promise<void> {
  for (const gen of running.values()) gen.cancel();
  try {
    await llama?.dispose();
  } finally {
    process.exit(0);
  }
}

process.on("message", onMessage);
// The worker is gone (or closed the channel): nothing can use this process any more.
process.on("disconnect", () => process.exit(0));
