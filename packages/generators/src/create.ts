import { homedir } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import type { GeneratorConfig } from "./config.js";
import type { TokenGenerator } from "./generator.js";
import { LlamaGenerator } from "./llama.js";
import { OpenAIGenerator } from "./openai.js";
import { ScriptedGenerator } from "./scripted.js";

/** The configured generator, ready to start sessions (a model that fails to load still is). */
export async function createGenerator(config: GeneratorConfig, log: Logger): Promise<TokenGenerator> {
  switch (config.generator) {
    case "scripted":
      return new ScriptedGenerator({ tokensPerSecond: config.scriptedTps });
    case "llama": {
      const { model, modelsDir, threads, gpu, contextSize } = config.llama;
      const generator = await LlamaGenerator.create({
        modelPath: await resolveModel(model, modelsDir, log),
        threads,
        gpu: gpu === "false" ? false : gpu,
        concurrency: config.concurrency,
        contextSize,
        log,
      });
      const status = generator.status();
      if (status.state === "failed") log.error({ err: status.error }, "model failed to load; responses will end with model_unavailable");
      return generator;
    }
    case "openai": {
      const { baseUrl, apiKey, model } = config.openai;
      return new OpenAIGenerator({ baseUrl, apiKey, model: model ?? (await firstUpstreamModel(baseUrl, apiKey, log)), log });
    }
  }
}

/**
 * `MODEL=hf:…` or an URL: node-llama-cpp's own resolver downloads it once into MODELS_DIR
 * (default ~/.cache/unbroken/models). Needs internet; never used in tests.
 */
async function resolveModel(model: string, modelsDir: string | undefined, log: Logger): Promise<string> {
  if (!/^(hf:|https?:\/\/)/.test(model)) return model;
  const { resolveModelFile } = await import("node-llama-cpp");
  const directory = modelsDir ?? join(homedir(), ".cache", "unbroken", "models");
  log.info({ model, directory }, "resolving model");
  return resolveModelFile(model, { directory });
}

/** Without OPENAI_MODEL, the upstream's first listed model (vLLM serves exactly one). */
async function firstUpstreamModel(baseUrl: string, apiKey: string | undefined, log: Logger): Promise<string> {
  try {
    const res = await fetch(`${baseUrl}/models`, {
      headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {},
      signal: AbortSignal.timeout(5_000),
    });
    const body = (await res.json()) as { data?: Array<{ id?: unknown }> };
    const id = body.data?.[0]?.id;
    if (typeof id === "string") {
      log.info({ model: id }, "OPENAI_MODEL not set; using the upstream's first model");
      return id;
    }
  } catch (err) {
    log.warn({ err: String(err) }, "could not list the upstream's models");
  }
  return "default";
}
