import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { UnbrokenClient, type ConnectionStatus } from "@unbroken/client";
import { WebSocket } from "ws";
import { CuttableProxy } from "../helpers/proxy.js";
import { RawClient, range, seqs, textOf } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";
import { eachWithin } from "../helpers/within.js";

const fastReconnect = { minDelayMs: 20, maxDelayMs: 200 };

// The client library against the real stack, with the network cut under it.
describe("client library over a flaky network", () => {
  let stack: Stack;
  let proxy: CuttableProxy;
  before(async () => {
    // COALESCE_MS 0: one event per token. The first test places its four cuts by event count,
    // and a loaded worker (or a slow write) gathers tokens into fewer events: in a run two
    // files at a time the answer once had fewer than 160 events, and only three cuts.
    stack = await Stack.start({ workerEnv: { SCRIPTED_TPS: "100", COALESCE_MS: "0" } });
    proxy = await CuttableProxy.start(stack.edges[0]!.port);
  });
  after(async () => {
    await proxy.close();
    await stack.stop();
  });

  it("yields every event exactly once, in order, through repeated cuts", async () => {
    const statuses: ConnectionStatus["state"][] = [];
    const client = new UnbrokenClient({
      url: proxy.url(),
      WebSocket,
      reconnect: fastReconnect,
      onStatus: (s) => statuses.push(s.state),
    });
    const r = client.generate({ prompt: "write 200 words about tunnels", params: { seed: 5 } });
    const reference = await RawClient.connect(stack.url);
    // Closed also when an assertion fails: a client left reconnecting keeps this file's process
    // alive until the runner's per-file timeout (300 s), which then holds up the whole run.
    try {
      await r.accepted;
      await reference.request({ type: "subscribe", rid: r.rid });
      const seen: number[] = [];
      let cuts = 0;
      await eachWithin(
        r,
        (ev) => {
          seen.push(ev.seq);
          if (ev.seq % 40 === 0 && cuts < 4) {
            cuts++;
            proxy.cut();
          }
        },
        "the answer's end through the cuts",
      );
      const uninterrupted = await reference.untilEnd(r.rid);
      assert.equal(cuts, 4);
      assert.deepEqual(seen, range(1, uninterrupted.length));
      assert.equal(r.text, textOf(uninterrupted));
      assert.equal((await r.done).reason, "stop");
      assert.ok(statuses.includes("reconnecting"));
    } finally {
      await client.close();
      reference.close();
    }
  });

  it("re-sends a generate whose accepted was lost, starting no second inference", async () => {
    const client = new UnbrokenClient({ url: proxy.url(), WebSocket, reconnect: fastReconnect });
    const r = client.generate({ prompt: "write 30 words once", params: { max_tokens: 30 } });
    // Cut as soon as the frame can have left: the accepted may or may not have come back.
    queueMicrotask(() => setTimeout(() => proxy.cut(), 1));
    await r.done;
    const reader = await RawClient.connect(stack.url);
    await reader.request({ type: "subscribe", rid: r.rid });
    const events = await reader.untilEnd(r.rid);
    assert.equal(events.filter((e) => e.event.kind === "start").length, 1);
    assert.deepEqual(seqs(events), range(1, events.length));
    assert.equal(r.text, textOf(events));
    await client.close();
    reader.close();
  });

  it("cancel() ends the response for everyone; close() cancels nothing", async () => {
    const a = new UnbrokenClient({ url: stack.url, WebSocket, reconnect: fastReconnect });
    const b = new UnbrokenClient({ url: stack.url, WebSocket, reconnect: fastReconnect });
    const kept = a.generate({ prompt: "write 60 words that survive close", params: { max_tokens: 60 } });
    const stopped = a.generate({ prompt: "write 400 words to be stopped" });
    await Promise.all([kept.accepted, stopped.accepted]);
    const follower = b.subscribe(stopped.rid);
    await new Promise<void>((resolve) => stopped.onEvent((e) => e.seq >= 5 && resolve()));
    await stopped.cancel();
    assert.equal((await stopped.done).reason, "cancelled");
    assert.equal((await follower.done).reason, "cancelled");
    assert.equal(follower.text, stopped.text);

    await a.close();
    const later = b.subscribe(kept.rid);
    const end = await later.done;
    assert.equal(end.reason, "length");
    assert.equal(end.usage.completion_tokens, 60);
    await b.close();
  });

  it("client.steer(rid) and client.cancel(rid) work without a handle (another tab, after a reload)", async () => {
    const owner = new UnbrokenClient({ url: stack.url, WebSocket, reconnect: fastReconnect });
    const other = new UnbrokenClient({ url: stack.url, WebSocket, reconnect: fastReconnect });
    const r = owner.generate({ prompt: "write 400 words steered from elsewhere" });
    await new Promise<void>((resolve) => r.onEvent((e) => e.seq >= 4 && resolve()));
    // Listening first: `ok` comes once the steer event is in the log, which may reach `r` first.
    const steered = new Promise<void>((resolve) => r.onEvent((e) => e.event.kind === "steer" && resolve()));
    await other.steer(r.rid, "mention comets");
    await steered;
    await other.cancel(r.rid);
    const end = await r.done;
    assert.equal(end.reason, "cancelled");
    await assert.rejects(other.steer(r.rid, "again"), (err: { code?: string }) => err.code === "finished");
    await assert.rejects(other.cancel("bad rid!"), (err: { code?: string }) => err.code === "bad_request");
    await owner.close();
    await other.close();
  });

  it("steer() lands in the same response; steering an ended response rejects finished", async () => {
    const client = new UnbrokenClient({ url: stack.url, WebSocket, reconnect: fastReconnect });
    const r = client.generate({ prompt: "write 120 words about bridges" });
    await new Promise<void>((resolve) => r.onEvent((e) => e.seq >= 4 && resolve()));
    await r.steer("now about owls");
    await r.done;
    const kinds: string[] = [];
    await eachWithin(client.subscribe(r.rid), (ev) => kinds.push(ev.event.kind), "the replay's end");
    assert.equal(kinds.filter((k) => k === "steer").length, 1);
    const again = client.subscribe(r.rid);
    await again.done;
    await assert.rejects(again.steer("too late"), (err: { code?: string }) => err.code === "finished");
    await client.close();
  });
});
