// Subscription driven directly, against a real nats-server and a real Broker: the stored log
// from `after`, then live, each seq once and in order, until `end`; the promises it keeps for
// a response nobody finishes (QUEUE_TIMEOUT for a queued one, ORPHAN_TIMEOUT for a running one
// whose worker is gone); `gone` when the events it needs were purged; and `close()`. The test
// writes the events itself, as a worker would; no worker runs.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import { newRid, type ResponseEvent, type ResponseRecord } from "@unbroken/protocol";
import { type Broker, ends, type StoredEvent } from "@unbroken/store";
import type { NatsTools } from "@unbroken/testing";
import { pino } from "pino";
import { type BrokerKit, startBrokerKit } from "./broker-kit.js";
import { edgeConfigFromEnv } from "../src/config.js";
import { EdgeMetrics } from "../src/metrics.js";
import { ResponseService } from "../src/responses.js";
import { Subscription, type SubscriptionDeps, type SubscriptionHooks } from "../src/subscription.js";

const log = pino({ level: "silent" });
const limits = edgeConfigFromEnv({}).limits;

let kit: BrokerKit;
let broker: Broker;
let tools: NatsTools;

before(async () => {
  kit = await startBrokerKit("subscription-test");
  ({ broker, tools } = kit);
});
// A test that failed midway leaves its subscriptions open, and their timers would keep the
// process alive: every one is closed after each test.
const readers: Reader[] = [];
afterEach(() => {
  for (const r of readers.splice(0)) r.sub.close();
});
after(() => kit?.stop());

/** Deps as the server builds them; the service and the subscription share QUEUE_TIMEOUT, as there. */
function deps(opts: { queueTimeoutMs?: number; orphanTimeoutMs?: number } = {}): SubscriptionDeps {
  const queueTimeoutMs = opts.queueTimeoutMs ?? 600_000;
  const metrics = new EdgeMetrics();
  const responses = new ResponseService(broker, { authOn: false, queueTimeoutMs, controlTimeoutMs: 1_000, limits, metrics }, log);
  return { broker, responses, queueTimeoutMs, orphanTimeoutMs: opts.orphanTimeoutMs ?? 600_000, metrics, log };
}

/** A record as the edge creates it, or as a worker leaves it once it has taken the response. */
async function record(status: "queued" | "running"): Promise<ResponseRecord> {
  const r: ResponseRecord = {
    v: 1,
    rid: newRid(),
    owner: "alice",
    status,
    created_at: new Date().toISOString(),
    request: { prompt: "hello" },
    steers: [],
    epoch: status === "running" ? 1 : 0,
    ...(status === "running" ? { worker: "w-test" } : {}),
  };
  assert.notEqual(await broker.records.create(r), null);
  return r;
}

const START: ResponseEvent = { kind: "start", model: "test", created_at: new Date(0).toISOString() };
const token = (i: number, n?: number): ResponseEvent =>
  n === undefined ? { kind: "token", text: ` t${i}` } : { kind: "token", text: ` t${i}`, n };
const END = ends.done("stop", { prompt_tokens: 1, completion_tokens: 3 });

/** A subscription and everything it hands its reader. */
class Reader {
  readonly events: StoredEvent[] = [];
  ends = 0;
  gones = 0;
  /** How many events had been sent when onEnd was called. */
  sentAtEnd: number | undefined;
  readonly sub: Subscription;

  constructor(d: SubscriptionDeps, rid: string, afterSeq: number, hooks: Partial<SubscriptionHooks> = {}, withOnGone = true) {
    const onGone = () => this.gones++;
    this.sub = new Subscription(
      d,
      rid,
      afterSeq,
      (e) => this.events.push(e),
      () => {
        this.ends++;
        this.sentAtEnd = this.events.length;
      },
      { transport: "ws", ...hooks, ...(withOnGone ? { onGone } : {}) },
    );
    readers.push(this);
  }

  get seqs(): number[] {
    return this.events.map((e) => e.seq);
  }

  get last(): StoredEvent | undefined {
    return this.events.at(-1);
  }
}

