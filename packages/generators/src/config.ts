import { envInt, envOptionalInt, envVar } from "@unbroken/protocol";
import { availableParallelism } from "node:os";
import * as z from "zod";

export const GENERATORS = ["scripted", "llama", "openai"] as const;
export type GeneratorName = (typeof GENERATORS)[number];

/** The generator's variables (part of the worker's configuration). */
export const generatorEnv = {
  GENERATOR: envVar(
    z.enum(GENERATORS).optional(),
    "`scripted`, `llama` or `openai`; unset: `llama` when MODEL_PATH or MODEL is set, `openai` when OPENAI_BASE_URL is, else `scripted`",
    {
      default: "from the variables below",
    },
  ),
  SCRIPTED_TPS: envVar(envInt(30), "scripted: tokens per second per response; `0` = as fast as it can"),
  MODEL_PATH: envVar(z.string().optional(), "llama: a GGUF file"),
  MODEL: envVar(
    z.string().optional(),
    "llama: a model URI node-llama-cpp resolves (`hf:…`, an URL), downloaded once into MODELS_DIR (needs internet)",
  ),
  MODELS_DIR: envVar(z.string().optional(), "llama: where MODEL is downloaded to", { default: "~/.cache/unbroken/models" }),
  LLAMA_THREADS: envVar(envInt(availableParallelism(), 1), "llama: CPU threads for llama.cpp", { default: "the cores available" }),
  LLAMA_GPU: envVar(
    z.enum(["auto", "false", "cuda", "vulkan", "metal"]).default("auto"),
    "llama: `auto`, `false`, `cuda`, `vulkan` or `metal`",
  ),
  LLAMA_CONTEXT_SIZE: envVar(envInt(4096, 64), "llama: context size of each sequence (one per response generated at once)"),
  OPENAI_BASE_URL: envVar(
    z.url({ protocol: /^https?$/ }).optional(),
    "openai: the upstream, e.g. `http://127.0.0.1:8000/v1` (vLLM, Ollama, llama.cpp server, OpenAI)",
  ),
  OPENAI_API_KEY: envVar(z.string().optional(), "openai: sent upstream as `Authorization: Bearer`"),
  OPENAI_MODEL: envVar(z.string().optional(), "openai: the model name sent upstream", { default: "the upstream's first model" }),
  CONCURRENCY: envVar(
    envOptionalInt(1),
    "responses one worker generates at once. `scripted` and `openai` wait on a clock or an upstream that batches (vLLM's default is 256 sequences); `llama` runs one context sequence per response",
    { default: "scripted 256, openai 256, llama 4" },
  ),
};

/** The concurrency a backend fits when CONCURRENCY is not set (see CONCURRENCY). */
export const DEFAULT_CONCURRENCY: Record<GeneratorName, number> = { scripted: 256, openai: 256, llama: 4 };

type GeneratorEnv = z.infer<z.ZodObject<typeof generatorEnv>>;

export interface GeneratorConfig {
  generator: GeneratorName;
  /** Why this generator: named in the worker's `ready` log line. */
  reason: string;
  scriptedTps: number;
  llama: { model: string; modelsDir: string | undefined; threads: number; gpu: GeneratorEnv["LLAMA_GPU"]; contextSize: number };
  openai: { baseUrl: string; apiKey: string | undefined; model: string | undefined };
  concurrency: number;
}

/** Cross-variable rules, added to the worker's schema. */
export function checkGeneratorEnv(e: GeneratorEnv, ctx: z.core.$RefinementCtx): void {
  const generator = e.GENERATOR;
  if (generator === "llama" && e.MODEL_PATH === undefined && e.MODEL === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["MODEL_PATH"],
      message: "GENERATOR=llama needs MODEL_PATH (a GGUF file) or MODEL (a model URI node-llama-cpp can resolve)",
    });
  }
  if (generator === "openai" && e.OPENAI_BASE_URL === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["OPENAI_BASE_URL"],
      message: "GENERATOR=openai needs OPENAI_BASE_URL (e.g. http://127.0.0.1:8000/v1)",
    });
  }
}

/** GENERATOR when given; otherwise a model file or URI means llama, an upstream means openai. */
function chooseGenerator(e: GeneratorEnv): { generator: GeneratorName; reason: string } {
  if (e.GENERATOR) return { generator: e.GENERATOR, reason: "GENERATOR is set" };
  if (e.MODEL_PATH !== undefined) return { generator: "llama", reason: "MODEL_PATH is set" };
  if (e.MODEL !== undefined) return { generator: "llama", reason: "MODEL is set" };
  if (e.OPENAI_BASE_URL !== undefined) return { generator: "openai", reason: "OPENAI_BASE_URL is set" };
  return { generator: "scripted", reason: "no MODEL_PATH, MODEL or OPENAI_BASE_URL" };
}

export function generatorConfig(e: GeneratorEnv): GeneratorConfig {
  const { generator, reason } = chooseGenerator(e);
  return {
    generator,
    reason,
    scriptedTps: e.SCRIPTED_TPS,
    llama: {
      model: e.MODEL_PATH ?? e.MODEL ?? "",
      modelsDir: e.MODELS_DIR,
      threads: e.LLAMA_THREADS,
      gpu: e.LLAMA_GPU,
      contextSize: e.LLAMA_CONTEXT_SIZE,
    },
    openai: { baseUrl: (e.OPENAI_BASE_URL ?? "").replace(/\/+$/, ""), apiKey: e.OPENAI_API_KEY, model: e.OPENAI_MODEL },
    concurrency: e.CONCURRENCY ?? DEFAULT_CONCURRENCY[generator],
  };
}
