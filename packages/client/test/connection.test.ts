import { test } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { UnbrokenError, type ConnectionStatus } from "../src/index.js";
import { clientFor, collect, eventually, pastReconnectWindow, seqs, setup, START } from "./util.js";
import { FakeEdge } from "./fake-edge.js";

const code =
  (c: string) =>
  (e: unknown): boolean =>
    e instanceof UnbrokenError && e.code === c;

test("hello carries the token; a token function is asked again on each connect", async (t) => {
  let calls = 0;
  const { edge } = await setup(t, { token: async () => `tok${++calls}` });
  await edge.nth("hello");
  assert.deepEqual(edge.received[0]?.frame, { type: "hello", token: "tok1" });
  edge.terminateAll();
  const second = await edge.nth("hello", 2);
  assert.deepEqual(second.frame, { type: "hello", token: "tok2" });
});

test("unauthorized on hello is fatal: handles fail with unauthorized, no reconnect", async (t) => {
  const statuses: ConnectionStatus[] = [];
  const { edge, client } = await setup(t, { token: "bad", onStatus: (s) => statuses.push(s) }, (e) => {
    e.hook = (f, peer) => {
      if (f.type !== "hello") return false;
      peer.send({ type: "error", code: "unauthorized", message: "bad token" });
      peer.ws.close(4401, "unauthorized");
      return true;
    };
  });
  const h = client.generate({ prompt: "x" });
  await assert.rejects(collect(h), code("unauthorized"));
  await assert.rejects(h.done, code("unauthorized"));
  assert.equal(client.status.state, "closed");
  assert.match(client.status.lastError ?? "", /unauthorized/);
  assert.throws(() => client.generate({ prompt: "y" }), code("unauthorized"));
  await pastReconnectWindow(edge);
  assert.equal(edge.peers.length, 1, "no reconnect");
  assert.deepEqual(
    statuses.map((s) => s.state),
    ["connecting", "closed"],
  );
});

test("close code 4401 alone is fatal too", async (t) => {
  const { edge, client } = await setup(t, {}, (e) => {
    e.hook = (f, peer) => {
      if (f.type === "hello") peer.ws.close(4401, "no");
      return f.type === "hello";
    };
  });
  const h = client.subscribe("some_rid_value");
  await assert.rejects(h.done, code("unauthorized"));
  await pastReconnectWindow(edge);
  assert.equal(edge.peers.length, 1, "no reconnect");
});

/** The edge's way of ending a welcomed socket whose token ran out (docs/protocol.md, "Auth"). */
function expire(peer: { send(f: object): void; ws: { close(code: number, reason: string): void } }, notice = true): void {
  if (notice) peer.send({ type: "error", code: "unauthorized", message: "the token has expired" });
  peer.ws.close(4401, "token expired");
}

for (const notice of [true, false]) {
  test(`a token that expires on a welcomed socket (${notice ? "notice, then " : ""}4401): a token function is asked again and the answer resumes`, async (t) => {
    let calls = 0;
    const statuses: ConnectionStatus[] = [];
    const { edge, client } = await setup(t, { token: () => `tok${++calls}`, onStatus: (s) => statuses.push(s) });
    const h = client.generate({ prompt: "x" });
    const all = collect(h);
    await h.accepted;
    edge.append(h.rid, START);
    edge.tokens(h.rid, "a");
    await eventually(() => h.lastSeq === 2, "seq 2");
    const peer = edge.openPeers[0];
    assert.ok(peer);
    expire(peer, notice);
    edge.tokens(h.rid, "b"); // written while the client renews its token
    const hello = await edge.nth("hello", 2);
    assert.deepEqual(hello.frame, { type: "hello", token: "tok2" });
    const sub = await edge.nth("subscribe");
    assert.equal(sub.conn, 2);
    assert.equal(sub.frame.after, 2, "resumed from its last seq");
    edge.end(h.rid);
    assert.deepEqual(seqs(await all), [1, 2, 3, 4]);
    assert.equal(h.text, "ab");
    assert.ok(
      statuses.some((s) => s.state === "reconnecting" && /token expired/.test(s.lastError ?? "")),
      JSON.stringify(statuses),
    );
  });
}

