import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { EVENTS_STREAM, eventSubject, liveSubject, newRid, type ResponseEvent } from "@unbroken/protocol";
import { ConsumerCreations, startNatsServer, type NatsServerHandle } from "@unbroken/testing";
import { Broker, handlesOf } from "../src/broker.js";
import { LiveTails } from "../src/live-tails.js";
import { silentLog } from "../src/log.js";
import type { StoredEvent } from "../src/stored-event.js";

let server: NatsServerHandle;
let nc: NatsConnection;
let pub: NatsConnection;

before(async () => {
  server = await startNatsServer();
  nc = await connect({ servers: server.url });
  pub = await connect({ servers: server.url });
});

after(async () => {
  await pub?.close();
  await nc?.close();
  await server?.stop();
});

const frame = (rid: string, seq: number, kind = "token") =>
  JSON.stringify({ type: "event", rid, seq, event: kind === "token" ? { kind, text: ` w${seq}` } : { kind } });

/** Publishes frames on the live subject directly (as RePublish would) and waits until they are delivered. */
async function publish(rid: string, seqs: number[], kind?: string): Promise<void> {
  for (const s of seqs) pub.publish(liveSubject(rid), frame(rid, s, kind));
  await pub.flush();
  await nc.flush();
}

const seqsOf = (events: StoredEvent[] | undefined) => events?.map((e) => e.seq);

