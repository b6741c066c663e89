import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { RawClient, range, seqs, textOf, tokenCount } from "../helpers/raw-client.js";
import { Topology, eventually, replay } from "../helpers/topology.js";

async function readyz(port: number | undefined): Promise<number> {
  return (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => ({ status: 0 }))).status;
}

// One nats-server with file storage, an edge and a worker process, as `npm start` runs them.
// The server is stopped (SIGTERM, then SIGKILL: a crash) and started again on the same port and
// store while a response is being generated. Defined outcome (docs/operations.md, "Guarantees"): edge and
// worker reconnect by themselves; everything written before is replayable and complete; a
// response in flight continues where it was, because the worker's fenced writer retries each
// write (same msg id and expected sequence) for up to 60 s.
describe("a nats-server restart (single node, file storage)", () => {
  let top: Topology;
  before(async () => {
    top = await Topology.start({ natsNodes: 1, edges: 1, workers: 1, balancer: false, workerEnv: { SCRIPTED_TPS: "30" } });
  });
  after(() => top.stop());

  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    it(`keeps every response whole across a ${signal} restart, including one in flight`, async () => {
      const c = await RawClient.connect(top.edgeUrl(0));
      const done: string[] = [];
      for (let i = 0; i < 3; i++) {
        const { rid } = await c.request({ type: "generate", prompt: `finished before the ${signal} restart ${i}`, params: { max_tokens: 15 } });
        await c.untilEnd(rid);
        done.push(rid);
      }
      const { rid } = await c.request({ type: "generate", prompt: `write 150 words across a ${signal} restart`, params: { max_tokens: 150 } });
      await c.next((f) => f.type === "event" && f.rid === rid && f.seq >= 10);
      const downAt = Date.now();
      await top.nats.kill(0, signal);
      await new Promise((r) => setTimeout(r, 1_500));
      await top.nats.restart(0);
      await eventually(async () => assert.equal(await readyz(top.edges[0]!.handle.port), 200), 30_000);
      const before = c.events(rid).length;
      await c.next((f) => f.type === "event" && f.rid === rid && f.seq > before, 60_000);
      process.stdout.write(`# nats ${signal} restart: 1.5 s down; events flowed again ${Date.now() - downAt} ms after the stop\n`);

      const events = await c.untilEnd(rid, 60_000);
      assert.deepEqual(seqs(events), range(1, events.length));
      const end = events.at(-1)!.event;
      assert.equal(end.kind === "end" && end.reason, "length", JSON.stringify(end));
      assert.equal(tokenCount(events), 150);
      assert.equal(events.filter((f) => f.event.kind === "end").length, 1);

      // Everything is replayable afterwards, and identical to what was read live.
      for (const r of [...done, rid]) {
        const reference = await replay(top.edgeUrl(0), r);
        assert.deepEqual(seqs(reference), seqs(c.events(r)), `${r}: same seqs`);
        assert.equal(textOf(reference), textOf(c.events(r)), `${r}: same text`);
      }
      // And new work is taken after the restart.
      const next = await eventually(async () => {
        const reply = await c.request({ type: "generate", prompt: "after the restart", params: { max_tokens: 5 } });
        if (reply.type !== "accepted") throw new Error(JSON.stringify(reply));
        return reply.rid as string;
      });
      const last = (await c.untilEnd(next)).at(-1)!.event;
      assert.equal(last.kind === "end" && last.reason, "length");
      c.close();
    });
  }
});
