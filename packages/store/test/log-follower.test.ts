import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { EVENTS_STREAM, eventSubject, liveSubject, newRid, type ResponseEvent } from "@unbroken/protocol";
import { ConsumerCreations, startNatsServer, type NatsServerHandle } from "@unbroken/testing";
import { Broker, handlesOf } from "../src/broker.js";
import { silentLog } from "../src/log.js";
import type { LogFollower, FollowOptions } from "../src/log-follower.js";
import type { EventLogWriter } from "../src/log-writer.js";

let server: NatsServerHandle;
let reader: Broker; // the follower's side (an edge)
let writerBroker: Broker; // the writer's side (a worker)

const connect = (name: string) => Broker.connect({ url: server.url, name, retentionMs: 3600_000, log: silentLog });

before(async () => {
  server = await startNatsServer();
  reader = await connect("test");
  writerBroker = await connect("test-writer");
});

after(async () => {
  await writerBroker?.close();
  await reader?.close();
  await server?.stop();
});

const token = (i: number): ResponseEvent => ({ kind: "token", text: ` t${i}` });
const END: ResponseEvent = { kind: "end", reason: "stop", usage: { prompt_tokens: 0, completion_tokens: 0 } };

interface Followed {
  follower: LogFollower;
  seqs: number[];
  texts: string[];
  kinds: string[];
  /** Per delivered event: read from the stored log (true) or received live (false). */
  replayed: boolean[];
  /** Resolves at the `end` event; rejects after `ms` with what was delivered so far. */
  ended(ms?: number): Promise<void>;
  waitFor(count: number, ms?: number): Promise<void>;
  /** Resolves once the follower has looked at the log (onStart), with its last stored seq (0: none). */
  started: Promise<number>;
}

