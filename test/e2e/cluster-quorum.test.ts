import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { EventFrame } from "@unbroken/protocol";
import type { NatsClusterHandle } from "@unbroken/testing";
import { readLogs } from "../helpers/chaos.js";
import { handovers } from "../helpers/failover.js";
import { RawClient, range, seqs, textOf, tokenCount } from "../helpers/raw-client.js";
import { Topology, eventually, replay } from "../helpers/topology.js";

// README "Guarantees", the cluster row: with one node lost nothing stops; "Two of three lost:
// JetStream has no quorum, as in a single-node outage". So, as for a single server that is down
// and comes back (same row of the table above it): commands get `unavailable` while there is no
// quorum, sockets stay open, subscriptions resume with no gap and no duplicate, stored responses
// survive, and a response in flight continues (its worker retries each write for up to 60 s, or
// another worker continues it after a redelivery) and ends once. And nothing crashes.
// Two of three nodes (the LLM_EVENTS leader and another) are SIGKILLed for 8 s — longer than a
// worker's 5 s publish timeout — then restarted on their ports and stores.
const DOWN_MS = 8_000;
const REQUEST = { prompt: "write 240 words while the cluster loses its quorum", params: { max_tokens: 240, seed: 11 } };

function note(text: string): void {
  process.stdout.write(`# cluster quorum: ${text}\n`);
}

describe("a 3-node JetStream cluster (REPLICAS=3) losing 2 of its nodes", () => {
  let top: Topology;
  let cluster: NatsClusterHandle;
  const exits: string[] = [];
  before(async () => {
    top = await Topology.start({
      natsNodes: 3,
      edges: 1,
      workers: 2,
      balancer: false,
      workerEnv: { SCRIPTED_TPS: "30", CONCURRENCY: "4" },
    });
    cluster = top.cluster as NatsClusterHandle;
    for (const m of [...top.edges, ...top.workers]) void m.handle.exited.then(() => exits.push(m.handle.name));
  });
  after(() => top.stop());

  it("answers unavailable without quorum, then continues the response in flight exactly once and serves new work", async () => {
    const c = await RawClient.connect(top.edgeUrl(0));
    let closed = false;
    void c.closed.then(() => (closed = true));
    const { rid: done } = await c.request({ type: "generate", prompt: "finished before the loss", params: { max_tokens: 15 } }, 60_000);
    const finished = [...(await c.untilEnd(done, 60_000))];
    const { rid } = await c.request({ type: "generate", ...REQUEST }, 60_000);
    await c.next((f) => f.type === "event" && f.rid === rid && f.seq >= 10, 30_000);

    const leaders = await cluster.leaders();
    const first = Math.max(0, cluster.indexOf(leaders.streams.LLM_EVENTS));
    const killed = [first, ...[0, 1, 2].filter((i) => i !== first)].slice(0, 2);
    const downAt = Date.now();
    await Promise.all(killed.map((i) => cluster.kill(i)));

    // Without quorum: a generate cannot be stored, and says so; the socket still serves.
    const refused = await c.request({ type: "generate", prompt: "without quorum?", params: { max_tokens: 3 } }, 60_000);
    assert.equal(refused.type, "error", JSON.stringify(refused));
    assert.equal(refused.code, "unavailable", JSON.stringify(refused));
    assert.equal((await c.request({ type: "ping" })).type, "pong");
    // A subscribe to a stored response, on another socket: `unavailable`, or `ok` and the whole
    // log once the nodes are back (checked below).
    const late = await RawClient.connect(top.edgeUrl(0));
    const subscribed = await late.request({ type: "subscribe", rid: done }, 60_000);
    assert.ok(subscribed.type === "ok" || subscribed.code === "unavailable", JSON.stringify(subscribed));
    const readyz = await fetch(`http://127.0.0.1:${top.edges[0]!.handle.port}/readyz`).then(
      (r) => r.status,
      () => 0,
    );
    note(
      `killed n${killed.join(" and n")} (leaders: ${JSON.stringify(leaders)}); generate: ${refused.code}; subscribe: ${subscribed.type === "ok" ? "ok" : subscribed.code}; edge /readyz ${readyz}`,
    );

    await new Promise((r) => setTimeout(r, Math.max(0, downAt + DOWN_MS - Date.now())));
    const upAt = Date.now();
    await Promise.all(killed.map((i) => cluster.restart(i)));
    // As in cluster.test.ts: a consumer replica that stays "not current" is tolerated; the
    // streams' health is required.
    const lagging = await cluster.waitHealthy(60_000, { tolerate: /JetStream consumer .* is not current/ });

    // New work is taken again (retried while streams elect leaders, as clients do); it is also
    // the uninterrupted run the continued response must equal.
    const again = await eventually(
      async () => {
        const reply = await c.request({ type: "generate", ...REQUEST }, 60_000);
        if (reply.type !== "accepted") throw new Error(JSON.stringify(reply));
        return reply.rid as string;
      },
      60_000,
      500,
    );
    const acceptedMs = Date.now() - upAt;
    const events = await c.untilEnd(rid, 90_000);
    const reference = await c.untilEnd(again, 60_000);
    note(
      `nodes back and healthy${lagging ? ` (lagging: ${lagging})` : ""}; new generate accepted ${acceptedMs} ms after the restart; ` +
        `${rid}: ${events.length} events, handovers ${JSON.stringify(handovers(events))}`,
    );

    assert.equal(closed, false, "the client's socket stayed open");
    assertComplete(events);
    assert.equal(textOf(events), textOf(reference), "the same text as an uninterrupted run");
    assertComplete(reference);
    const stored = (await readLogs(top.nats.url, [rid])).get(rid)!;
    assert.deepEqual(stored.seqs, seqs(events), "the stored log is what the client read");
    assert.equal(stored.text, textOf(events));
    // The stored response survived, whole; a subscribe answered `ok` during the loss delivered it once.
    assert.deepEqual(seqs(await replay(top.edgeUrl(0), done)), seqs(finished));
    if (subscribed.type === "ok") assert.deepEqual(seqs(await late.untilEnd(done, 60_000)), seqs(finished));
    assert.deepEqual(exits, [], "no edge or worker process exited");
    late.close();
    c.close();
  });
});

/** seq 1..n, one `end`, last, reason length, all 240 tokens. */
function assertComplete(events: EventFrame[]): void {
  assert.deepEqual(seqs(events), range(1, events.length), "every seq once, in order");
  assert.equal(events.filter((f) => f.event.kind === "end").length, 1, "one end");
  const end = events.at(-1)!.event;
  assert.equal(end.kind === "end" && end.reason, "length", JSON.stringify(end));
  assert.equal(tokenCount(events), 240);
}
