import { test } from "node:test";
import assert from "node:assert/strict";
import { isRid, UnbrokenClient, UnbrokenError } from "../src/index.js";
import { collect, eventually, range, seqs, setup, START } from "./util.js";

test("generate: hello, a client-chosen rid, accepted, events in order, text and done", async (t) => {
  const { edge, client } = await setup(t);
  const h = client.generate({ messages: [{ role: "user", content: "hi" }], params: { max_tokens: 5 } });
  assert.ok(isRid(h.rid));
  const all = collect(h);
  const gen = await edge.nth("generate");
  assert.deepEqual(edge.received[0]?.frame, { type: "hello" });
  assert.equal(gen.frame.rid, h.rid);
  assert.deepEqual(gen.frame.messages, [{ role: "user", content: "hi" }]);
  assert.deepEqual(gen.frame.params, { max_tokens: 5 });
  assert.equal(typeof gen.frame.id, "string");
  assert.deepEqual(await h.accepted, { existing: false, ended: false });
  edge.append(h.rid, START);
  edge.tokens(h.rid, "Hel", "lo", "!");
  edge.end(h.rid);
  const frames = await all;
  assert.deepEqual(seqs(frames), [1, 2, 3, 4, 5]);
  assert.equal(h.text, "Hello!");
  assert.equal((await h.done).reason, "stop");
  assert.equal(h.ended, true);
  assert.equal(h.lastSeq, 5);
});

test("command ids are unique per frame", async (t) => {
  const { edge, client } = await setup(t);
  const a = client.generate({ prompt: "a" });
  const b = client.generate({ prompt: "b", rid: "my_own_rid_1" });
  assert.equal(b.rid, "my_own_rid_1");
  await Promise.all([a.accepted, b.accepted]);
  const ids = edge.received.map((r) => r.frame.id).filter((id) => id !== undefined);
  assert.equal(new Set(ids).size, ids.length);
});

test("events are yielded exactly once, in order, across several terminations with overlapping replays", async (t) => {
  const { edge, client } = await setup(t, {}, (e) => {
    e.overlap = 3; // every replay re-sends 3 events the client already has
  });
  const h = client.generate({ prompt: "long" });
  const all = collect(h);
  await h.accepted;
  edge.append(h.rid, START);
  let next = 0;
  const more = (n: number): void => edge.tokens(h.rid, ...Array.from({ length: n }, () => `t${next++} `));
  for (let round = 0; round < 4; round++) {
    more(4);
    const target = edge.logs.get(h.rid)?.length ?? 0;
    await eventually(() => h.lastSeq === target, `seq ${target}`);
    edge.terminateAll();
    more(3); // written while the client is away
    await edge.nth("subscribe", round + 1);
  }
  more(2);
  edge.end(h.rid);
  const frames = await all;
  const total = edge.logs.get(h.rid)?.length ?? 0;
  assert.deepEqual(seqs(frames), range(1, total));
  assert.equal(h.text, Array.from({ length: next }, (_, i) => `t${i} `).join(""));
  assert.equal(edge.framesOf("generate").length, 1, "accepted generate is not re-sent");
  const afters = edge.framesOf("subscribe").map((r) => r.frame.after);
  assert.deepEqual(afters, [5, 12, 19, 26]);
  assert.deepEqual(
    edge.framesOf("subscribe").map((r) => r.frame.rid),
    [h.rid, h.rid, h.rid, h.rid],
  );
});

test("a generate whose socket died before accepted is re-sent with the same rid", async (t) => {
  const { edge, client } = await setup(t, {}, (e) => {
    e.hook = (f, peer) => {
      if (f.type === "generate" && peer.conn === 1) {
        e.logs.set(f.rid as string, []); // the edge did queue it, but the accepted is lost
        peer.terminate();
        return true;
      }
    };
  });
  const h = client.generate({ prompt: "once" });
  const all = collect(h);
  assert.deepEqual(await h.accepted, { existing: true, ended: false });
  const gens = edge.framesOf("generate");
  assert.equal(gens.length, 2);
  assert.equal(gens[0]?.frame.rid, h.rid);
  assert.equal(gens[1]?.frame.rid, h.rid);
  assert.equal(gens[1]?.frame.prompt, "once");
  assert.notEqual(gens[0]?.frame.id, gens[1]?.frame.id);
  assert.equal(gens[1]?.conn, 2);
  edge.tokens(h.rid, "x");
  edge.end(h.rid);
  assert.deepEqual(seqs(await all), [1, 2]);
});

