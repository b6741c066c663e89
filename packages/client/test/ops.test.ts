import { test } from "node:test";
import assert from "node:assert/strict";
import { UnbrokenError } from "../src/index.js";
import { collect, eventually, pastReconnectWindow, seqs, setup, START } from "./util.js";

const code =
  (c: string) =>
  (e: unknown): boolean =>
    e instanceof UnbrokenError && e.code === c;

test("cancel sends cancel and resolves on ok; the end cancelled follows", async (t) => {
  const { edge, client } = await setup(t);
  const h = client.generate({ prompt: "stop me" });
  const all = collect(h);
  await h.accepted;
  edge.append(h.rid, START);
  await h.cancel();
  const c = await edge.nth("cancel");
  assert.equal(c.frame.rid, h.rid);
  assert.equal(typeof c.frame.id, "string");
  assert.equal((await h.done).reason, "cancelled");
  assert.deepEqual(seqs(await all), [1, 2]);
  await h.cancel(); // after the end: nothing to do
  assert.equal(edge.framesOf("cancel").length, 1);
});

test("a cancel whose socket dropped before the ok is re-sent after the reconnect", async (t) => {
  const { edge, client } = await setup(t, {}, (e) => {
    e.hook = (f, peer) => {
      if (f.type === "cancel" && peer.conn === 1) {
        peer.terminate();
        return true;
      }
    };
  });
  const h = client.generate({ prompt: "x" });
  await h.accepted;
  await h.cancel();
  const cancels = edge.framesOf("cancel");
  assert.deepEqual(
    cancels.map((r) => [r.conn, r.frame.rid]),
    [
      [1, h.rid],
      [2, h.rid],
    ],
  );
  assert.equal((await h.done).reason, "cancelled");
});

test("a cancel issued before accepted waits for it", async (t) => {
  const { edge, client } = await setup(t);
  const h = client.generate({ prompt: "x" });
  await h.cancel();
  const types = edge.received.map((r) => r.frame.type);
  assert.ok(types.indexOf("generate") < types.indexOf("cancel"));
});

test("steer resolves on ok; a finished response rejects with finished", async (t) => {
  const { edge, client } = await setup(t);
  const h = client.generate({ prompt: "x" });
  await h.accepted;
  await h.steer("be brief");
  const s = await edge.nth("steer");
  assert.equal(s.frame.text, "be brief");
  assert.equal(s.frame.rid, h.rid);
  edge.logs.get(h.rid)?.push({ kind: "end", reason: "stop", usage: { prompt_tokens: 0, completion_tokens: 0 } });
  await assert.rejects(h.steer("too late"), code("finished"));
  await assert.rejects(h.steer(""), code("bad_request"));
});

test("a steer whose socket dropped before the reply rejects with disconnected and is not re-sent", async (t) => {
  const { edge, client } = await setup(t, {}, (e) => {
    e.hook = (f, peer) => {
      if (f.type === "steer") {
        peer.terminate();
        return true;
      }
    };
  });
  const h = client.generate({ prompt: "x" });
  await h.accepted;
  await assert.rejects(h.steer("use Python"), (e: unknown) => {
    assert.ok(e instanceof UnbrokenError);
    assert.equal(e.code, "disconnected");
    assert.equal(e.rid, h.rid);
    assert.match(e.message, /may or may not have been recorded/);
    return true;
  });
  await edge.nth("subscribe"); // reconnected and resumed
  await eventually(() => client.status.state === "connected", "connected");
  await h.cancel(); // a later command on the new socket, so the steer had its chance to be re-sent
  assert.equal(edge.framesOf("steer").length, 1);
});

test("unsubscribe sends unsubscribe, ends iteration quietly, rejects done with closed, never cancels", async (t) => {
  const { edge, client } = await setup(t);
  const h = client.generate({ prompt: "x" });
  const all = collect(h);
  await h.accepted;
  edge.append(h.rid, START);
  await eventually(() => h.lastSeq === 1, "seq 1");
  await h.unsubscribe();
  assert.deepEqual(seqs(await all), [1]);
  await assert.rejects(h.done, code("closed"));
  assert.equal((await edge.nth("unsubscribe")).frame.rid, h.rid);
  edge.tokens(h.rid, "ignored");
  await h.unsubscribe();
  assert.equal(h.lastSeq, 1);
  assert.equal(edge.framesOf("cancel").length, 0);
});

test("close() sends no cancel: live handles fail with closed, status is closed, the socket is closed", async (t) => {
  const states: string[] = [];
  const { edge, client } = await setup(t, { onStatus: (s) => states.push(s.state) });
  const h = client.generate({ prompt: "keeps running" });
  const all = collect(h);
  all.catch(() => undefined); // looked at after close()
  await h.accepted;
  edge.append(h.rid, START);
  edge.tokens(h.rid, "a");
  await eventually(() => h.lastSeq === 2, "seq 2");
  await client.close();
  await assert.rejects(all, code("closed"));
  await assert.rejects(h.done, code("closed"));
  await edge.until(() => edge.openPeers.length === 0, "socket closed");
  assert.deepEqual(
    edge.received.map((r) => r.frame.type).filter((ty) => ty !== "ping"),
    ["hello", "generate"],
  );
  assert.equal(client.status.state, "closed");
  assert.deepEqual(states, ["connecting", "connected", "closed"]);
  assert.throws(() => client.generate({ prompt: "x" }), code("closed"));
  await assert.rejects(h.cancel(), code("closed"));
  await pastReconnectWindow(edge);
  assert.equal(edge.peers.length, 1, "no reconnect after close");
});

test("close() rejects commands still waiting for a reply", async (t) => {
  const { edge, client } = await setup(t, {}, (e) => {
    e.hook = (f) => f.type === "steer"; // never answered
  });
  const h = client.generate({ prompt: "x" });
  await h.accepted;
  const steer = h.steer("hmm");
  steer.catch(() => undefined); // looked at after close()
  await edge.nth("steer");
  await client.close();
  await assert.rejects(steer, code("closed"));
  assert.equal(edge.framesOf("cancel").length, 0);
});

test("a command without a reply times out after requestTimeoutMs", async (t) => {
  const { edge, client } = await setup(t, { requestTimeoutMs: 100 }, (e) => {
    e.hook = (f) => f.type === "cancel";
  });
  const h = client.generate({ prompt: "x" });
  await h.accepted;
  await assert.rejects(h.cancel(), code("timeout"));
  await edge.nth("cancel");
});
