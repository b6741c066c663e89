import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { StoredTurn } from "@unbroken/protocol";
import { startNatsServer, type NatsServerHandle } from "@unbroken/testing";
import { Broker } from "../src/broker.js";
import { silentLog } from "../src/log.js";
import type { ThreadTurn, TurnDraft } from "../src/threads.js";

// Thread logs on a real nats-server: fenced appends numbered without gaps, idempotent by rid,
// followers that replay then follow live.

let server: NatsServerHandle;
let broker: Broker;
let n = 0;

before(async () => {
  server = await startNatsServer();
  broker = await Broker.connect({ url: server.url, name: "threads-test", retentionMs: 3_600_000, log: silentLog });
});
after(async () => {
  await broker?.close();
  await server?.stop();
});

const newThread = () => `thread-${process.pid}-${++n}`;
const draft = (thread: string, rid: string, at = "2026-12-05T10:00:00.000Z"): TurnDraft => ({
  thread,
  rid,
  owner: "alice",
  messages: [{ role: "user", content: `asked in ${rid}` }],
  created_at: at,
});
const anyone = () => undefined;

test("turns are numbered from 1; every turn carries the thread's creation time", async () => {
  const t = newThread();
  assert.equal(await broker.threads.last(t), null);
  await broker.threads.append(draft(t, "rid-aaaa-1", "2026-12-05T10:00:00.000Z"), anyone);
  const second = await broker.threads.append(draft(t, "rid-aaaa-2", "2026-12-05T11:00:00.000Z"), anyone);
  assert.equal(second.turn.seq, 2);
  assert.equal(second.turn.thread_created_at, "2026-12-05T10:00:00.000Z");
  assert.deepEqual((await broker.threads.last(t))?.turn, second.turn);
});

test("appends at once get one seq each, with no gap; a retried append (same rid) lands once", async () => {
  const t = newThread();
  const made = await Promise.all(Array.from({ length: 12 }, (_, i) => broker.threads.append(draft(t, `rid-bbbb-${i}`), anyone)));
  assert.deepEqual(
    made.map((m) => m.turn.seq).sort((a, b) => a - b),
    Array.from({ length: 12 }, (_, i) => i + 1),
  );
  const again = await broker.threads.append(draft(t, "rid-bbbb-3"), anyone);
  assert.deepEqual(again.turn, made[3]?.turn, "the turn already appended for that rid");
  assert.equal((await broker.threads.last(t))?.turn.seq, 12);
});

test("check sees the last turn before each try and refuses by throwing; nothing is appended", async () => {
  const t = newThread();
  await broker.threads.append(draft(t, "rid-cccc-1"), anyone);
  const seen: Array<number | undefined> = [];
  await assert.rejects(
    broker.threads.append(draft(t, "rid-cccc-2"), (last: ThreadTurn | null) => {
      seen.push(last?.turn.seq);
      throw new Error("full");
    }),
    /full/,
  );
  assert.deepEqual(seen, [1]);
  assert.equal((await broker.threads.last(t))?.turn.seq, 1);
});

test("a follower skips what it has, replays the rest, follows live, and stops", async () => {
  const t = newThread();
  for (const i of [1, 2, 3]) await broker.threads.append(draft(t, `rid-dddd-${i}`), anyone);
  const got: StoredTurn[] = [];
  let live: () => void = () => undefined;
  const fourth = new Promise<void>((resolve) => (live = resolve));
  const follower = broker.threads.follow({
    thread: t,
    after: 1,
    onTurn: (turn) => {
      got.push(turn);
      if (turn.seq === 4) live();
    },
    onError: (err) => assert.fail(String(err)),
  });
  const running = follower.run();
  await broker.threads.append(draft(t, "rid-dddd-4"), anyone);
  await fourth;
  follower.stop();
  await running;
  assert.deepEqual(
    got.map((x) => x.seq),
    [2, 3, 4],
  );
});

test("read pages: at most limit turns, and whether more are stored", async () => {
  const t = newThread();
  for (const i of [1, 2, 3, 4, 5]) await broker.threads.append(draft(t, `rid-eeee-${i}`), anyone);
  const first = await broker.threads.read(t, 0, 2);
  assert.deepEqual(
    first.turns.map((x) => x.seq),
    [1, 2],
  );
  assert.equal(first.more, true);
  const last = await broker.threads.read(t, 4, 2);
  assert.deepEqual(
    last.turns.map((x) => x.seq),
    [5],
  );
  assert.equal(last.more, false);
  assert.deepEqual(await broker.threads.read(t, 5, 2), { turns: [], more: false });
  assert.deepEqual(await broker.threads.read(newThread(), 0, 2), { turns: [], more: false });
});
