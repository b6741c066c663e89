// SIGTERM drains (README "Running the parts separately", "Guarantees"; docs/protocol.md
// "Draining"), with real edge and worker processes:
// - a draining worker stops taking requests at once, while it finishes what it runs;
// - a draining edge sends goaway and closes with 1001, and exits once DRAIN_TIMEOUT has passed
//   even when a client never leaves; a compliant client resumes on the other edge with no gap.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { UnbrokenClient, type ConnectionStatus } from "@unbroken/client";
import type { EventFrame } from "@unbroken/protocol";
import { scrapeMetrics } from "@unbroken/testing";
import { WebSocket } from "ws";
import { RawClient, range, seqs, textOf } from "../helpers/raw-client.js";
import { StubbornSocket } from "../helpers/stubborn-socket.js";
import { Topology, replay, type Member } from "../helpers/topology.js";
import { within } from "../helpers/within.js";

const started = (rid: string) => (o: { msg?: string; rid?: string }) => o.msg === "generation started" && o.rid === rid;
const logged = (m: Member, rid: string, msg: string) => m.handle.lines.some((l) => l.includes(rid) && l.includes(`"${msg}"`));
const endOf = (events: EventFrame[]) => events.at(-1)?.event;

describe("SIGTERM drains", () => {
  let top: Topology;
  before(async () => {
    // No worker yet: each test starts the ones it needs. The edges' DRAIN_TIMEOUT is short.
    top = await Topology.start({ natsNodes: 1, edges: 2, workers: 0, edgeEnv: { DRAIN_TIMEOUT: "1s" } });
  });
  after(async () => {
    await top?.stop();
  });

  // A request made right after SIGTERM lands in the draining worker's pull in flight (up to 1 s):
  // the intake gives it back (nak) instead of beginning it (packages/worker/src/intake.ts).
  it("a draining worker takes no new request: one made after its SIGTERM waits and is begun by the next worker", async () => {
    // CONCURRENCY 4: the worker has free slots, so it is pulling for requests when told to stop.
    const a = await top.addWorker({ SCRIPTED_TPS: "30", CONCURRENCY: "4", DRAIN_TIMEOUT: "30s" });
    const c = await RawClient.connect(top.edgeUrl(0));
    try {
      // Something to finish while draining: 60 tokens at 30 per second.
      const first = await c.request({ type: "generate", prompt: "write 60 words while the worker drains", params: { max_tokens: 60 } });
      await a.handle.waitForLine(started(first.rid), 30_000);
      await c.next((f) => f.type === "event" && f.rid === first.rid && f.seq >= 2);

      const mark = a.handle.lines.length;
      const aExit = a.handle.stop("SIGTERM", 60_000);
      await a.handle.waitForLine((o) => o.msg === "shutting down", 10_000, mark);
      const late = await c.request({ type: "generate", prompt: "write 20 words after the SIGTERM", params: { max_tokens: 20 } });
      assert.equal(late.type, "accepted", JSON.stringify(late));

      // The bound: the draining worker has exited, so its log holds all it ever did.
      const firstEvents = await c.untilEnd(first.rid, 60_000);
      assert.equal((await aExit).code, 0);
      assert.ok(logged(a, first.rid, "generation ended"), "the draining worker finished what it ran");
      const firstEnd = endOf(firstEvents);
      assert.equal(firstEnd?.kind === "end" && firstEnd.reason, "length");
      assert.ok(!firstEvents.some((e) => (e.event.kind as string) === "handover"), "finished within DRAIN_TIMEOUT, not handed over");
      const took = a.handle.lines.slice(mark).filter((l) => l.includes(late.rid) || l.includes('"shutting down"'));
      assert.ok(
        !logged(a, late.rid, "generation started"),
        `the draining worker began the request made after its SIGTERM:\n${took.join("\n")}`,
      );
      assert.deepEqual(c.events(late.rid), [], "nothing of it was written while only the draining worker ran");

      // It waited in the queue: a worker started now begins it, from seq 1, as a fresh response.
      const b = await top.addWorker({ SCRIPTED_TPS: "0" });
      const lateEvents = await c.untilEnd(late.rid, 60_000);
      await b.handle.waitForLine(started(late.rid), 10_000);
      assert.deepEqual(seqs(lateEvents), range(1, lateEvents.length));
      assert.equal(lateEvents[0]?.event.kind, "start");
      assert.ok(!lateEvents.some((e) => (e.event.kind as string) === "handover"), "begun by the new worker, not taken over");
      const lateEnd = endOf(lateEvents);
      assert.equal(lateEnd?.kind === "end" && lateEnd.reason, "length");
      assert.equal((await b.handle.stop("SIGTERM", 30_000)).code, 0);
    } finally {
      c.close();
    }
  });

  it("a draining edge says goaway, closes with 1001 and exits after DRAIN_TIMEOUT although a client never leaves; the client library resumes on the other edge with no gap", async () => {
    await top.addWorker({ SCRIPTED_TPS: "40" });
    const statuses: ConnectionStatus[] = [];
    const client = new UnbrokenClient({
      url: top.url,
      WebSocket,
      reconnect: { minDelayMs: 20, maxDelayMs: 200 },
      onStatus: (s) => statuses.push(s),
    });
    try {
      const answer = client.generate({ prompt: "write 160 words across a draining edge", params: { max_tokens: 160 } });
      const got: EventFrame[] = [];
      answer.onEvent((e) => got.push(e as EventFrame));
      await answer.accepted;
      const rid = answer.rid;
      // The edge's log line may reach this process after the reply did: wait for it.
      const queued = (o: { msg?: string; rid?: string }) => o.msg === "response queued" && o.rid === rid;
      const index = await Promise.any(top.edges.map((e, i) => e.handle.waitForLine(queued, 10_000).then(() => i)));
      const draining = top.edges[index]!;
      const other = top.edges[1 - index]!;
      await within(new Promise<void>((resolve) => answer.onEvent((e) => e.seq >= 10 && resolve())), "the first 10 events", 30_000);

      // A client that ignores goaway: it reads everything and never answers the close.
      const stubborn = await StubbornSocket.connect(draining.handle.port as number);
      stubborn.send({ type: "subscribe", rid, id: "s" });
      await stubborn.until(() => stubborn.frames.some((f) => f.type === "event"), "the stubborn socket's first event");
      const resumesBefore = (await scrapeMetrics(`http://127.0.0.1:${other.handle.port}/metrics`)).get("unbroken_edge_resumes_total", {
        transport: "ws",
      });

      // ws gives up on a peer that never completes the close after 30 s: a grace below that
      // shows the exit came from DRAIN_TIMEOUT (1 s), not from ws.
      const exit = await draining.handle.stop("SIGTERM", 20_000);
      assert.deepEqual(exit, { code: 0, signal: null }, "the edge exited by itself, with 0");
      const line = await draining.handle.waitForLine((o) => o.msg === "draining", 1_000);
      assert.ok(line.sockets >= 2, `the edge drained with its sockets open: ${JSON.stringify(line)}`);
      assert.ok(draining.handle.lines.some((l) => l.includes('"edge stopped"')));

      const goaway = stubborn.frames.findIndex((f) => f.type === "goaway");
      assert.ok(goaway >= 0, "the stubborn client was sent goaway");
      assert.equal(stubborn.closeCode, 1001, "then a close frame with 1001");
      await within(stubborn.ended, "the edge dropping the stubborn socket");

      const end = await within(answer.done, "the answer's end after the drain", 60_000);
      assert.equal(end.reason, "length");
      const reference = await replay(top.edgeUrl(1 - index), rid);
      assert.deepEqual(seqs(got), range(1, reference.length), "every seq once, in order, across the drain");
      assert.equal(textOf(got), textOf(reference));
      assert.match(statuses.find((s) => s.state === "reconnecting")?.lastError ?? "", /goaway/, JSON.stringify(statuses));
      const resumesAfter = (await scrapeMetrics(`http://127.0.0.1:${other.handle.port}/metrics`)).get("unbroken_edge_resumes_total", {
        transport: "ws",
      });
      assert.ok(resumesAfter > resumesBefore, "the client resumed on the other edge");
    } finally {
      await client.close();
    }
  });
});