/** Polls `cond`; fails naming `what` after `ms`. */
async function until(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(5);
  }
}
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("LiveTails", () => {
  test("one subscription per response, however many listeners; each gets every event", async () => {
    const tails = new LiveTails(nc);
    const rid = newRid();
    const a: number[] = [];
    const b: number[] = [];
    const stopA = tails.follow(rid, (e) => a.push(e.seq));
    const stopB = tails.follow(rid, (e) => b.push(e.seq));
    await nc.flush();
    await publish(rid, [1, 2, 3]);
    assert.equal(tails.size, 1);
    assert.deepEqual(a, [1, 2, 3]);
    assert.deepEqual(b, [1, 2, 3]);
    stopA();
    await publish(rid, [4]);
    assert.deepEqual(a, [1, 2, 3]);
    assert.deepEqual(b, [1, 2, 3, 4]);
    stopB();
    tails.close();
    assert.equal(tails.size, 0);
  });

  test("keeps a contiguous run of recent events, and starts it again after a hole", async () => {
    const tails = new LiveTails(nc);
    const rid = newRid();
    const stop = tails.follow(rid, () => undefined);
    await nc.flush();
    await publish(rid, range(1, 10));
    assert.deepEqual(seqsOf(tails.recent(rid, 4, 10)), range(5, 10));
    assert.deepEqual(seqsOf(tails.recent(rid, 0, 3)), [1, 2, 3]);
    assert.deepEqual(tails.recent(rid, 10, 10), []);
    assert.equal(tails.recent(rid, 4, 11), undefined, "seq 11 is not held");
    // A duplicate is ignored; a hole (13 after 10) forgets what came before it.
    await publish(rid, [10, 13, 14]);
    assert.equal(tails.recent(rid, 4, 10), undefined);
    assert.equal(tails.recent(rid, 11, 14), undefined);
    assert.deepEqual(seqsOf(tails.recent(rid, 12, 14)), [13, 14]);
    assert.equal(tails.recent(newRid(), 0, 1), undefined, "an unknown rid holds nothing");
    stop();
    tails.close();
  });

  test("holds at most keepBytes of events, their objects counted too (always the newest one)", async () => {
    const keepBytes = 4_000;
    const tails = new LiveTails(nc, { keepBytes });
    const rid = newRid();
    const stop = tails.follow(rid, () => undefined);
    await nc.flush();
    await publish(rid, range(1, 200));
    const held = range(0, 199).filter((after) => tails.recent(rid, after, 200) !== undefined).length;
    const text = frame(rid, 150).length;
    // Less than the text alone would fit (objects count), more than 300 bytes an event would.
    assert.ok(held < keepBytes / text && held > keepBytes / (text + 300), `held ${held} events of ${text} bytes`);
    assert.deepEqual(seqsOf(tails.recent(rid, 199, 200)), [200]);
    stop();
    tails.close();
  });

  test("a tail nobody follows lingers, still listening, then goes", async () => {
    const tails = new LiveTails(nc, { lingerMs: 300 });
    const rid = newRid();
    const stop = tails.follow(rid, () => undefined);
    await nc.flush();
    await publish(rid, [1, 2]);
    stop();
    await publish(rid, [3, 4]);
    assert.deepEqual(seqsOf(tails.recent(rid, 0, 4)), [1, 2, 3, 4], "events that came while nobody followed are kept");
    // Following again keeps it; leaving again restarts the linger.
    const again = tails.follow(rid, () => undefined);
    await sleep(400);
    assert.equal(tails.size, 1);
    again();
    await sleep(400);
    assert.equal(tails.size, 0);
    assert.equal(tails.recent(rid, 0, 4), undefined);
    tails.close();
  });

  test("keeps at most maxLingering tails nobody follows: the oldest goes first", async () => {
    const tails = new LiveTails(nc, { maxLingering: 2 });
    const rids = [newRid(), newRid(), newRid()];
    const stops = rids.map((rid) => tails.follow(rid, () => undefined));
    await nc.flush();
    assert.equal(tails.size, 3);
    stops[0]?.();
    stops[1]?.();
    assert.equal(tails.size, 3, "two lingering, one followed");
    stops[2]?.();
    assert.equal(tails.size, 2);
    await publish(rids[0] as string, [1]);
    await publish(rids[2] as string, [1]);
    assert.equal(tails.recent(rids[0] as string, 0, 1), undefined, "the oldest lingering tail is gone");
    assert.deepEqual(seqsOf(tails.recent(rids[2] as string, 0, 1)), [1]);
    // Followed again, a lingering tail is not counted any more.
    const again = tails.follow(rids[1] as string, () => undefined);
    const more = tails.follow(newRid(), () => undefined);
    more();
    assert.equal(tails.size, 3);
    again();
    tails.close();
  });

  test("a tail opened before its log holds anything knows the last event, until a message may be lost", async () => {
    const tails = new LiveTails(nc);
    const rid = newRid();
    tails.open(rid);
    await nc.flush();
    assert.deepEqual(tails.known(rid), { last: null }, "nothing stored yet");
    const before = Date.now();
    await publish(rid, [1, 2, 3]);
    assert.equal(tails.known(rid)?.last?.seq, 3);
    // Its arrival stands for when it was stored: a reader measures the response's silence from it.
    assert.ok((tails.known(rid)?.last?.storedAt ?? 0) >= before, "the last event carries its arrival time");
    // A hole: what came between may be stored, so only the stream knows now.
    await publish(rid, [5]);
    assert.equal(tails.known(rid), undefined);

    const other = newRid();
    tails.open(other);
    await nc.flush();
    await publish(other, [1]);
    assert.equal(tails.known(other)?.last?.seq, 1);
    tails.interrupted();
    assert.equal(tails.known(other), undefined, "after a disconnect the copy may miss events");

    // A tail a reader opened later than its log began knows nothing of what came before.
    const late = newRid();
    const stop = tails.follow(late, () => {});
    await nc.flush();
    await publish(late, [1]);
    assert.equal(tails.known(late), undefined);
    stop();
    tails.close();
  });

  test("stops listening at end and keeps what it holds", async () => {
    const tails = new LiveTails(nc);
    const rid = newRid();
    const got: number[] = [];
    const stop = tails.follow(rid, (e) => got.push(e.seq));
    await nc.flush();
    await publish(rid, [1, 2]);
    await publish(rid, [3], "end");
    await publish(rid, [4]);
    assert.deepEqual(got, [1, 2, 3]);
    assert.deepEqual(seqsOf(tails.recent(rid, 0, 3)), [1, 2, 3]);
    stop();
    tails.close();
  });
});