async function until(cond: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The record follows the log: its `end` is stored (and delivered) before the record says ended. */
async function recordEnded(rid: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while ((await broker.records.get(rid))?.record.status !== "ended") {
    if (Date.now() > deadline) throw new Error(`the record of ${rid} did not follow its log's end within 15 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function counter(m: EdgeMetrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = m.registry.getSingleMetric(name);
  assert.ok(metric, name);
  const { values } = await metric.get();
  const match = values.find((v) => Object.entries(labels).every(([k, l]) => (v.labels as Record<string, unknown>)[k] === l));
  return match?.value ?? 0;
}

describe("replay, then live, until end", () => {
  test("the stored events after `after`, then the live ones, each seq once and in order; onEnd after `end`", async () => {
    const d = deps();
    const { rid } = await d.responses.generate({ kind: "owner", owner: "alice" }, { type: "generate", prompt: "hello" });
    assert.equal(d.responses.generations.count("o:alice"), 1);
    const running = (await broker.records.mutate(rid, (r) => ({ ...r, status: "running", epoch: 1 })))?.record;
    assert.ok(running);
    const w = broker.logs.writer(rid);
    for (const e of [START, token(1), token(2), token(3)]) await w.append(e);

    const r = new Reader(d, rid, 2);
    r.sub.start(running);
    await until(() => r.events.length >= 2, "the replay");
    assert.deepEqual(r.seqs, [3, 4]);
    assert.equal(r.sub.lastSeq, 4);
    for (const e of [token(4), token(5), END]) await w.append(e);
    await until(() => r.ends > 0, "the end");

    assert.deepEqual(r.seqs, [3, 4, 5, 6, 7]);
    assert.equal(r.last?.kind, "end");
    assert.equal(r.ends, 1);
    assert.equal(r.sentAtEnd, 5, "onEnd comes after the end was sent");
    assert.equal(r.gones, 0);
    const stored = await tools.events(rid);
    assert.deepEqual(
      r.events.map((e) => e.raw),
      stored.slice(2).map((s) => JSON.stringify(s.frame)),
      "the stored frames, as stored",
    );
    assert.equal(d.responses.generations.count("o:alice"), 0, "the end frees the generation's slot");
    assert.equal(await counter(d.metrics, "unbroken_edge_events_sent_total"), 5);
    assert.equal(await counter(d.metrics, "unbroken_edge_events_replayed_total"), 2, "3 and 4 from the log");
    assert.equal(await counter(d.metrics, "unbroken_edge_resumes_total", { transport: "ws" }), 1, "after 2 is a resume");
    assert.equal(await counter(d.metrics, "unbroken_edge_streams", { transport: "ws" }), 0, "closed at its end");
  });

  test("a response that has ended: its log replayed to the end, then onEnd", async () => {
    const d = deps();
    const r0 = await record("running");
    const w = broker.logs.writer(r0.rid);
    for (const e of [START, token(1)]) await w.append(e);
    await broker.lifecycle.finish(w, END);
    const ended = (await broker.records.get(r0.rid))?.record;
    assert.equal(ended?.status, "ended");
    const r = new Reader(d, r0.rid, 0);
    r.sub.start(ended as ResponseRecord);
    await until(() => r.ends > 0, "the end");
    assert.deepEqual(r.seqs, [1, 2, 3]);
  });
});

describe("every response ends", () => {
  test("a queued response past QUEUE_TIMEOUT ends `no_worker`, delivered to its subscriber", async () => {
    const d = deps({ queueTimeoutMs: 300 });
    const queued = await record("queued");
    const r = new Reader(d, queued.rid, 0);
    r.sub.start(queued);
    await until(() => r.ends > 0, "the no_worker end");
    assert.deepEqual(r.seqs, [1]);
    const end = r.last?.frame.event as { kind: string; reason?: string; error?: { code: string } };
    assert.equal(end.kind, "end");
    assert.equal(end.reason, "error");
    assert.equal(end.error?.code, "no_worker");
    await recordEnded(queued.rid);
  });

  test("a running response no worker answers for ends `worker_lost` after ORPHAN_TIMEOUT, usage counted in tokens", async () => {
    const d = deps({ orphanTimeoutMs: 300 });
    const running = await record("running");
    const w = broker.logs.writer(running.rid);
    // Four tokens in three events: a coalesced event carries two.
    for (const e of [START, token(1), token(2, 2), token(3)]) await w.append(e);
    const r = new Reader(d, running.rid, 0);
    r.sub.start(running);
    await until(() => r.ends > 0, "the worker_lost end");
    assert.deepEqual(r.seqs, [1, 2, 3, 4, 5]);
    const end = r.last?.frame.event as { kind: string; reason?: string; error?: { code: string }; usage?: { completion_tokens: number } };
    assert.equal(end.kind, "end");
    assert.equal(end.error?.code, "worker_lost");
    assert.equal(end.usage?.completion_tokens, 4);
    await recordEnded(running.rid);
  });

  test("a running response whose worker answers is left running, checked again each ORPHAN_TIMEOUT", async (t) => {
    const d = deps({ orphanTimeoutMs: 200 });
    const running = await record("running");
    await broker.logs.writer(running.rid).append(START);
    let checks = 0;
    const listener = broker.control.listen(running.rid, (call) => {
      if (call.request.op === "status") checks++;
      call.respond({ ok: true });
    });
    t.after(() => listener.close());
    const r = new Reader(d, running.rid, 0);
    r.sub.start(running);
    // Two checks: the first found the worker, and the watch went on rather than end it.
    await until(() => checks >= 2, "two worker checks");
    r.sub.close();
    assert.deepEqual(r.seqs, [1]);
    assert.equal(r.ends, 0);
    assert.equal(await broker.lifecycle.hasEnded(running.rid), false);
    assert.equal((await broker.records.get(running.rid))?.record.status, "running");
  });
});

describe("expired events", () => {
  async function endedAndPurged(keep?: number): Promise<ResponseRecord> {
    const r0 = await record("running");
    const w = broker.logs.writer(r0.rid);
    for (const e of [START, token(1)]) await w.append(e);
    await broker.lifecycle.finish(w, END);
    await tools.purgeEvents(r0.rid, keep);
    return (await broker.records.get(r0.rid))?.record as ResponseRecord;
  }

  test("onGone when every event of an ended response was purged; nothing is sent", async () => {
    const ended = await endedAndPurged();
    const r = new Reader(deps(), ended.rid, 0);
    r.sub.start(ended);
    await until(() => r.gones > 0, "onGone");
    assert.equal(r.events.length, 0);
    assert.equal(r.ends, 0, "onGone instead of onEnd");
  });

  test("onGone when the head it needs expired; a reader after it still gets the rest; without onGone, onEnd", async () => {
    const ended = await endedAndPurged(1);
    const d = deps();
    const gone = new Reader(d, ended.rid, 0);
    const late = new Reader(d, ended.rid, 2);
    const bare = new Reader(d, ended.rid, 1, {}, false);
    for (const r of [gone, late, bare]) r.sub.start(ended);
    await until(() => gone.gones > 0 && late.ends > 0 && bare.ends > 0, "all three settled");
    assert.deepEqual(gone.seqs, []);
    assert.deepEqual(late.seqs, [3]);
    assert.equal(late.gones, 0);
    assert.deepEqual(bare.seqs, [], "the end alone is left, and it is not seq 2");
  });
});

describe("close", () => {
  test("close() stops delivery: a later event reaches another subscriber, not the closed one", async () => {
    const d = deps();
    const running = await record("running");
    const w = broker.logs.writer(running.rid);
    await w.append(START);
    const closed = new Reader(d, running.rid, 0);
    const open = new Reader(d, running.rid, 0);
    closed.sub.start(running);
    open.sub.start(running);
    await until(() => closed.events.length === 1 && open.events.length === 1, "both caught up");
    closed.sub.close();
    assert.equal(await counter(d.metrics, "unbroken_edge_streams", { transport: "ws" }), 1);
    await w.append(token(1));
    await w.append(END);
    // Both followed the same live tail of this broker: the closed one would have had these
    // events handed over in the same pass as the open one.
    await until(() => open.ends > 0, "the open subscriber's end");
    assert.deepEqual(open.seqs, [1, 2, 3]);
    assert.deepEqual(closed.seqs, [1]);
    assert.equal(closed.ends, 0);
    assert.equal(closed.sub.lastSeq, 1);
  });

  test("a subscription closed before it starts reads nothing", async () => {
    const d = deps();
    const running = await record("running");
    const w = broker.logs.writer(running.rid);
    await w.append(START);
    const closed = new Reader(d, running.rid, 0);
    closed.sub.close();
    closed.sub.start(running);
    const open = new Reader(d, running.rid, 0);
    open.sub.start(running);
    await w.append(END);
    await until(() => open.ends > 0, "the open subscriber's end");
    assert.deepEqual(closed.seqs, []);
    assert.equal(await counter(d.metrics, "unbroken_edge_streams", { transport: "ws" }), 0, "it never counted as a stream");
  });
});
