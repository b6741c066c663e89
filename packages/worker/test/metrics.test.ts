import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import { controlSubject } from "@unbroken/protocol";
import { Broker, silentLog, type StoredEvent } from "@unbroken/store";
import { NatsTools, scrapeMetrics, startNatsServer, type NatsServerHandle, type Scrape } from "@unbroken/testing";
import { pino } from "pino";
import { workerConfigFromEnv } from "../src/config.js";
import { submit } from "./submit.js";
import { startWorker, type Worker } from "../src/worker.js";

// The worker's /metrics against a real nats-server and a real (in-process) worker: responses
// are queued the way an edge queues them, and the counts are checked against the stored log.

let nats: NatsServerHandle;
let broker: Broker;
let tools: NatsTools;
const workers: Worker[] = [];

before(async () => {
  nats = await startNatsServer();
  broker = await Broker.connect({ url: nats.url, name: "test-edge", retentionMs: 3_600_000, log: silentLog });
  tools = await NatsTools.connect(nats.url);
});
after(async () => {
  await tools?.close();
  await broker?.close();
  await nats?.stop();
});
afterEach(async () => {
  await Promise.allSettled(workers.splice(0).map((w) => w.close()));
});

async function worker(env: Record<string, string> = {}): Promise<Worker> {
  const config = workerConfigFromEnv({ NATS_URL: nats.url, LOG_LEVEL: "silent", SCRIPTED_TPS: "200", METRICS_PORT: "0", ...env });
  const w = await startWorker(config, pino({ level: "silent" }));
  workers.push(w);
  return w;
}

const scrape = (w: Worker): Promise<Scrape> => scrapeMetrics(`http://127.0.0.1:${w.metricsPort}/metrics`);

/** Scrapes until `cond` holds (a run is counted finished just after its last write is acked). */
async function scrapeUntil(w: Worker, cond: (m: Scrape) => boolean, what: string): Promise<Scrape> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const m = await scrape(w);
    if (cond(m)) return m;
    if (Date.now() > deadline) throw new Error(`${what}: not within 30 s\n${m.text}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function until<T>(f: () => Promise<T | undefined>, what: string): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within 30 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function readLog(rid: string): Promise<StoredEvent[]> {
  return broker.logs.readAll(rid);
}

const ended = (rid: string) =>
  until(async () => ((await broker.logs.last(rid))?.frame.event.kind === "end" ? true : undefined), `the end of ${rid}`);

async function control(rid: string, req: object): Promise<unknown> {
  return tools.request(controlSubject(rid), JSON.stringify(req));
}

describe("worker metrics", () => {
  test("one response to its end: every event's publish timed, TTFT once, a gap per later token", async () => {
    const w = await worker();
    const rid = await submit(broker, "write 300 words about rivers", 12, false);
    await ended(rid);
    const m = await scrapeUntil(w, (s) => s.get("unbroken_worker_generations_active") === 0, "the run finishing");

    const log = await readLog(rid);
    // Tokens may share events (coalescing): the per-token histogram counts generated tokens.
    const tokens = log.filter((e) => e.frame.event.kind === "token").length;
    assert.ok(tokens >= 1 && tokens <= 12, `${tokens} token events`);
    assert.equal(m.get("unbroken_worker_nats_publish_seconds_count"), log.length, "one publish per stored event");
    assert.equal(m.sum("unbroken_worker_events_written_total"), log.length);
    assert.equal(m.get("unbroken_worker_events_written_total", { kind: "token" }), tokens);
    assert.equal(m.get("unbroken_worker_generations_total"), 1);
    assert.equal(m.get("unbroken_worker_ttft_seconds_count"), 1);
    assert.equal(m.get("unbroken_worker_time_per_output_token_seconds_count"), 12 - 1);
    assert.equal(m.get("unbroken_worker_stream_duration_seconds_count"), 1);
    assert.equal(m.get("unbroken_worker_responses_ended_total", { reason: "length" }), 1);
    assert.equal(m.sum("unbroken_worker_errors_total"), 0);
    assert.equal(m.get("unbroken_worker_cancels_total"), 0);
    assert.ok(m.has("process_resident_memory_bytes"), "collectDefaultMetrics");
  });

  test("steer and cancel: counted once each, and the cancel timed to its end", async () => {
    const w = await worker();
    const rid = await submit(broker, "write 3000 words about rivers", 5000, false);
    await until(async () => ((await readLog(rid)).some((e) => e.frame.event.kind === "token") ? true : undefined), "a first token");
    assert.deepEqual(await control(rid, { op: "steer", text: "be brief" }), { ok: true });
    assert.equal((await scrape(w)).get("unbroken_worker_generations_active"), 1);
    assert.deepEqual(await control(rid, { op: "cancel" }), { ok: true });
    const m = await scrapeUntil(w, (s) => s.get("unbroken_worker_generations_active") === 0, "the run finishing");

    const log = await readLog(rid);
    assert.equal(log.at(-1)?.frame.event.reason, "cancelled");
    assert.equal(m.get("unbroken_worker_steers_total"), 1);
    assert.equal(m.get("unbroken_worker_cancels_total"), 1);
    assert.equal(m.get("unbroken_worker_cancel_to_end_seconds_count"), 1);
    assert.equal(m.get("unbroken_worker_responses_ended_total", { reason: "cancelled" }), 1);
    assert.equal(m.get("unbroken_worker_nats_publish_seconds_count"), log.length);
  });

  test("only GET /metrics is served; a taken METRICS_PORT never stops a worker: it warns and serves on a free port", async () => {
    const w = await worker();
    assert.equal((await fetch(`http://127.0.0.1:${w.metricsPort}/`)).status, 404);
    assert.equal((await fetch(`http://127.0.0.1:${w.metricsPort}/metrics`, { method: "POST" })).status, 404);
    const lines: string[] = [];
    const config = workerConfigFromEnv({ NATS_URL: nats.url, LOG_LEVEL: "warn", METRICS_PORT: String(w.metricsPort) });
    const second = await startWorker(config, pino({ level: "warn" }, { write: (line: string) => void lines.push(line) }));
    workers.push(second);
    assert.ok(second.metricsPort !== undefined && second.metricsPort !== w.metricsPort, `another port: ${second.metricsPort}`);
    assert.equal((await fetch(`http://127.0.0.1:${second.metricsPort}/metrics`)).status, 200);
    const warning = lines.map((l) => JSON.parse(l) as { msg: string; wanted?: number }).find((l) => /METRICS_PORT is taken/.test(l.msg));
    assert.equal(warning?.wanted, w.metricsPort, "the warning names the port it wanted");
  });

  test("METRICS_PORT=off: no metrics server", async () => {
    const w = await worker({ METRICS_PORT: "off" });
    assert.equal(w.metricsPort, undefined);
  });
});

test("METRICS_PORT and METRICS_HOST: defaults, 0, off, and refusals naming the variable", () => {
  assert.deepEqual(workerConfigFromEnv({}).metrics, { port: 9464, host: "127.0.0.1" });
  assert.deepEqual(workerConfigFromEnv({ METRICS_PORT: "0", METRICS_HOST: "0.0.0.0" }).metrics, { port: 0, host: "0.0.0.0" });
  assert.equal(workerConfigFromEnv({ METRICS_PORT: "off" }).metrics, undefined);
  assert.throws(() => workerConfigFromEnv({ METRICS_PORT: "70000" }), /METRICS_PORT/);
  assert.throws(() => workerConfigFromEnv({ METRICS_PORT: "nine" }), /METRICS_PORT/);
});