describe("LogFollower with a lingering tail", () => {
  let reader: Broker;
  let writer: Broker;
  before(async () => {
    const open = (name: string) => Broker.connect({ url: server.url, name, retentionMs: 3600_000, log: silentLog });
    reader = await open("tails-reader");
    writer = await open("tails-writer");
  });
  after(async () => {
    await writer?.close();
    await reader?.close();
  });

  const token = (i: number): ResponseEvent => ({ kind: "token", text: ` t${i}` });

  test("a reader back from a drop resumes from memory: no consumer, every seq once", async () => {
    const consumers = new ConsumerCreations(handlesOf(reader).nc, EVENTS_STREAM, eventSubject("fence-tails"));
    try {
      const rid = newRid();
      const w = writer.logs.writer(rid);
      const first: number[] = [];
      let started = false;
      const f1 = reader.logs.follow({ rid, after: 0, onEvent: (e) => first.push(e.seq), onStart: () => (started = true) });
      f1.start();
      // It has looked at the (empty) log before anything is written: all of it comes live.
      await until(() => started, "the first follower's start");
      for (let i = 1; i <= 10; i++) await w.append(token(i));
      await until(() => first.length === 10, "10 live events");
      f1.stop();
      // Written while nobody on the reader's side follows the response.
      for (let i = 11; i <= 20; i++) await w.append(token(i));
      await handlesOf(reader).nc.flush();
      const second: Array<[number, boolean]> = [];
      let ended = false;
      const f2 = reader.logs.follow({
        rid,
        after: 10,
        onEvent: (e, replayed) => {
          second.push([e.seq, replayed]);
          if (e.kind === "end") ended = true;
        },
      });
      f2.start();
      await until(() => second.length >= 10, "10 events from memory");
      for (let i = 21; i <= 24; i++) await w.append(token(i));
      await w.append({ kind: "end", reason: "stop", usage: { prompt_tokens: 0, completion_tokens: 24 } });
      await until(() => ended, "the end");
      assert.deepEqual(
        second.map(([s]) => s),
        range(11, 25),
      );
      assert.deepEqual(
        second.slice(0, 10).map(([, r]) => r),
        Array(10).fill(true),
        "11..20 replayed",
      );
      assert.deepEqual(
        second.slice(10).map(([, r]) => r),
        Array(5).fill(false),
        "21..25 live",
      );
      assert.deepEqual(await consumers.settled(), [], "no consumer was created");
    } finally {
      consumers.close();
    }
  });

  test("a response queued with enqueueNew is read from its start without asking the stream", async () => {
    // Every direct get is a request on this subject: a spy on another connection sees each one.
    const lookups: string[] = [];
    const spy = pub.subscribe(`$JS.API.DIRECT.GET.${EVENTS_STREAM}.>`, {
      callback: (_e, m) => {
        lookups.push(m.subject);
      },
    });
    await pub.flush();
    try {
      const rid = newRid();
      await reader.enqueueNew({ rid });
      const w = writer.logs.writer(rid);
      for (let i = 1; i <= 5; i++) await w.append(token(i));
      await handlesOf(reader).nc.flush();
      const got: Array<[number, boolean]> = [];
      let ended = false;
      const f = reader.logs.follow({
        rid,
        after: 0,
        onEvent: (e, replayed) => {
          got.push([e.seq, replayed]);
          if (e.kind === "end") ended = true;
        },
      });
      f.start();
      await until(() => got.length >= 5, "5 events from memory");
      await w.append({ kind: "end", reason: "stop", usage: { prompt_tokens: 0, completion_tokens: 5 } });
      await until(() => ended, "the end");
      assert.deepEqual(
        got.map(([seq]) => seq),
        range(1, 6),
      );
      await pub.flush();
      assert.deepEqual(
        lookups.filter((s) => s.endsWith(rid)),
        [],
        "no direct get for this response",
      );
      // A reader of a response queued the usual way asks the stream once: the spy can see it.
      const plain = newRid();
      await reader.enqueue({ rid: plain });
      const g = reader.logs.follow({ rid: plain, after: 0, onEvent: () => {} });
      g.start();
      await until(() => lookups.some((s) => s.endsWith(plain)), "the direct get of a plain follow");
      g.stop();
    } finally {
      spy.unsubscribe();
    }
  });
});
