import type { JsMsg } from "@nats-io/jetstream";
import type { WorkRequest } from "@unbroken/protocol";
import { Broker } from "@unbroken/store";
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { WorkerConfig } from "./config.js";
import type { TokenGenerator } from "./generator.js";
import { Intake, repairWorkersConsumer, workersConsumer } from "./intake.js";
import { WorkerMetrics, serveMetrics, type MetricsServer } from "./metrics.js";
import { ResponseRun } from "./runner.js";
import { LoadGauge } from "./load-gauge.js";
import { LlamaGenerator } from "./llama.js";
import { OpenAIGenerator } from "./openai.js";
import { ScriptedGenerator } from "./scripted.js";
import { homedir } from "node:os";
import { join } from "node:path";

export interface Worker {
  readonly id: string;
  /** Responses running now. */
  readonly running: number;
  /** The port of its `GET /metrics` server; undefined with METRICS_PORT=off. */
  readonly metricsPort: number | undefined;
  readonly metrics: WorkerMetrics;
  /**
   * Stops taking requests, lets running responses finish (up to DRAIN_TIMEOUT), hands the
   * others over to another worker (each stops at a token boundary, without `end`), then closes.
   */
  close(): Promise<void>;
}

/** The configured generator, ready to start sessions (a model that fails to load still is). */
export async function createGenerator(config: WorkerConfig, log: Logger): Promise<TokenGenerator> {
  switch (config.generator) {
    case "scripted":
      return new ScriptedGenerator({ tokensPerSecond: config.scriptedTps });
    case "llama": {
      const { model, threads, gpu, contextSize } = config.llama;
      const generator = await LlamaGenerator.create({
        modelPath: await resolveModel(model, log),
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
 * `MODEL=hf:…` or an URL: node-llama-cpp's own resolver downloads it once into
 * MODELS_DIR (default ~/.cache/unbroken/models). Needs internet; never used in tests.
 */
async function resolveModel(model: string, log: Logger): Promise<string> {
  if (!/^(hf:|https?:\/\/)/.test(model)) return model;
  const { resolveModelFile } = await import("node-llama-cpp");
  const directory = process.env.MODELS_DIR ?? join(homedir(), ".cache", "unbroken", "models");
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

/**
 * The coalescing window for the worker's load: none while idle, COALESCE_MS while busy, and
 * five times that while saturated, where every event saved gives back CPU the tokens are
 * waiting for (a saturated worker's tokens are late by more than the window).
 */
function coalesceDelay(load: LoadGauge, ms: number): () => number {
  return () => (load.load === "idle" ? 0 : load.load === "busy" ? ms : 5 * ms);
}

export async function startWorker(config: WorkerConfig, log: Logger): Promise<Worker> {
  const id = config.workerId ?? `w-${randomBytes(6).toString("hex")}`;
  const wlog = log.child({ worker: id });
  const runs = new Map<string, { run: ResponseRun; done: Promise<void> }>();
  const metrics = new WorkerMetrics(() => runs.size);
  // First, so a taken METRICS_PORT stops the worker before it loads a model or takes work.
  const metricsServer: MetricsServer | undefined = config.metrics && (await serveMetrics(metrics.registry, config.metrics.port, config.metrics.host));
  let generator: TokenGenerator;
  let broker: Broker;
  try {
    generator = await createGenerator(config, wlog);
  } catch (err) {
    await metricsServer?.close();
    throw err;
  }
  try {
    broker = await Broker.connect({ url: config.natsUrl, name: `unbroken-worker-${id}`, retentionMs: config.retentionMs, replicas: config.replicas, log: wlog });
  } catch (err) {
    await Promise.allSettled([generator.close(), metricsServer?.close()]);
    throw err;
  }
  const load = new LoadGauge(config.coalesceBusy);
  const deps = {
    broker,
    generator,
    workerId: id,
    log: wlog,
    queueTimeoutMs: config.queueTimeoutMs,
    workerTimeoutMs: config.workerTimeoutMs,
    stallTimeoutMs: config.stallTimeoutMs,
    coalesce: { maxDelayMs: config.coalesceMs, delayMs: coalesceDelay(load, config.coalesceMs) },
    metrics,
  };
  const opts = { concurrency: config.concurrency, workerTimeoutMs: config.workerTimeoutMs };
  let intake: Intake;
  const dispatch = ({ rid, record, revision }: WorkRequest, msg: JsMsg): void => {
    if (runs.has(rid)) {
      // A redelivery of a request this worker runs right now: keep the one in hand.
      msg.working();
      return;
    }
    const carried = record && revision ? { record, revision } : undefined;
    const run = new ResponseRun(deps, msg, rid, carried);
    const done = run.run().finally(() => {
      runs.delete(rid);
      intake.slotFreed();
    });
    runs.set(rid, { run, done });
  };
  try {
    const consumer = await workersConsumer(broker, opts, wlog);
    intake = new Intake(consumer, opts, () => runs.size, dispatch, wlog, () => repairWorkersConsumer(broker, opts));
  } catch (err) {
    load.stop();
    await Promise.allSettled([broker.close(), generator.close(), metricsServer?.close()]);
    throw err;
  }
  intake.start();
  wlog.info(
    { generator: config.generator, why: config.generatorReason, model: generator.model, concurrency: config.concurrency, coalesceMs: config.coalesceMs, metricsPort: metricsServer?.port },
    "ready",
  );

  let closing: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    await intake.stop();
    const deadline = new Promise<void>((r) => setTimeout(r, config.drainTimeoutMs).unref());
    const finished = Promise.all([...runs.values()].map((r) => r.done));
    await Promise.race([finished, deadline]);
    if (runs.size > 0) {
      wlog.warn({ running: runs.size }, "drain deadline passed; handing over what still runs");
      for (const { run } of runs.values()) run.stop();
      await Promise.race([finished, new Promise((r) => setTimeout(r, 5_000).unref())]);
    }
    await generator.close();
    await broker.close();
    load.stop();
    await metricsServer?.close();
    wlog.info("worker stopped");
  };
  return {
    id,
    get running() {
      return runs.size;
    },
    metricsPort: metricsServer?.port,
    metrics,
    close: () => (closing ??= close()),
  };
}
