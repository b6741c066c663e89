import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { PublishError, type JsPublisher } from "../src/js-publisher.js";
import { EVENTS_STREAM, encodeEventFrame, newRid, type ResponseEvent } from "@unbroken/protocol";
import { startNatsServer, type NatsServerHandle } from "@unbroken/testing";
import { Broker, handlesOf } from "../src/broker.js";
import { FencedError } from "../src/errors.js";
import { silentLog } from "../src/log.js";
import type { StoredEvent } from "../src/log-reader.js";
import { EventLogWriter } from "../src/log-writer.js";

let server: NatsServerHandle;
let broker: Broker;
let broker2: Broker;

before(async () => {
  server = await startNatsServer();
  broker = await Broker.connect({ url: server.url, name: "test", retentionMs: 3600_000, log: silentLog });
  broker2 = await Broker.connect({ url: server.url, name: "test2", retentionMs: 3600_000, log: silentLog });
});

after(async () => {
  await broker2?.close();
  await broker?.close();
  await server?.stop();
});

const token = (text: string): ResponseEvent => ({ kind: "token", text });

async function readAll(rid: string): Promise<StoredEvent[]> {
  const out: StoredEvent[] = [];
  await broker.logs.read(rid, 0, (e) => out.push(e));
  return out;
}

async function rejectsFenced(p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof FencedError, `expected FencedError, got ${String(err)}`);
    assert.equal(err.code, "fenced");
    return true;
  });
}

