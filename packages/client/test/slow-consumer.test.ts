// Close code 4008 (the edge cut a socket that fell behind): a normal drop for the client.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CLOSE_SLOW_CONSUMER } from "@unbroken/protocol";
import type { ConnectionStatus } from "../src/index.js";
import { collect, eventually, seqs, setup, START } from "./util.js";

test("close 4008 (slow consumer): the client reconnects and resumes from its last seq, no gap, no duplicate", async (t) => {
  const statuses: ConnectionStatus[] = [];
  const { edge, client } = await setup(t, { onStatus: (s) => statuses.push(s) });
  const h = client.generate({ prompt: "x" });
  const all = collect(h);
  await h.accepted;
  edge.append(h.rid, START);
  edge.tokens(h.rid, "a", "b");
  await eventually(() => h.lastSeq === 3, "seq 3");
  edge.openPeers[0]?.ws.close(CLOSE_SLOW_CONSUMER, "slow consumer");
  edge.tokens(h.rid, "c");
  const sub = await edge.nth("subscribe");
  assert.equal(sub.conn, 2);
  assert.equal(sub.frame.after, 3);
  edge.end(h.rid);
  assert.deepEqual(seqs(await all), [1, 2, 3, 4, 5]);
  assert.equal(h.text, "abc");
  const dropped = statuses.find((s) => s.state === "reconnecting");
  assert.match(dropped?.lastError ?? "", /slow consumer/);
  assert.notEqual(client.status.state, "closed");
});
