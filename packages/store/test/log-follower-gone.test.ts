// A log whose head expired (RETENTION) never leaves a follower waiting: it reports onGone.
// Expiry is simulated by purging the oldest events of the rid's subject, which is what
// JetStream's max_age does to a log: events leave from the head only.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { EVENTS_STREAM, eventSubject, newRid, type ResponseEvent } from "@unbroken/protocol";
import { ConsumerCreations, startNatsServer, type NatsServerHandle } from "@unbroken/testing";
import { Broker, handlesOf } from "../src/broker.js";
import { silentLog } from "../src/log.js";
import type { LogFollower } from "../src/log-follower.js";
import type { EventLogWriter } from "../src/log-writer.js";

let server: NatsServerHandle;
let broker: Broker;

before(async () => {
  server = await startNatsServer();
  broker = await Broker.connect({ url: server.url, name: "test", retentionMs: 3600_000, log: silentLog });
});

after(async () => {
  await broker?.close();
  await server?.stop();
});

const token = (i: number): ResponseEvent => ({ kind: "token", text: ` t${i}` });
const END: ResponseEvent = { kind: "end", reason: "stop", usage: { prompt_tokens: 0, completion_tokens: 0 } };

async function writeLog(rid: string, tokens: number, end: boolean): Promise<EventLogWriter> {
  const w = broker.logs.writer(rid);
  for (let i = 1; i <= tokens; i++) await w.append(token(i));
  if (end) await w.append(END);
  return w;
}

/** Drops all but the last `keep` events of rid, as expiry would. */
const expireHead = (rid: string, keep: number) => handlesOf(broker).jsm.streams.purge(EVENTS_STREAM, { filter: eventSubject(rid), keep });

interface Watched {
  seqs: number[];
  gone: Promise<void>;
  isGone: () => boolean;
  follower: LogFollower;
  /** Resolves once the follower has looked at the log (onStart). */
  started: Promise<void>;
}

function watch(rid: string, afterSeq: number, ended = false): Watched {
  const seqs: number[] = [];
  let goneSeen = false;
  let resolveGone!: () => void;
  const gone = new Promise<void>((r) => (resolveGone = r));
  let resolveStarted!: () => void;
  const started = new Promise<void>((r) => (resolveStarted = r));
  const follower = broker.logs.follow({
    rid,
    after: afterSeq,
    ended,
    onStart: () => resolveStarted(),
    onEvent: (e) => seqs.push(e.frame.seq),
    onGone: () => {
      goneSeen = true;
      resolveGone();
    },
  });
  follower.start();
  return { seqs, gone, isGone: () => goneSeen, follower, started };
}

/** Polls until `w` has `count` events or was told gone; fails after `ms`. */
async function settled(w: Watched, count: number, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (w.seqs.length < count && !w.isGone()) {
    if (Date.now() > deadline) throw new Error(`${count} events or gone: not within ${ms} ms (got ${JSON.stringify(w.seqs)})`);
    await sleep(20);
  }
}

function within<T>(p: Promise<T>, what: string, ms = 30_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)));
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

describe("LogFollower and expired events", () => {
  test("the first events expired: a follower from seq 0 is told gone and gets nothing", async () => {
    const rid = newRid();
    await writeLog(rid, 6, false);
    await expireHead(rid, 3);
    assert.equal((await broker.logs.first(rid))?.frame.seq, 4);
    const w = watch(rid, 0);
    await within(w.gone, "onGone");
    assert.deepEqual(w.seqs, []);
  });

  test("a live event beyond the hole does not keep it waiting either", async () => {
    const rid = newRid();
    const writer = await writeLog(rid, 5, false);
    await expireHead(rid, 2);
    const w = watch(rid, 1);
    await writer.append(token(6));
    await within(w.gone, "onGone");
    assert.deepEqual(w.seqs, []);
  });

  test("a follower whose next event is still stored reads on as usual", async () => {
    const rid = newRid();
    const writer = await writeLog(rid, 5, false);
    await expireHead(rid, 3);
    const w = watch(rid, 2);
    await writer.append(END);
    await settled(w, 4);
    assert.deepEqual(w.seqs, [3, 4, 5, 6]);
    assert.equal(w.isGone(), false);
  });

  test("an ended response with no event left is gone", async () => {
    const rid = newRid();
    await writeLog(rid, 2, true);
    await handlesOf(broker).jsm.streams.purge(EVENTS_STREAM, { filter: eventSubject(rid) });
    assert.equal(await broker.logs.first(rid), null);
    const w = watch(rid, 0, true);
    await within(w.gone, "onGone");
  });

  test("an empty log that is not known to have ended (queued) is waited on, not gone", async () => {
    const rid = newRid();
    const consumers = new ConsumerCreations(handlesOf(broker).nc, EVENTS_STREAM, eventSubject("fence-gone"));
    try {
      const w = watch(rid, 0, false);
      // The bound: it has looked at the empty log and started no read of it (a gone comes only
      // from a read), so it is waiting on the live tail before anything is written.
      await within(w.started, "the follower's look at the log");
      assert.deepEqual(await consumers.settled(), [], "the empty log is not read");
      assert.equal(w.isGone(), false);
      await writeLog(rid, 1, true);
      await settled(w, 2);
      assert.deepEqual(w.seqs, [1, 2]);
      assert.equal(w.isGone(), false);
    } finally {
      consumers.close();
    }
  });
});