test("a subscribe's accepted says whether the response had already ended", async (t) => {
  const { edge, client } = await setup(t);
  edge.append("ended_rid_0001", START);
  edge.end("ended_rid_0001");
  edge.append("running_rid_01", START);
  assert.deepEqual(await client.subscribe("ended_rid_0001").accepted, { existing: true, ended: true });
  assert.deepEqual(await client.subscribe("running_rid_01").accepted, { existing: true, ended: false });
});

test("subscribe follows a response from after, then live", async (t) => {
  const { edge, client } = await setup(t);
  const rid = "existing_rid_01";
  edge.append(rid, START);
  edge.tokens(rid, "a", "b", "c");
  const h = client.subscribe(rid, { after: 2 });
  assert.equal(h.lastSeq, 2);
  const all = collect(h);
  assert.deepEqual(await h.accepted, { existing: true, ended: false });
  edge.end(rid);
  assert.deepEqual(seqs(await all), [3, 4, 5]);
  assert.equal(h.text, "bc");
  assert.equal((await edge.nth("subscribe")).frame.after, 2);
});

test("an event past lastSeq + 1 makes the client re-subscribe from lastSeq instead of skipping", async (t) => {
  const { edge, client } = await setup(t);
  const rid = "gappy_rid_0001";
  edge.append(rid, START);
  edge.tokens(rid, "a", "b");
  const h = client.subscribe(rid, { after: 0 });
  const all = collect(h);
  await h.accepted;
  await eventually(() => h.lastSeq === 3, "seq 3");
  const peer = edge.openPeers[0];
  assert.ok(peer);
  peer.send({ type: "event", rid, seq: 5, event: { kind: "token", text: "gap!" } });
  const resub = await edge.nth("subscribe", 2);
  assert.equal(resub.frame.after, 3);
  edge.tokens(rid, "c");
  edge.end(rid);
  assert.deepEqual(seqs(await all), [1, 2, 3, 4, 5]);
  assert.equal(h.text, "abc");
});

test("an error answering subscribe fails the handle: the iterator throws, done rejects", async (t) => {
  const { client } = await setup(t);
  const h = client.subscribe("nobody_has_this");
  const isNotFound = (e: unknown): boolean => e instanceof UnbrokenError && e.code === "not_found" && e.rid === h.rid;
  await assert.rejects(collect(h), isNotFound);
  await assert.rejects(h.done, isNotFound);
  await assert.rejects(h.accepted, isNotFound);
  // the rid is free again on this client
  client.subscribe("nobody_has_this");
});

test("unavailable is retried with backoff and the handle stays alive", async (t) => {
  let refusals = 0;
  const { edge, client } = await setup(t, {}, (e) => {
    e.hook = (f, peer) => {
      if ((f.type === "generate" || f.type === "subscribe") && refusals < 3) {
        refusals++;
        peer.send({ type: "error", id: f.id, code: "unavailable", message: "NATS is down" });
        return true;
      }
    };
  });
  const h = client.generate({ prompt: "later" });
  const all = collect(h);
  assert.deepEqual(await h.accepted, { existing: false, ended: false });
  assert.equal(edge.framesOf("generate").length, 4);
  assert.equal(new Set(edge.framesOf("generate").map((r) => r.frame.rid)).size, 1);
  edge.tokens(h.rid, "ok");
  edge.end(h.rid);
  assert.deepEqual(seqs(await all), [1, 2]);
});

test("invalid requests are refused synchronously", async (t) => {
  const { client } = await setup(t);
  const bad = (e: unknown): boolean => e instanceof UnbrokenError && e.code === "bad_request";
  assert.throws(() => client.generate({}), bad);
  assert.throws(() => client.generate({ prompt: "a", messages: [{ role: "user", content: "b" }] }), bad);
  assert.throws(() => client.generate({ prompt: "a", rid: "bad.rid!" }), bad);
  assert.throws(() => client.generate({ prompt: "a", params: { max_tokens: -1 } }), bad);
  assert.throws(() => client.subscribe("short"), bad);
  assert.throws(() => client.subscribe("long_enough_rid", { after: -1 }), bad);
  client.subscribe("long_enough_rid");
  assert.throws(() => client.subscribe("long_enough_rid"), /already has a live handle/);
});

test("without a WebSocket implementation the constructor says what to pass", (t) => {
  if ((globalThis as { WebSocket?: unknown }).WebSocket !== undefined) {
    t.skip("this Node has a global WebSocket");
    return;
  }
  assert.throws(() => new UnbrokenClient({ url: "ws://127.0.0.1:1/v1/ws" }), /pass \{ WebSocket \} from the ws package on Node 20/);
});
