// client.thread(id) against the real stack: turns replayed then live, each answer opened live or
// replayed, every turn exactly once through network cuts.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { UnbrokenClient, newRid, type ThreadTurn } from "@unbroken/client";
import { WebSocket } from "ws";
import { CuttableProxy } from "../helpers/proxy.js";
import { Stack } from "../helpers/stack.js";
import { within } from "../helpers/within.js";

const fastReconnect = { minDelayMs: 20, maxDelayMs: 200 };
const user = (content: string) => [{ role: "user" as const, content }];

/** The first `n` turns the iterator yields (the handle stays open). */
async function take(thread: AsyncIterable<ThreadTurn>, n: number, what: string): Promise<ThreadTurn[]> {
  const got: ThreadTurn[] = [];
  const it = thread[Symbol.asyncIterator]();
  while (got.length < n) {
    const r = await within(it.next(), what);
    if (r.done) break;
    got.push(r.value);
  }
  return got;
}

describe("client.thread", () => {
  let stack: Stack;
  let proxy: CuttableProxy;
  before(async () => {
    stack = await Stack.start({ edges: 2, workerEnv: { SCRIPTED_TPS: "100" } });
    proxy = await CuttableProxy.start(stack.edges[1]!.port);
  });
  after(async () => {
    await proxy.close();
    await stack.stop();
  });

  it("a second client sees the conversation so far, then the running answer live", async () => {
    const laptop = new UnbrokenClient({ url: stack.url, WebSocket });
    const phone = new UnbrokenClient({ url: stack.edges[1]!.url, WebSocket });
    const id = newRid();
    const first = laptop.generate({ messages: user("write 6 words first"), thread: id });
    await first.done;
    const thread = phone.thread(id);
    await thread.ready;
    const [t1] = await take(thread, 1, "turn 1");
    assert.equal(t1?.rid, first.rid);
    assert.deepEqual(t1?.messages, user("write 6 words first"));
    const replayed = thread.open(t1!);
    await replayed.done;
    assert.equal(replayed.text, first.text);

    const second = laptop.generate({
      messages: [...user("write 6 words first"), { role: "assistant", content: first.text }, ...user("now write 80 words")],
      thread: id,
    });
    const t2 = await new Promise<ThreadTurn>((resolve) => thread.onTurn(resolve));
    assert.equal(t2.seq, 2);
    assert.equal(t2.rid, second.rid);
    assert.deepEqual(t2.messages, user("now write 80 words"), "only the new message is stored with the turn");
    const live = thread.open(t2);
    const seen: number[] = [];
    for await (const ev of live) seen.push(ev.seq);
    assert.equal(seen[0], 1, "the answer is read from its start");
    await second.done;
    assert.equal(live.text, second.text);
    await thread.close();
    await Promise.all([laptop.close(), phone.close()]);
  });

  it("gets every turn once through network cuts, and open() reuses the client's own handle", async () => {
    const writer = new UnbrokenClient({ url: stack.url, WebSocket });
    const reader = new UnbrokenClient({ url: proxy.url(), WebSocket, reconnect: fastReconnect });
    const id = newRid();
    // Long enough to be running when its turn arrives: open() then returns the live handle.
    const own = reader.generate({ prompt: "write 200 words", params: { max_tokens: 200 }, thread: id });
    const thread = reader.thread(id);
    const collected: number[] = [];
    thread.onTurn((t) => collected.push(t.seq));
    const [t1] = await take(thread, 1, "turn 1");
    assert.equal(thread.open(t1!), own, "the generate's own handle, not a second subscription");
    for (let n = 2; n <= 9; n++) {
      const r = writer.generate({ prompt: `turn ${n}`, params: { max_tokens: 1 }, thread: id });
      await r.accepted;
      if (n % 3 === 0) proxy.cut();
    }
    await within(
      new Promise<void>((resolve) => {
        if (thread.lastSeq === 9) resolve();
        thread.onTurn((t) => t.seq === 9 && resolve());
      }),
      "turn 9 after the cuts",
    );
    assert.deepEqual(
      thread.turns.map((t) => t.seq),
      [1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    assert.deepEqual(collected, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await own.cancel();
    await Promise.all([writer.close(), reader.close()]);
  });

  it("two handles of one thread on one client share its follow: each gets every turn once; one closing leaves the other live", async () => {
    const client = new UnbrokenClient({ url: stack.url, WebSocket });
    const id = newRid();
    for (const n of [1, 2]) await client.generate({ prompt: `turn ${n}`, params: { max_tokens: 1 }, thread: id }).accepted;
    const first = client.thread(id);
    await take(first, 2, "the first handle's turns");
    const second = client.thread(id); // the AI SDK transport's brief follow beside the app's, say
    await second.replayed;
    assert.deepEqual(
      second.turns.map((t) => t.seq),
      [1, 2],
    );
    await client.generate({ prompt: "turn 3", params: { max_tokens: 1 }, thread: id }).accepted;
    await within(
      new Promise<void>((resolve) => (first.lastSeq === 3 ? resolve() : first.onTurn((t) => t.seq === 3 && resolve()))),
      "turn 3 in the first",
    );
    assert.deepEqual(
      first.turns.map((t) => t.seq),
      [1, 2, 3],
      "the second handle's replay brought the first no repeat",
    );
    await second.close();
    await client.generate({ prompt: "turn 4", params: { max_tokens: 1 }, thread: id }).accepted;
    await within(
      new Promise<void>((resolve) => (first.lastSeq === 4 ? resolve() : first.onTurn((t) => t.seq === 4 && resolve()))),
      "turn 4 in the first, after the second closed",
    );
    assert.equal(second.lastSeq, 3, "a closed handle gets nothing more");
    assert.equal(first.live, true);
    await first.close();
    await client.close();
  });

  it("an unknown thread fails the handle with not_found (auth off), and its iterator throws", async () => {
    const client = new UnbrokenClient({ url: stack.url, WebSocket });
    const thread = client.thread(newRid());
    await assert.rejects(thread.ready, { code: "not_found" });
    assert.equal(thread.error?.code, "not_found");
    await assert.rejects(take(thread, 1, "nothing"), { code: "not_found" });
    await client.close();
  });
});
