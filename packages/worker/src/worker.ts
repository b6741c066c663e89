import { createGenerator, type TokenGenerator } from "@unbroken/generators";
import { Broker, type WorkDelivery } from "@unbroken/store";
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { WorkerConfig } from "./config.js";
import { Intake } from "./intake.js";
import { WorkerMetrics, serveMetrics, type MetricsServer } from "./metrics.js";
import { ResponseRun } from "./runner.js";
import { LoadGauge } from "./load-gauge.js";

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
  for (const warning of config.warnings) wlog.warn(warning);
  const metrics = new WorkerMetrics(() => runs.size);
  // First, so a metrics address that cannot be used stops the worker before it loads a model or takes work.
  const metricsServer: MetricsServer | undefined =
    config.metrics && (await serveMetrics(metrics.registry, config.metrics.port, config.metrics.host, wlog));
  let generator: TokenGenerator;
  let broker: Broker;
  try {
    generator = await createGenerator(config, wlog);
  } catch (err) {
    await metricsServer?.close();
    throw err;
  }
  try {
    broker = await Broker.connect({
      url: config.natsUrl,
      name: `unbroken-worker-${id}`,
      retentionMs: config.retentionMs,
      replicas: config.replicas,
      log: wlog,
    });
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
    takeoverTimeoutMs: config.takeoverTimeoutMs,
    stallTimeoutMs: config.stallTimeoutMs,
    coalesce: { maxDelayMs: config.coalesceMs, delayMs: coalesceDelay(load, config.coalesceMs) },
    metrics,
  };
  let intake: Intake;
  const dispatch = (delivery: WorkDelivery): void => {
    const { rid, record, revision } = delivery.request;
    if (runs.has(rid)) {
      // A redelivery of a request this worker runs right now: keep the one in hand.
      delivery.working();
      return;
    }
    const carried = record && revision ? { record, revision } : undefined;
    const run = new ResponseRun(deps, delivery, rid, carried);
    const done = run.run().finally(() => {
      runs.delete(rid);
      intake.slotFreed();
    });
    runs.set(rid, { run, done });
  };
  try {
    const queue = await broker.workQueue(config.takeoverTimeoutMs);
    intake = new Intake(queue, { concurrency: config.concurrency }, () => runs.size, dispatch, wlog);
  } catch (err) {
    load.stop();
    await Promise.allSettled([broker.close(), generator.close(), metricsServer?.close()]);
    throw err;
  }
  intake.start();
  // Listed by the edges' GET /v1/models for as long as this worker takes requests.
  const unlist = broker.models.serve({ model: generator.model, worker: id, since: Date.now() });
  wlog.info(
    {
      generator: config.generator,
      why: config.reason,
      model: generator.model,
      concurrency: config.concurrency,
      coalesceMs: config.coalesceMs,
      metricsPort: metricsServer?.port,
    },
    "ready",
  );

  let closing: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    unlist();
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