describe("EventLogWriter", () => {
  test("appends seq 1..n contiguously, readable back exactly as written", async () => {
    const rid = newRid();
    const w = broker.logs.writer(rid);
    const events: ResponseEvent[] = [
      { kind: "start", model: "scripted", created_at: new Date(0).toISOString() },
      ...Array.from({ length: 20 }, (_, i) => token(` w${i}`)),
      { kind: "end", reason: "stop", usage: { prompt_tokens: 1, completion_tokens: 20 } },
    ];
    // Queued without awaiting each: the writer serializes them itself.
    const seqs = await Promise.all(events.map((e) => w.append(e)));
    assert.deepEqual(
      seqs,
      events.map((_, i) => i + 1),
    );
    assert.equal(w.seq, events.length);

    const stored = await readAll(rid);
    assert.deepEqual(
      stored.map((s) => s.frame.seq),
      events.map((_, i) => i + 1),
    );
    for (const [i, s] of stored.entries()) {
      assert.equal(s.raw, encodeEventFrame(rid, i + 1, events[i] as ResponseEvent));
      assert.equal(s.frame.rid, rid);
    }
    // Stream sequences increase (the subject's messages are in order).
    for (let i = 1; i < stored.length; i++) assert.ok((stored[i] as StoredEvent).streamSeq > (stored[i - 1] as StoredEvent).streamSeq);

    const pos = await broker.logs.position(rid);
    assert.equal(pos.seq, events.length);
    assert.equal(pos.streamSeq, (stored.at(-1) as StoredEvent).streamSeq);
    assert.equal(pos.last?.frame.event.kind, "end");
  });

  test("onPublished is told once per stored event, with the event, and never for a fenced write", async () => {
    const rid = newRid();
    const told: Array<{ ms: number; kind: string }> = [];
    const w = broker.logs.writer(rid, undefined, { onPublished: (ms, e) => told.push({ ms, kind: e.kind }) });
    await w.append({ kind: "start", model: "scripted", created_at: new Date(0).toISOString() });
    await w.append(token(" a"));
    await w.append(token(" b"));
    assert.deepEqual(
      told.map((t) => t.kind),
      ["start", "token", "token"],
    );
    assert.ok(told.every((t) => Number.isFinite(t.ms) && t.ms >= 0));
    const stale = broker2.logs.writer(rid, undefined, { onPublished: (ms, e) => told.push({ ms, kind: e.kind }) });
    await rejectsFenced(stale.append(token(" c")));
    assert.equal(told.length, 3);
  });

  test("readStored with after skips earlier events", async () => {
    const rid = newRid();
    const w = broker.logs.writer(rid);
    for (let i = 1; i <= 10; i++) await w.append(token(`t${i}`));
    const got: number[] = [];
    await broker.logs.read(rid, 7, (e) => got.push(e.frame.seq));
    assert.deepEqual(got, [8, 9, 10]);
  });

  test("logPosition of an unknown rid is the empty position", async () => {
    const pos = await broker.logs.position(newRid());
    assert.deepEqual(pos, { seq: 0, streamSeq: 0, last: null });
  });

  test("a second writer starting from the empty position after the first wrote is fenced", async () => {
    const rid = newRid();
    const first = broker.logs.writer(rid);
    await first.append(token("mine"));
    await first.append(token("mine too"));
    const second = broker2.logs.writer(rid, { seq: 0, streamSeq: 0 });
    await rejectsFenced(second.append(token("intruder")));
    assert.equal(second.seq, 0);
    // It stays fenced on later attempts, and the log is untouched.
    await rejectsFenced(second.append(token("intruder again")));
    const stored = await readAll(rid);
    assert.deepEqual(
      stored.map((s) => s.frame.event.text),
      ["mine", "mine too"],
    );
  });

  test("a writer whose position is behind the log (not a duplicate msg id) is fenced", async () => {
    const rid = newRid();
    const w = broker.logs.writer(rid);
    for (let i = 0; i < 3; i++) await w.append(token(`x${i}`));
    const stale = broker2.logs.writer(rid, { seq: 10, streamSeq: 1 });
    await rejectsFenced(stale.append(token("late")));
    assert.equal((await readAll(rid)).length, 3);
  });

  test("a writer built from logPosition() continues at the right seq, and fences the old one", async () => {
    const rid = newRid();
    const old = broker.logs.writer(rid);
    for (let i = 1; i <= 5; i++) await old.append(token(`old${i}`));
    const pos = await broker2.logs.position(rid);
    assert.equal(pos.seq, 5);
    const next = broker2.logs.writer(rid, pos);
    assert.equal(next.seq, 5);
    assert.equal(await next.append(token("new6")), 6);
    assert.equal(await next.append(token("new7")), 7);
    await rejectsFenced(old.append(token("old6")));
    const stored = await readAll(rid);
    assert.deepEqual(
      stored.map((s) => s.frame.seq),
      [1, 2, 3, 4, 5, 6, 7],
    );
    assert.deepEqual(
      stored.slice(5).map((s) => s.frame.event.text),
      ["new6", "new7"],
    );
  });

  test("two writers racing on a fresh rid: exactly one wins each seq", async () => {
    for (let round = 0; round < 5; round++) {
      const rid = newRid();
      const a = broker.logs.writer(rid);
      const b = broker2.logs.writer(rid);
      const pa = Array.from({ length: 10 }, (_, i) => a.append(token(`A${i + 1}`)));
      const pb = Array.from({ length: 10 }, (_, i) => b.append(token(`B${i + 1}`)));
      const [ra, rb] = await Promise.all([Promise.allSettled(pa), Promise.allSettled(pb)]);
      const won = new Map<number, string>();
      for (const [name, results] of [
        ["A", ra],
        ["B", rb],
      ] as const) {
        for (const [i, r] of results.entries()) {
          if (r.status === "fulfilled") {
            assert.equal(won.has(r.value), false, `seq ${r.value} claimed twice`);
            won.set(r.value, `${name}${i + 1}`);
          } else {
            assert.ok(r.reason instanceof FencedError, String(r.reason));
          }
        }
      }
      const stored = await readAll(rid);
      const seqs = stored.map((s) => s.frame.seq);
      assert.deepEqual(
        seqs,
        Array.from({ length: seqs.length }, (_, i) => i + 1),
        "contiguous log",
      );
      assert.equal(won.size, stored.length, "every stored event has exactly one writer that was told it won");
      for (const s of stored) assert.equal(s.frame.event.text, won.get(s.frame.seq), `seq ${s.frame.seq}`);
    }
  });

  test("a stalled writer whose retry finds another writer's event at its seq is fenced, not told it won", async () => {
    // Old writer A's publish of seq 2 fails without reaching the server (a timeout); while it
    // backs off, new writer B (taken over from logPosition) writes seq 2. A's retry carries the
    // same msg id <rid>:2, so JetStream answers "duplicate" -- for B's event, not A's.
    const rid = newRid();
    const realA = broker.logs.writer(rid);
    await realA.append(token("A1"));
    const posAfter1 = await broker.logs.position(rid);

    let takeover: Promise<number> | undefined;
    let b: EventLogWriter | undefined;
    let calls = 0;
    const flaky = {
      publish: async (...args: Parameters<JsPublisher["publish"]>) => {
        if (calls++ === 0) {
          b = broker2.logs.writer(rid, posAfter1);
          takeover = b.append(token("B2"));
          await takeover;
          throw new PublishError("timeout", "timeout waiting for the JetStream publish ack");
        }
        return handlesOf(broker).publisher.publish(...args);
      },
    } as unknown as JsPublisher;
    const stored = async (seq: number) => (await handlesOf(broker).jsm.streams.getMessage(EVENTS_STREAM, { seq }))?.data ?? null;
    const a = new EventLogWriter({ publisher: flaky, stored }, rid, posAfter1);
    const outcome = await a.append(token("A2")).then(
      (seq) => `A was told it wrote seq ${seq}`,
      (err: unknown) => (err instanceof FencedError ? "fenced" : `other error ${String(err)}`),
    );
    assert.equal(await takeover, 2);
    // Had A been told it won, its next event would land after B's: two writers in one log.
    const next = await a.append(token("A3")).then(
      (seq) => `A wrote seq ${seq}`,
      (err: unknown) => (err instanceof FencedError ? "fenced" : `other error ${String(err)}`),
    );
    const texts = (await readAll(rid)).map((s) => `${s.frame.seq}:${s.frame.event.text}`);
    assert.equal(outcome, "fenced", `A must not believe B's event at seq 2 is its own; then A3 -> ${next}; log ${texts.join(" ")}`);
    assert.equal(next, "fenced");
    assert.deepEqual(texts, ["1:A1", "2:B2"]);
  });
});