test("a command answered unauthorized on a welcomed socket with a token function: sent again after the renewal", async (t) => {
  let calls = 0;
  const { edge, client } = await setup(t, { token: () => `tok${++calls}` }, (e) => {
    e.hook = (f, peer) => {
      // The first socket's token has run out by the time the subscribe comes.
      if (f.type !== "subscribe" || peer.conn !== 1) return false;
      peer.send({ type: "error", id: f.id, rid: f.rid, code: "unauthorized", message: "the token has expired" });
      expire(peer);
      return true;
    };
  });
  edge.append("some_rid_value", START);
  const h = client.subscribe("some_rid_value");
  const sub = await edge.nth("subscribe", 2);
  assert.equal(sub.conn, 2);
  assert.equal(calls, 2);
  edge.end(h.rid);
  assert.equal((await h.done).reason, "stop");
});

test("without a token function, a 4401 on a welcomed socket is final", async (t) => {
  const { edge, client } = await setup(t, { token: "fixed" });
  const h = client.generate({ prompt: "x" });
  await h.accepted;
  const peer = edge.openPeers[0];
  assert.ok(peer);
  expire(peer);
  await assert.rejects(h.done, code("unauthorized"));
  assert.equal(client.status.state, "closed");
  await pastReconnectWindow(edge);
  assert.equal(edge.peers.length, 1, "no reconnect");
});

test("a token function whose token is refused at hello is final (no loop)", async (t) => {
  const { edge, client } = await setup(t, { token: () => "stale" }, (e) => {
    e.hook = (f, peer) => {
      if (f.type !== "hello") return false;
      peer.send({ type: "error", code: "unauthorized", message: "invalid or expired token" });
      peer.ws.close(4401, "unauthorized");
      return true;
    };
  });
  const h = client.subscribe("some_rid_value");
  await assert.rejects(h.done, code("unauthorized"));
  await pastReconnectWindow(edge);
  assert.equal(edge.peers.length, 1, "no reconnect");
});

test("goaway: the client reconnects at once and resumes from its last seq", async (t) => {
  const { edge, client } = await setup(t);
  const h = client.generate({ prompt: "x" });
  const all = collect(h);
  await h.accepted;
  edge.append(h.rid, START);
  edge.tokens(h.rid, "a");
  await eventually(() => h.lastSeq === 2, "seq 2");
  const peer = edge.openPeers[0];
  assert.ok(peer);
  peer.send({ type: "goaway" });
  peer.ws.close(1001, "draining");
  edge.tokens(h.rid, "b");
  const sub = await edge.nth("subscribe");
  assert.equal(sub.conn, 2);
  assert.equal(sub.frame.after, 2);
  edge.end(h.rid);
  assert.deepEqual(seqs(await all), [1, 2, 3, 4]);
  assert.equal(h.text, "ab");
});

test("status goes connecting → connected → reconnecting → connected, with the session and last error", async (t) => {
  const statuses: ConnectionStatus[] = [];
  const { edge, client } = await setup(t, { onStatus: (s) => statuses.push(s) });
  await eventually(() => client.status.state === "connected", "connected");
  assert.equal(client.status.session, "s1");
  edge.terminateAll();
  await eventually(() => client.status.state === "connected" && client.status.session === "s2", "reconnected");
  const states = statuses.map((s) => s.state);
  assert.deepEqual(states.slice(0, 3), ["connecting", "connected", "reconnecting"]);
  assert.equal(states.at(-1), "connected");
  const rec = statuses.find((s) => s.state === "reconnecting");
  assert.equal(rec?.attempt, 1);
  assert.match(rec?.lastError ?? "", /closed/);
  assert.equal(client.status.attempt, 0);
});

test("a socket that answers no ping within heartbeat_ms is dropped and replaced", async (t) => {
  const { edge, client } = await setup(t, {}, (e) => {
    e.heartbeatMs = 30;
    e.hook = (f, peer) => f.type === "ping" && peer.conn === 1; // the first edge goes silent
  });
  const h = client.generate({ prompt: "x" });
  await h.accepted;
  const sub = await edge.nth("subscribe");
  assert.equal(sub.conn, 2);
  assert.ok(edge.framesOf("ping").length >= 1);
  await eventually(() => client.status.state === "connected", "connected again");
  await edge.nth("ping", edge.framesOf("ping").length + 2); // pings keep being answered on conn 2
  assert.equal(edge.peers.length, 2);
});

test("an edge that never welcomes is given up after connectTimeoutMs and retried", async (t) => {
  const { edge, client } = await setup(t, { connectTimeoutMs: 50 }, (e) => {
    e.hook = (f, peer) => f.type === "hello" && peer.conn === 1;
  });
  await edge.nth("hello", 2);
  await eventually(() => client.status.state === "connected", "connected");
  assert.equal(client.status.session, "s2");
});

