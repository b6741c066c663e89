import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { TurnFrame } from "@unbroken/protocol";
import { UnbrokenError } from "../src/errors.js";
import type { ResponseHandle } from "../src/response.js";
import { ThreadHandle } from "../src/thread.js";

const turn = (seq: number): TurnFrame => ({
  type: "turn",
  thread: "thread-one",
  seq,
  rid: `rid-of-turn-${seq}`,
  messages: [{ role: "user", content: `turn ${seq}` }],
  created_at: 1_700_000_000 + seq,
});

function handle(after = 0) {
  const calls: string[] = [];
  const host = {
    unfollow: async () => void calls.push("unfollow"),
    open: (rid: string) => {
      calls.push(`open ${rid}`);
      return {} as ResponseHandle;
    },
  };
  return { h: new ThreadHandle(host, "thread-one", after), calls };
}

describe("ThreadHandle", () => {
  it("keeps each seq once and in order, dropping a re-follow's overlap", async () => {
    const { h } = handle();
    const seen: number[] = [];
    h.onTurn((t) => seen.push(t.seq));
    for (const seq of [1, 2, 2, 1, 3]) h.receive(turn(seq));
    assert.deepEqual(
      h.turns.map((t) => t.seq),
      [1, 2, 3],
    );
    assert.deepEqual(seen, [1, 2, 3]);
    assert.equal(h.lastSeq, 3);
    assert.equal("type" in (h.turns[0] as object), false, "a turn, not the wire frame");
  });

  it("skips what `after` says the reader has", () => {
    const { h } = handle(2);
    for (const seq of [1, 2, 3]) h.receive(turn(seq));
    assert.deepEqual(
      h.turns.map((t) => t.seq),
      [3],
    );
  });

  it("iterates the turns already received, then live ones, and ends on close", async () => {
    const { h, calls } = handle();
    h.receive(turn(1));
    const it = h[Symbol.asyncIterator]();
    assert.equal((await it.next()).value?.seq, 1);
    const pending = it.next();
    h.receive(turn(2));
    assert.equal((await pending).value?.seq, 2);
    const last = it.next();
    await h.close();
    assert.deepEqual(await last, { value: undefined, done: true });
    assert.deepEqual(calls, ["unfollow"]);
    h.receive(turn(3));
    assert.equal(h.turns.length, 2, "nothing after close");
  });

  it("fails: ready and the iterator reject with the error; open() asks the client", async () => {
    const { h, calls } = handle();
    const it = h[Symbol.asyncIterator]();
    const pending = it.next();
    h.fail(new UnbrokenError("forbidden", "no thread with this id is accessible to you"));
    await assert.rejects(h.ready, { code: "forbidden" });
    await assert.rejects(pending, { code: "forbidden" });
    assert.equal(h.error?.code, "forbidden");
    h.open(turn(4));
    h.open("some-rid-here");
    assert.deepEqual(calls, ["open rid-of-turn-4", "open some-rid-here"]);
  });

  it("ready resolves on the edge's ok", async () => {
    const { h } = handle();
    h.settleReady(0);
    await h.ready;
    assert.equal(h.live, true);
  });

  it("replayed waits for the turn the ok names as the last, and only the first ok counts", async () => {
    const { h } = handle();
    let replayed = false;
    void h.replayed.then(() => (replayed = true));
    h.receive(turn(1));
    h.settleReady(2);
    await Promise.resolve();
    assert.equal(replayed, false, "turn 2 has not come yet");
    h.settleReady(5); // a re-follow's ok: its later turns come anyway
    h.receive(turn(2));
    await h.replayed;
    assert.deepEqual(
      h.turns.map((t) => t.seq),
      [1, 2],
    );
  });

  it("replayed rejects when the handle is closed before every turn came", async () => {
    const { h } = handle();
    h.settleReady(3);
    await h.close();
    await assert.rejects(h.replayed, { code: "closed" });
  });
});
