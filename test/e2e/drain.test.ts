// SIGTERM drains (README "Running the parts separately", "Guarantees"; docs/protocol.md
// "Draining"), with real edge and worker processes:
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

const logged = (m: Member, rid: string, msg: string) => m.handle.lines.some((l) => l.includes(rid) && l.includes(`"${msg}"`));

describe("SIGTERM drains", () => {
  let top: Topology;
  before(async () => {
    // No worker yet: each test starts the ones it needs. The edges' DRAIN_TIMEOUT is short.
    top = await Topology.start({ natsNodes: 1, edges: 2, workers: 0, edgeEnv: { DRAIN_TIMEOUT: "1s" } });
  });
  after(async () => {
    await top?.stop();
  });

  it("a draining edge says goaway, closes with 1001 and exits after DRAIN_TIMEOUT although a client never leaves; the client library resumes on the other edge with no gap", async () => {
    await top.addWorker({ SCRIPTED_TPS: "40" });
    const statuses: ConnectionStatus[] = [];
    const client = new UnbrokenClient({ url: top.url, WebSocket, reconnect: { minDelayMs: 20, maxDelayMs: 200 }, onStatus: (s) => statuses.push(s) });
    try {
      const answer = client.generate({ prompt: "write 160 words across a draining edge", params: { max_tokens: 160 } });
      const got: EventFrame[] = [];
      answer.onEvent((e) => got.push(e as EventFrame));
      await answer.accepted;
      const rid = answer.rid;
      const index = top.edges.findIndex((e) => logged(e, rid, "response queued"));
      assert.ok(index >= 0, "an edge took the generate");
      const draining = top.edges[index]!;
      const other = top.edges[1 - index]!;
      await within(
        new Promise<void>((resolve) => answer.onEvent((e) => e.seq >= 10 && resolve())),
        "the first 10 events",
        30_000,
      );

      // A client that ignores goaway: it reads everything and never answers the close.
      const stubborn = await StubbornSocket.connect(draining.handle.port as number);
      stubborn.send({ type: "subscribe", rid, id: "s" });
      await stubborn.until(() => stubborn.frames.some((f) => f.type === "event"), "the stubborn socket's first event");
      const resumesBefore = (await scrapeMetrics(`http://127.0.0.1:${other.handle.port}/metrics`)).get("unbroken_edge_resumes_total", { transport: "ws" });

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
      const resumesAfter = (await scrapeMetrics(`http://127.0.0.1:${other.handle.port}/metrics`)).get("unbroken_edge_resumes_total", { transport: "ws" });
      assert.ok(resumesAfter > resumesBefore, "the client resumed on the other edge");
    } finally {
      await client.close();
    }
  });
});
