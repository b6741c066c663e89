import type { JsMsg } from "@nats-io/jetstream";
import { Broker } from "@unbroken/store";
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { WorkerConfig } from "./config.js";
import type { TokenGenerator } from "./generator.js";
import { Intake, workersConsumer } from "./intake.js";
import { ResponseRun } from "./runner.js";
import { ScriptedGenerator } from "./scripted.js";

export interface Worker {
  readonly id: string;
  /** Responses running now. */
  readonly running: number;
  /** Stops taking requests, lets running responses finish (up to DRAIN_TIMEOUT), then closes. */
  close(): Promise<void>;
}

export function createGenerator(config: WorkerConfig): TokenGenerator {
  if (config.generator === "scripted") return new ScriptedGenerator({ tokensPerSecond: config.scriptedTps });
  throw new Error(`GENERATOR=${config.generator} is not available in this build yet; use GENERATOR=scripted`);
}

export async function startWorker(config: WorkerConfig, log: Logger): Promise<Worker> {
  const id = config.workerId ?? `w-${randomBytes(6).toString("hex")}`;
  const wlog = log.child({ worker: id });
  const generator = createGenerator(config);
  const broker = await Broker.connect({ url: config.natsUrl, name: `unbroken-worker-${id}`, retentionMs: config.retentionMs, log: wlog });
  const runs = new Map<string, { run: ResponseRun; done: Promise<void> }>();
  const deps = {
    broker,
    generator,
    workerId: id,
    log: wlog,
    queueTimeoutMs: config.queueTimeoutMs,
    workerTimeoutMs: config.workerTimeoutMs,
  };
  const opts = { concurrency: config.concurrency, workerTimeoutMs: config.workerTimeoutMs };
  let intake: Intake;
  const dispatch = (rid: string, msg: JsMsg): void => {
    if (runs.has(rid)) {
      // A redelivery of a request this worker runs right now: keep the one in hand.
      msg.working();
      return;
    }
    const run = new ResponseRun(deps, msg, rid);
    const done = run.run().finally(() => {
      runs.delete(rid);
      intake.slotFreed();
    });
    runs.set(rid, { run, done });
  };
  try {
    const consumer = await workersConsumer(broker, opts, wlog);
    intake = new Intake(consumer, opts, () => runs.size, dispatch, wlog);
  } catch (err) {
    await broker.close();
    throw err;
  }
  intake.start();
  wlog.info({ generator: generator.model, concurrency: config.concurrency }, "ready");

  let closing: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    await intake.stop();
    const deadline = new Promise<void>((r) => setTimeout(r, config.drainTimeoutMs).unref());
    const finished = Promise.all([...runs.values()].map((r) => r.done));
    await Promise.race([finished, deadline]);
    if (runs.size > 0) {
      wlog.warn({ running: runs.size }, "drain deadline passed; stopping what still runs");
      for (const { run } of runs.values()) run.stop();
      await Promise.race([finished, new Promise((r) => setTimeout(r, 5_000).unref())]);
    }
    await generator.close();
    await broker.close();
    wlog.info("worker stopped");
  };
  return {
    id,
    get running() {
      return runs.size;
    },
    close: () => (closing ??= close()),
  };
}
