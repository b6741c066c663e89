// Slow consumers (docs/protocol.md "Slow consumers"): a socket that stops reading is closed
// with 4008 once MAX_SOCKET_BUFFER bytes wait for it, other sockets are served as usual, and
// the client library takes 4008 as a drop and resumes exactly.
//
// The kernel buffers a few MB of a loopback connection before the edge's own buffer grows,
// so the responses here are large (4 × about 20000 tokens with 64-character rids, some 7 MB
// of event frames), and the test waits for the edge to count the close (Edge.slowConsumers),
// not for a time or a memory figure.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { UnbrokenClient, type ConnectionStatus } from "@unbroken/client";
import { CLOSE_SLOW_CONSUMER, type EventFrame } from "@unbroken/protocol";
import { scrapeMetrics } from "@unbroken/testing";
import type { Socket } from "node:net";
import { WebSocket } from "ws";
import { PausableProxy } from "../helpers/pausable-proxy.js";
import { RawClient, range, seqs, textOf } from "../helpers/raw-client.js";
import { readSse } from "../helpers/sse.js";
import { Stack } from "../helpers/stack.js";

const LIMIT = 256 * 1024;
const TOKENS = 32_768; // the scripted generator stops by itself near 20000

/** Resolves once `cond` holds, polling; fails naming `what` after a generous `ms`. */
async function until(cond: () => boolean, what: string, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const socketOf = (c: RawClient) => (c.ws as unknown as { _socket: Socket })._socket;

describe("slow consumers", () => {
  let stack: Stack;
  const rids = [0, 1, 2, 3].map(() => randomBytes(48).toString("base64url")); // 64 characters: larger frames
  let reference: Map<string, EventFrame[]>;

  before(async () => {
    // One event per token (COALESCE_MS=0): many small frames fill the paused socket's buffer
    // the way a token stream does; coalesced, the same text is a few large frames.
    stack = await Stack.start({ edgeEnv: { MAX_SOCKET_BUFFER: String(LIMIT) }, workerEnv: { SCRIPTED_TPS: "0", COALESCE_MS: "0" } });
  });
  after(async () => {
    await stack?.stop();
  });

  it("a socket that stops reading is closed with 4008 while a normal client gets everything", async () => {
    const edge = stack.edges[0]!;
    const normal = await RawClient.connect(stack.url);
    const paused = await RawClient.connect(stack.url);
    for (const rid of rids) {
      const acc = await normal.request({ type: "generate", rid, prompt: "write 40000 words about rivers", params: { max_tokens: TOKENS } });
      assert.equal(acc.type, "accepted", JSON.stringify(acc));
      assert.equal((await paused.request({ type: "subscribe", rid })).type, "ok");
    }
    socketOf(paused).pause();
    await until(() => edge.slowConsumers === 1, "the edge closing the paused socket");

    reference = new Map();
    for (const rid of rids) {
      const events = await normal.untilEnd(rid, 120_000);
      assert.deepEqual(seqs(events), range(1, events.length));
      assert.equal(events.at(-1)?.event.kind, "end");
      reference.set(rid, events);
    }
    assert.equal(edge.slowConsumers, 1, "the reading client was never cut");

    socketOf(paused).resume();
    const closed = await paused.closed;
    assert.equal(closed.code, CLOSE_SLOW_CONSUMER);
    assert.equal(closed.reason, "slow consumer");
    let got = 0;
    for (const rid of rids) {
      const events = paused.events(rid);
      got += events.length;
      assert.deepEqual(seqs(events), range(1, events.length), "what arrived before the close is in order, without a gap");
    }
    const total = [...reference.values()].reduce((n, e) => n + e.length, 0);
    assert.ok(got < total, `the paused socket was cut off before the end (${got} of ${total} events)`);
    normal.close();
  });

  it("the client library takes 4008 as a drop and resumes every response exactly", async () => {
    const edge = stack.edges[0]!;
    const before = edge.slowConsumers;
    const proxy = await PausableProxy.start(edge.port);
    const statuses: ConnectionStatus[] = [];
    const client = new UnbrokenClient({
      url: proxy.url(),
      WebSocket,
      reconnect: { minDelayMs: 20, maxDelayMs: 200 },
      onStatus: (s) => statuses.push(s),
    });
    try {
      await until(() => client.status.state === "connected", "connected", 15_000);
      proxy.pause();
      const handles = rids.map((rid) => client.subscribe(rid));
      const seen = handles.map(() => [] as number[]);
      for (const [i, h] of handles.entries()) h.onEvent((e) => seen[i]!.push(e.seq));
      await until(() => edge.slowConsumers === before + 1, "the edge closing the stalled socket");
      proxy.resume();
      const ends = await Promise.all(handles.map((h) => h.done));
      for (const [i, rid] of rids.entries()) {
        const events = reference.get(rid)!;
        assert.deepEqual(seen[i], range(1, events.length), `${rid}: every seq exactly once, in order`);
        assert.equal(handles[i]!.text, textOf(events));
        assert.deepEqual(ends[i], events.at(-1)?.event);
      }
      const drop = statuses.find((s) => s.state === "reconnecting");
      assert.match(drop?.lastError ?? "", /slow consumer/, JSON.stringify(statuses));
    } finally {
      await client.close();
      await proxy.close();
    }
  });

  it("an SSE reader that stops reading is cut off; resuming with Last-Event-ID gets the rest exactly", async () => {
    const edge = stack.edges[0]!;
    // One SSE stream carries one response, so this one is made large: a steer with a long word
    // makes the scripted generator weave that word into what follows.
    const rid = randomBytes(48).toString("base64url");
    const c = await RawClient.connect(stack.url);
    await c.request({ type: "generate", rid, prompt: "write 20000 words about rivers", params: { max_tokens: 20_000 } });
    await c.request({ type: "steer", rid, text: "z".repeat(4000) });
    const events = await c.untilEnd(rid, 120_000);
    c.close();
    const bytes = events.reduce((n, e) => n + JSON.stringify(e).length, 0);
    assert.ok(bytes > 8_000_000, `precondition: the response is larger than what the kernel buffers (${bytes} bytes)`);

    const before = edge.slowConsumers;
    const base = `http://127.0.0.1:${edge.port}/v1/responses/${rid}/events`;
    // Reads the first chunk, then stops reading while the rest of the replay piles up.
    const stalled = await fetch(base);
    const reader = stalled.body!.getReader();
    const decoder = new TextDecoder();
    let text = decoder.decode((await reader.read()).value, { stream: true });
    await until(() => edge.slowConsumers === before + 1, "the edge cutting the stalled SSE stream");
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
    } catch {
      // cut off: the body errors out
    }
    // Only whole events count: the cut may fall inside one.
    const ids = [...text.matchAll(/^id: (\d+)\ndata: .*\n\n/gm)].map((m) => Number(m[1]));
    assert.ok(ids.length < events.length, `cut before the end (${ids.length} of ${events.length})`);
    assert.deepEqual(ids, range(1, ids.length));
    const rest = await readSse(base, { headers: { "last-event-id": String(ids.at(-1) ?? 0) } });
    assert.equal(rest.status, 200);
    assert.deepEqual([...ids, ...rest.messages.map((m) => Number(m.id))], range(1, events.length));
    assert.equal(rest.messages.at(-1)?.data, JSON.stringify(events.at(-1)));
  });

  it("/metrics counts the same slow consumers by transport, and the two cut sockets as drops", async () => {
    const edge = stack.edges[0]!;
    assert.equal(edge.slowConsumers, 3);
    const url = `http://127.0.0.1:${edge.port}/metrics`;
    // A cut socket is counted as a drop when its close completes, behind the bytes it had not read.
    const deadline = Date.now() + 30_000;
    let m = await scrapeMetrics(url);
    while (m.get("unbroken_edge_connection_drops_total", { reason: "slow_consumer" }) < 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      m = await scrapeMetrics(url);
    }
    assert.equal(m.get("unbroken_edge_slow_consumer_disconnects_total", { transport: "ws" }), 2);
    assert.equal(m.get("unbroken_edge_slow_consumer_disconnects_total", { transport: "sse" }), 1);
    assert.equal(m.get("unbroken_edge_connection_drops_total", { reason: "slow_consumer" }), 2);
  });

  it("a slow reader catching up long finished answers is waited for, not cut: every event once, no 4008", async () => {
    const edge = stack.edges[0]!;
    const before = edge.slowConsumers;
    const proxy = await PausableProxy.start(edge.port);
    const c = await RawClient.connect(proxy.url());
    try {
      // About 3 MB/s: the edge reads the stored log far faster, so its sends pile up past
      // MAX_SOCKET_BUFFER unless the replay waits for this reader.
      const taken = proxy.trickle(16 * 1024, 5);
      const cut = c.closed.then((cl) => {
        throw new Error(`the socket was closed (${cl.code} ${cl.reason}) before every replay ended`);
      });
      cut.catch(() => undefined);
      for (const [i, rid] of rids.entries()) c.send({ type: "subscribe", rid, id: `s${i}` });
      for (let i = 0; i < rids.length; i++) {
        const ok = await c.next((f) => f.id === `s${i}`, 120_000);
        assert.equal(ok.type, "ok", JSON.stringify(ok));
      }
      for (const rid of rids) {
        const events = await Promise.race([c.untilEnd(rid, 180_000), cut]);
        const ref = reference.get(rid)!;
        assert.deepEqual(seqs(events), range(1, ref.length), `${rid}: every seq exactly once, in order`);
        assert.equal(textOf(events), textOf(ref));
      }
      const bytes = taken();
      assert.ok(bytes > 16 * LIMIT, `precondition: the replay (${bytes} bytes) is many times MAX_SOCKET_BUFFER`);
      // Still open after all of it, and never counted as a slow consumer.
      assert.equal((await c.request({ type: "ping" }, 60_000)).type, "pong");
      assert.equal(edge.slowConsumers, before);
    } finally {
      c.close();
      await proxy.close();
    }
  });
});
