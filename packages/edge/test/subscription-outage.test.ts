// Subscription across a NATS outage: the QUEUE_TIMEOUT promise it keeps for a queued response
// (subscription.ts: "a request no worker takes ends") when NATS cannot be reached at the moment
// its queue timer fires. A nats-server of this file's own is killed and restarted; no worker runs.
//
// The check that fails while NATS is down ("queue timeout check failed") must be tried again:
// nobody else would end the response (the ORPHAN_TIMEOUT watch leaves queued responses alone,
// the one expireIfStale a subscribe makes has run, and with no worker nobody pulls the request).
// Found by this test, when the queue timer was one-shot.
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { newRid, type ResponseRecord } from "@unbroken/protocol";
import { Broker, silentLog, type StoredEvent } from "@unbroken/store";
import { startNatsServer } from "@unbroken/testing";
import { pino } from "pino";
import { edgeConfigFromEnv } from "../src/config.js";
import { EdgeMetrics } from "../src/metrics.js";
import { ResponseService } from "../src/responses.js";
import { Subscription } from "../src/subscription.js";

async function until(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("a queued response whose QUEUE_TIMEOUT check failed while NATS was down still ends `no_worker` once NATS is back", async () => {
  const nats = await startNatsServer();
  let broker: Broker | undefined;
  let sub: Subscription | undefined;
  try {
    broker = await Broker.connect({ url: nats.url, name: "subscription-outage-test", retentionMs: 3_600_000, log: silentLog });
    const b = broker;
    // The edge's log, read for what the subscription says it did.
    const said: string[] = [];
    const log = pino(
      { level: "warn" },
      new Writable({
        write(chunk, _encoding, done) {
          said.push((JSON.parse(String(chunk)) as { msg: string }).msg);
          done();
        },
      }),
    );
    const queueTimeoutMs = 1_000;
    const responses = new ResponseService(
      b,
      { authOn: false, queueTimeoutMs, controlTimeoutMs: 1_000, limits: edgeConfigFromEnv({}).limits },
      log,
    );
    const record: ResponseRecord = {
      v: 1,
      rid: newRid(),
      owner: "alice",
      status: "queued",
      created_at: new Date().toISOString(),
      request: { prompt: "hello" },
      steers: [],
      epoch: 0,
    };
    assert.notEqual(await b.records.create(record), null);
    const events: StoredEvent[] = [];
    const deps = { broker: b, responses, queueTimeoutMs, orphanTimeoutMs: 300, metrics: new EdgeMetrics(), log };
    sub = new Subscription(
      deps,
      record.rid,
      0,
      (e) => events.push(e),
      () => undefined,
      { transport: "ws" },
    );
    sub.start(record);

    // NATS goes away before QUEUE_TIMEOUT, and the timer's check fails.
    await nats.kill();
    await until(() => said.some((m) => m.startsWith("queue timeout check failed")), "the queue timer's check failing");
    await nats.restart();
    await until(() => b.connected, "the broker reconnecting");

    // The response is past QUEUE_TIMEOUT with nobody running it: it must still end.
    await until(() => events.length > 0, "the no_worker end after NATS came back", 15_000);
    const end = events[0]?.frame.event as { kind: string; error?: { code: string } };
    assert.equal(end.kind, "end");
    assert.equal(end.error?.code, "no_worker");
  } finally {
    sub?.close();
    await broker?.close();
    await nats.stop();
  }
});
