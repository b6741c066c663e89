// /metrics of edges and a worker together (docs/operations.md, "Metrics"), with real traffic through the
// whole pipeline: what each process counts of the same responses.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { scrapeMetrics, type Scrape } from "@unbroken/testing";
import { RawClient, range, seqs } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";

describe("metrics", () => {
  let stack: Stack;
  before(async () => {
    stack = await Stack.start({ edges: 2, workerEnv: { SCRIPTED_TPS: "100" } });
  });
  after(() => stack.stop());

  const edgeMetrics = (i: number): Promise<Scrape> => scrapeMetrics(`http://127.0.0.1:${stack.edges[i]!.port}/metrics`);
  const workerMetrics = (): Promise<Scrape> => scrapeMetrics(`http://127.0.0.1:${stack.workers[0]!.metricsPort}/metrics`);

  /** The worker counts a run finished just after its end is acked: wait for that. */
  async function workerIdle(): Promise<Scrape> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const m = await workerMetrics();
      if (m.get("unbroken_worker_generations_active") === 0 || Date.now() > deadline) return m;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it("a generate to its end: the edge's TTFT and events match the client's, the worker's publishes the log's", async () => {
    const c = await RawClient.connect(stack.edges[0]!.url);
    const { rid } = await c.request({ type: "generate", prompt: "write 30 words", params: { max_tokens: 30 } });
    const events = await c.untilEnd(rid);
    assert.deepEqual(seqs(events), range(1, events.length));

    const edge = await edgeMetrics(0);
    assert.equal(edge.get("unbroken_edge_ttft_seconds_count"), 1);
    assert.equal(edge.get("unbroken_edge_events_sent_total"), events.length);
    assert.equal(edge.get("unbroken_edge_stream_duration_seconds_count", { transport: "ws" }), 1);
    const worker = await workerIdle();
    assert.equal(worker.get("unbroken_worker_nats_publish_seconds_count"), events.length, "one JetStream publish per event the client got");
    assert.equal(worker.get("unbroken_worker_ttft_seconds_count"), 1);
    // Taken per generated token, also where several share one event.
    assert.equal(worker.get("unbroken_worker_time_per_output_token_seconds_count"), 30 - 1);
    assert.equal(worker.get("unbroken_worker_responses_ended_total", { reason: "length" }), 1);
    c.close();
  });

  it("a cancel through the second edge is timed there, and at the worker; the first edge only sees the end", async () => {
    const [before0, before1, beforeW] = [await edgeMetrics(0), await edgeMetrics(1), await workerIdle()];
    const a = await RawClient.connect(stack.edges[0]!.url);
    const b = await RawClient.connect(stack.edges[1]!.url);
    const { rid } = await a.request({ type: "generate", prompt: "write 500 words that get cancelled" });
    await b.request({ type: "subscribe", rid });
    await b.next((f) => f.type === "event" && f.rid === rid && f.seq >= 4);
    assert.equal((await b.request({ type: "cancel", rid })).type, "ok");
    await a.untilEnd(rid);
    await b.untilEnd(rid);

    const delta = (now: Scrape, then: Scrape, name: string) => now.get(name) - then.get(name);
    const [e0, e1, w] = [await edgeMetrics(0), await edgeMetrics(1), await workerIdle()];
    assert.equal(delta(e1, before1, "unbroken_edge_cancels_total"), 1);
    assert.equal(delta(e1, before1, "unbroken_edge_cancel_to_end_seconds_count"), 1);
    assert.equal(delta(e0, before0, "unbroken_edge_cancels_total"), 0);
    assert.equal(delta(e0, before0, "unbroken_edge_cancel_to_end_seconds_count"), 0);
    assert.equal(delta(w, beforeW, "unbroken_worker_cancels_total"), 1);
    assert.equal(delta(w, beforeW, "unbroken_worker_cancel_to_end_seconds_count"), 1);
    a.close();
    b.close();
  });
});