test("nothing keeps the process alive after close(): every timer is cleared", async (t) => {
  // node --test runs each file in its own process, which only exits if nothing is left behind;
  // here a client mid-reconnect (backoff timer pending) is closed.
  const { edge, client } = await setup(t, { reconnect: { minDelayMs: 60_000, maxDelayMs: 60_000 } });
  await eventually(() => client.status.state === "connected", "connected");
  edge.terminateAll();
  await eventually(() => client.status.state === "reconnecting", "reconnecting");
  await client.close();
  assert.equal(client.status.state, "closed");
});

test("onStatus may use the client variable from the first call on", async (t) => {
  const edge = await FakeEdge.start();
  const seen: string[] = [];
  const client = clientFor(edge, {
    onStatus: (s) => {
      // would throw (TDZ) if the first status were reported inside the constructor
      seen.push(`${s.state}/${client.status.state}`);
    },
  });
  t.after(async () => {
    await client.close();
    await edge.close();
  });
  await eventually(() => client.status.state === "connected", "connected");
  assert.deepEqual(seen, ["connecting/connecting", "connected/connected"]);
});

test("close() right after construction opens no socket", async (t) => {
  const { edge, client } = await setup(t);
  await client.close();
  await pastReconnectWindow(edge);
  assert.equal(edge.peers.length, 0);
  assert.equal(client.status.state, "closed");
});

test("createSocket opens every socket; a throw refuses that attempt and it is retried with backoff", async (t) => {
  let refuse = true;
  let refused = 0;
  const opened: string[] = [];
  const statuses: ConnectionStatus[] = [];
  const { edge, client } = await setup(t, {
    createSocket: (url) => {
      if (refuse) {
        refused++;
        throw new Error("offline for a moment");
      }
      opened.push(url);
      return new WebSocket(url);
    },
    onStatus: (s) => statuses.push(s),
  });
  const h = client.generate({ prompt: "x" });
  await eventually(() => refused >= 3, "three refused attempts");
  assert.equal(client.status.state, "reconnecting");
  assert.match(client.status.lastError ?? "", /offline for a moment/);
  assert.equal(edge.peers.length, 0);
  refuse = false;
  await h.accepted;
  assert.deepEqual(opened, [edge.url]);
  edge.append(h.rid, START);
  edge.end(h.rid);
  await h.done;
  assert.ok(statuses.some((s) => s.state === "reconnecting" && s.attempt >= 2));
});

test("a WebSocket constructor that throws (a URL that can never work) is fatal", async (t) => {
  const { client } = await setup(t, {
    WebSocket: class {
      constructor() {
        throw new SyntaxError("bad URL");
      }
    } as unknown as typeof WebSocket,
  });
  await eventually(() => client.status.state === "closed", "closed");
  assert.match(client.status.lastError ?? "", /bad URL/);
  assert.throws(() => client.subscribe("some_rid_value"), code("bad_request"));
});

test("browser network events: offline drops the socket at once, online retries without waiting for the backoff", async (t) => {
  const target = new EventTarget();
  const g = globalThis as unknown as Record<string, unknown>;
  g.addEventListener = target.addEventListener.bind(target);
  g.removeEventListener = target.removeEventListener.bind(target);
  t.after(() => {
    delete g.addEventListener;
    delete g.removeEventListener;
  });
  const { edge, client } = await setup(t, { reconnect: { minDelayMs: 60_000, maxDelayMs: 60_000, jitter: 0 } });
  const h = client.generate({ prompt: "x" });
  await h.accepted;
  edge.append(h.rid, START);
  edge.tokens(h.rid, "a");
  await eventually(() => h.lastSeq === 2, "seq 2");
  target.dispatchEvent(new Event("offline"));
  assert.equal(client.status.state, "reconnecting");
  assert.match(client.status.lastError ?? "", /offline/);
  edge.tokens(h.rid, "b"); // written while this client is away
  target.dispatchEvent(new Event("online")); // without it the next try would be a minute away
  await eventually(() => h.lastSeq === 3, "seq 3 after the resume");
  assert.equal(h.text, "ab");
  assert.equal(edge.framesOf("hello").length, 2);
  await client.close();
  target.dispatchEvent(new Event("offline")); // listeners are gone: nothing happens
  assert.equal(client.status.state, "closed");
});