function follow(broker: Broker, rid: string, afterSeq: number, more: Partial<FollowOptions> = {}): Followed {
  const seqs: number[] = [];
  const texts: string[] = [];
  const kinds: string[] = [];
  const replayed: boolean[] = [];
  let endSeen = false;
  const waiters: Array<() => void> = [];
  let onStarted!: (seq: number) => void;
  const started = new Promise<number>((r) => (onStarted = r));
  const follower = broker.logs.follow({
    ...more,
    rid,
    after: afterSeq,
    onStart: (last) => {
      more.onStart?.(last);
      onStarted(last?.frame.seq ?? 0);
    },
    onEvent: (e, fromStore) => {
      seqs.push(e.frame.seq);
      replayed.push(fromStore);
      kinds.push(e.frame.event.kind);
      texts.push(String(e.frame.event.text ?? ""));
      if (e.frame.event.kind === "end") endSeen = true;
      for (const w of waiters.splice(0)) w();
    },
  });
  const until = async (cond: () => boolean, ms: number, what: string) => {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; delivered ${JSON.stringify(seqs)}`);
      await Promise.race([new Promise<void>((r) => waiters.push(r)), sleep(200)]);
    }
  };
  follower.start();
  return {
    follower,
    seqs,
    texts,
    kinds,
    replayed,
    ended: (ms = 60_000) => until(() => endSeen, ms, "end"),
    waitFor: (count, ms = 60_000) => until(() => seqs.length >= count, ms, `${count} events`),
    started: within(started, "the follower's look at the log"),
  };
}

function within<T>(p: Promise<T>, what: string, ms = 30_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)));
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Polls `cond`; fails naming `what` after `ms`. */
async function until(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(10);
  }
}

/**
 * The bound for "nothing more reached a follower": a plain subscription to rid's live subject on
 * the follower's connection, made before `write` runs, has received the `count` events it wrote.
 * A follower still listening was handed each of them in the same dispatch, before this one.
 */
async function witnessed(broker: Broker, rid: string, count: number, write: () => Promise<void>): Promise<void> {
  const sub = handlesOf(broker).nc.subscribe(liveSubject(rid), { max: count });
  await handlesOf(broker).nc.flush();
  await write();
  const all = (async () => {
    for await (const _ of sub) void _;
  })();
  await within(all, `${count} live events on the witness subscription`);
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Writes tokens from..to (as seqs), yielding to the loop now and then so followers interleave. */
async function writeTokens(w: EventLogWriter, from: number, to: number): Promise<void> {
  for (let i = from; i <= to; i++) {
    assert.equal(await w.append(token(i)), i);
    if (i % 7 === 0) await sleep(1);
  }
}

describe("LogFollower", () => {
  test("(a) started before any event: delivers seq 1..50 exactly once, in order", async () => {
    const rid = newRid();
    const f = follow(reader, rid, 0);
    assert.equal(await f.started, 0, "it looked at the log before anything was written");
    assert.deepEqual(f.seqs, []);
    const w = writerBroker.logs.writer(rid);
    await writeTokens(w, 1, 49);
    assert.equal(await w.append(END), 50);
    await f.ended();
    assert.deepEqual(f.seqs, range(1, 50));
    assert.deepEqual(
      f.texts.slice(0, 49),
      range(1, 49).map((i) => ` t${i}`),
    );
    assert.equal(f.kinds.at(-1), "end");
    assert.equal(f.follower.lastDelivered, 50);
    // Nothing more after end, even when something is written.
    await witnessed(reader, rid, 1, async () => void (await w.append(token(51))));
    assert.equal(f.seqs.length, 50);
  });

  test("(b) after=10 with 30 stored and 30 more written concurrently: exactly 11..60", async () => {
    const rid = newRid();
    const w = writerBroker.logs.writer(rid);
    await writeTokens(w, 1, 30);
    const f = follow(reader, rid, 10);
    await writeTokens(w, 31, 59);
    assert.equal(await w.append(END), 60);
    await f.ended();
    assert.deepEqual(f.seqs, range(11, 60));
  });

  test("(b') a follower started on an already ended log replays from after and stops at end", async () => {
    const rid = newRid();
    const w = writerBroker.logs.writer(rid);
    await writeTokens(w, 1, 9);
    await w.append(END);
    const f = follow(reader, rid, 4);
    await f.ended();
    assert.deepEqual(f.seqs, range(5, 10));
  });

  test("(b'') events stored before the follower started are flagged replayed, later ones live", async () => {
    const rid = newRid();
    const w = writerBroker.logs.writer(rid);
    await writeTokens(w, 1, 5);
    const f = follow(reader, rid, 2);
    await f.waitFor(3);
    // The stored read was bounded when it began (3 events after seq 2): the rest comes live.
    await writeTokens(w, 6, 8);
    await w.append(END);
    await f.ended();
    assert.deepEqual(f.seqs, range(3, 9));
    assert.deepEqual(f.replayed, [true, true, true, false, false, false, false]);
  });

  test("(c) 10 followers on the same rid all get the same sequence", async () => {
    const rid = newRid();
    const w = writerBroker.logs.writer(rid);
    await writeTokens(w, 1, 5);
    const fs = Array.from({ length: 10 }, (_, i) => follow(i % 2 ? reader : writerBroker, rid, i % 3));
    await writeTokens(w, 6, 79);
    await w.append(END);
    await Promise.all(fs.map((f) => f.ended()));
    for (const [i, f] of fs.entries()) {
      assert.deepEqual(f.seqs, range((i % 3) + 1, 80), `follower ${i}`);
      assert.deepEqual(f.texts.slice(0, 10), fs[0]?.texts.slice(i % 3, (i % 3) + 10));
    }
  });

  test("stop() ends delivery at once", async () => {
    const rid = newRid();
    const w = writerBroker.logs.writer(rid);
    const f = follow(reader, rid, 0);
    await writeTokens(w, 1, 5);
    await f.waitFor(5);
    f.follower.stop();
    await witnessed(reader, rid, 5, () => writeTokens(w, 6, 10));
    assert.deepEqual(f.seqs, range(1, 5));
  });

  test("(d) broker restart mid-stream: every seq exactly once through to end", async () => {
    const rid = newRid();
    const w = writerBroker.logs.writer(rid, undefined, { retryForMs: 90_000 });
    let reconnects = 0;
    const off = reader.onReconnect(() => reconnects++);
    const f = follow(reader, rid, 0);
    const TOTAL = 400;
    let written = 0;
    const writing = (async () => {
      for (let i = 1; i < TOTAL; i++) {
        assert.equal(await w.append(token(i)), i);
        written = i;
        await sleep(2);
      }
      assert.equal(await w.append(END), TOTAL);
      written = TOTAL;
    })();
    await f.waitFor(40);
    const before = written;
    await server.restart();
    await writing;
    assert.ok(before < TOTAL - 50, `restart happened mid-stream (at ${before})`);
    await f.ended(90_000);
    assert.deepEqual(f.seqs, range(1, TOTAL));
    assert.deepEqual(
      f.texts.slice(0, TOTAL - 1),
      range(1, TOTAL - 1).map((i) => ` t${i}`),
    );
    assert.equal(reader.connected, true);
    off();
    assert.ok(reconnects >= 1, "the follower's broker went through a reconnect");
  });

  test("(d') events written while the follower's side was disconnected are caught up after reconnect", async () => {
    const rid = newRid();
    const w = writerBroker.logs.writer(rid, undefined, { retryForMs: 90_000 });
    const f = follow(reader, rid, 0);
    await writeTokens(w, 1, 10);
    await f.waitFor(10);
    await server.restart();
    // Right after the restart: the follower's live subscription may not be back yet.
    await writeTokens(w, 11, 20);
    await w.append(END);
    await f.ended(90_000);
    assert.deepEqual(f.seqs, range(1, 21));
  });

  test("nothing stored after `after` (a fresh log, or one read up to its end): no consumer, every event live", async () => {
    const consumers = new ConsumerCreations(handlesOf(reader).nc, EVENTS_STREAM, eventSubject("fence-consumers"));
    try {
      const fresh = newRid();
      const f1 = follow(reader, fresh, 0);
      const old = newRid();
      const w2 = writerBroker.logs.writer(old);
      await writeTokens(w2, 1, 5);
      const f2 = follow(reader, old, 5);
      // Both have looked at the log before what they follow is written.
      await Promise.all([f1.started, f2.started]);
      const w1 = writerBroker.logs.writer(fresh);
      await writeTokens(w1, 1, 19);
      await w1.append(END);
      await writeTokens(w2, 6, 19);
      await w2.append(END);
      await Promise.all([f1.ended(), f2.ended()]);
      assert.deepEqual(f1.seqs, range(1, 20));
      assert.deepEqual(f2.seqs, range(6, 20));
      assert.deepEqual(await consumers.settled(), [], "no consumer was created");
      // The counting works: a follower with stored events to read creates one.
      const f3 = follow(reader, old, 2);
      await f3.ended();
      assert.deepEqual(f3.seqs, range(3, 20));
      assert.equal((await consumers.settled()).length, 1);
    } finally {
      consumers.close();
    }
  });

  test("followers started while the log is written, each from what it last saw: every seq once, in order", async () => {
    // Each start races the writes: events are stored between the follower's subscription, its
    // look at the log's end and the consumer's read, and their live copies come before,
    // between or after those answers. The handover by seq must hide all of that.
    const rid = newRid();
    const w = writerBroker.logs.writer(rid);
    const TOTAL = 300;
    const followers: Array<{ from: number; f: Followed }> = [];
    let written = 0;
    for (let i = 1; i < TOTAL; i++) {
      await w.append(token(i));
      written = i;
      if (i % 10 === 3) {
        const from = written - (i % 20 === 3 ? 0 : 2);
        followers.push({ from, f: follow(i % 3 ? reader : writerBroker, rid, from) });
      }
    }
    await w.append(END);
    for (const { from, f } of followers) {
      await f.ended();
      assert.deepEqual(f.seqs, range(from + 1, TOTAL), `follower from ${from}`);
    }
  });

  test("fromEnd: skips what is stored, says where it started, and follows from there", async () => {
    const rid = newRid();
    const w = writerBroker.logs.writer(rid);
    await writeTokens(w, 1, 12);
    const starts: Array<number | null> = [];
    const f = follow(reader, rid, 0, { fromEnd: true, onStart: (last) => starts.push(last?.frame.seq ?? null) });
    const empty = follow(reader, newRid(), 0, { fromEnd: true, onStart: (last) => starts.push(last?.frame.seq ?? null) });
    await until(() => starts.length === 2, "both followers' start");
    assert.deepEqual([...starts].sort(), [12, null].sort());
    await writeTokens(w, 13, 29);
    await w.append(END);
    await f.ended();
    assert.deepEqual(f.seqs, range(13, 30));
    empty.follower.stop();
    assert.deepEqual(empty.seqs, []);

    // Started on an ended log: it starts at the end, delivers nothing and stops.
    const late: Array<number | null> = [];
    const g = follow(reader, rid, 0, { fromEnd: true, onStart: (last) => late.push(last?.frame.seq ?? null) });
    await until(() => late.length === 1, "the late follower's start");
    assert.deepEqual(late, [30]);
    assert.deepEqual(g.seqs, []);
  });
});
