import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { NatsClusterHandle } from "@unbroken/testing";
import { RawClient, range, seqs, textOf } from "../helpers/raw-client.js";
import { Topology, eventually, replay } from "../helpers/topology.js";

const STREAMS = ["LLM_EVENTS", "LLM_REQUESTS", "LLM_THREADS", "KV_llm_responses", "KV_llm_rid_owners"];

/** What a fault did, for the log: which node, what it led, how long readers waited. */
function note(text: string): void {
  process.stdout.write(`# cluster: ${text}\n`);
}

// DESIGN.md: "a clustered JetStream (replicas 3) when users outgrow one machine". Three real
// nats-server 2.9 processes on loopback, streams and bucket with 3 replicas, an edge and a
// worker process given all three URLs; each node in turn is SIGKILLed under a live response
// and restarted on the same ports and store.
describe("a 3-node JetStream cluster (REPLICAS=3)", () => {
  let top: Topology;
  let cluster: NatsClusterHandle;
  before(async () => {
    top = await Topology.start({
      natsNodes: 3,
      edges: 1,
      workers: 1,
      balancer: false,
      workerEnv: { SCRIPTED_TPS: "30", CONCURRENCY: "8" },
    });
    cluster = top.cluster as NatsClusterHandle;
  });
  after(() => top.stop());

  it("creates the streams and the bucket with 3 replicas", async () => {
    const { streams } = await cluster.leaders();
    for (const name of STREAMS) assert.ok(streams[name], `${name} has a leader: ${JSON.stringify(streams)}`);
    const res = await fetch(`${cluster.nodes[0]!.monitorUrl}/jsz?streams=true&config=true`);
    const jsz = (await res.json()) as {
      account_details: Array<{ stream_detail: Array<{ name: string; config: { num_replicas: number } }> }>;
    };
    const replicas = Object.fromEntries(jsz.account_details.flatMap((a) => a.stream_detail).map((s) => [s.name, s.config.num_replicas]));
    for (const name of STREAMS) assert.equal(replicas[name], 3, `${name} replicas`);
  });

  it("loses no event and stops no stream while any one node is killed and restarted", async () => {
    // Kill the events stream's leader first (the worst case), then the others.
    const first = cluster.indexOf((await cluster.leaders()).streams.LLM_EVENTS);
    const order = [first, ...[0, 1, 2].filter((i) => i !== first)];
    const c = await RawClient.connect(top.edgeUrl(0));
    const rids: string[] = [];
    for (const index of order) {
      const led = await cluster.leaders();
      const leads = [led.meta === `n${index}` ? "meta" : "", ...STREAMS.filter((s) => led.streams[s] === `n${index}`)].filter(Boolean);
      const { rid } = await c.request(
        { type: "generate", prompt: `write 200 words through the loss of node ${index}`, params: { max_tokens: 200, seed: index } },
        60_000,
      );
      rids.push(rid);
      await c.next((f) => f.type === "event" && f.rid === rid && f.seq >= 20, 30_000);
      const before = c.events(rid).length;
      const killedAt = Date.now();
      await cluster.kill(index);
      // A response requested while the node is down is accepted by the other two.
      // (While a stream elects a new leader the edge answers `unavailable`: retry, as clients do.)
      const duringRid = `during${index}-${Date.now()}`;
      const during = await eventually(async () => {
        const reply = await c.request(
          { type: "generate", rid: duringRid, prompt: `write 40 words while node ${index} is down`, params: { max_tokens: 40 } },
          60_000,
        );
        if (reply.type !== "accepted") throw new Error(JSON.stringify(reply));
        return reply;
      }, 60_000);
      rids.push(during.rid);
      await c.next((f) => f.type === "event" && f.rid === rid && f.seq > before + 1, 60_000);
      const resumedMs = Date.now() - killedAt;
      // The node comes back before the request must have been taken: on nats-server 2.9.10 the
      // work-queue consumer's replica on a node restarted earlier can lag for minutes (its
      // /healthz says so, or even says healthy), and with another node down that consumer then
      // has no leader until a node returns; pulls fail ("heartbeats missed") meanwhile. Worse,
      // it can drop out of the cluster for good: the worker's repair (Intake) creates it again.
      await new Promise((r) => setTimeout(r, 1_000));
      const restartAt = Date.now();
      await cluster.restart(index);
      // A consumer replica that stays "not current" (seen on a node restarted earlier, a minute
      // after the last restart) does not stop the test: the streams' health is still required,
      // and what this test asserts is that no event is lost.
      const lagging = await cluster.waitHealthy(60_000, { tolerate: /JetStream consumer .* is not current/ });
      const health = lagging ? `restarted; after 60 s still lagging: ${lagging}` : `restarted and healthy in ${Date.now() - restartAt} ms`;
      note(`killed n${index} (leader of: ${leads.join(", ") || "nothing"}); events flowed again after ${resumedMs} ms; ${health}`);
      await c.untilEnd(during.rid, 60_000);
      await c.untilEnd(rid, 60_000);
    }
    for (const rid of rids) {
      const got = c.events(rid);
      const reference = await replay(top.edgeUrl(0), rid);
      assert.deepEqual(seqs(got), range(1, got.length), `${rid}: contiguous seq`);
      assert.deepEqual(seqs(reference), seqs(got), `${rid}: the log has what the reader got`);
      assert.equal(textOf(got), textOf(reference));
      assert.equal(got.filter((f) => f.event.kind === "end").length, 1);
      const end = got.at(-1)!.event;
      assert.equal(end.kind === "end" && end.reason, "length", `${rid}: ${JSON.stringify(end)}`);
    }
    c.close();
  });

  it("has every stream led, with both followers back in its peer set, after the restarts", async () => {
    // A write to each stream (record, request, turn, events) brings idle followers up to date.
    const c = await RawClient.connect(top.edgeUrl(0));
    const generate = { type: "generate", thread: "cluster-restarts", prompt: "after every restart", params: { max_tokens: 5 } };
    const { rid } = await c.request(generate, 60_000);
    await c.untilEnd(rid, 60_000);
    c.close();
    await eventually(async () => {
      const res = await fetch(`${cluster.nodes[0]!.monitorUrl}/jsz?streams=true`);
      const jsz = (await res.json()) as {
        account_details: Array<{
          stream_detail: Array<{ name: string; cluster: { leader?: string; replicas?: Array<{ current: boolean }> } }>;
        }>;
      };
      const streams = jsz.account_details.flatMap((a) => a.stream_detail);
      assert.equal(streams.length, STREAMS.length);
      for (const st of streams) {
        assert.ok(st.cluster.leader, `${st.name} has a leader`);
        // Both followers are back in the stream's peer set. Whether nats-server 2.9 reports them
        // `current` within a minute of the restarts varied from run to run (seen false for
        // KV_llm_responses and KV_llm_rid_owners on otherwise healthy runs), so that flag is
        // not asserted; the tests above check that no event was lost.
        assert.equal(st.cluster.replicas?.length, 2, `${st.name}: two followers`);
      }
    }, 60_000);
  });
});
