import assert from "node:assert/strict";
import { after, afterEach, beforeEach, describe, it } from "node:test";
import { startNatsServer, type NatsServerHandle, type ServiceHandle } from "@unbroken/testing";
import { RawClient, textOf } from "../helpers/raw-client.js";
import {
  assertWhole,
  epochOf,
  handovers,
  msUntil,
  reference,
  runnerOf,
  startEdge,
  startWorker,
  storedMsgIds,
  wsUrl,
} from "../helpers/failover.js";

// Worker failover with real processes: a worker killed, stopped (a zombie) or shut down
// mid-answer, and another worker continues the answer from the log. With the scripted
// generator the continued answer must equal an uninterrupted run of the same request.
// TAKEOVER_TIMEOUT (the queue's ack wait) is 2 s here to keep the tests short; the edge keeps
// its default 30 s, so its own probe never ends a response a worker is about to continue.

const WORKER_ENV = { SCRIPTED_TPS: "40", TAKEOVER_TIMEOUT: "2s", CONCURRENCY: "2", LOG_LEVEL: "debug" };
const REQUEST = { prompt: "write 200 words about a river that never stops", params: { seed: 5 } };

describe("worker failover", () => {
  let nats: NatsServerHandle;
  let services: ServiceHandle[] = [];
  let c: RawClient | undefined;
  const timings: string[] = [];

  beforeEach(async () => {
    nats = await startNatsServer();
  });
  afterEach(async () => {
    c?.close();
    await Promise.allSettled(services.map((s) => s.kill()));
    services = [];
    await nats.stop();
  });
  after(() => {
    for (const t of timings) console.log(`# failover timing: ${t}`);
  });

  async function stack(workerEnv: Record<string, string> = {}): Promise<{ a: ServiceHandle; b: ServiceHandle; edge: ServiceHandle }> {
    const env = { NATS_URL: nats.url, ...WORKER_ENV, ...workerEnv };
    const [a, b] = [await startWorker("wa", env), await startWorker("wb", env)];
    const edge = await startEdge({ NATS_URL: nats.url });
    services.push(a, b, edge);
    c = await RawClient.connect(wsUrl(edge));
    return { a, b, edge };
  }

  /** Starts REQUEST; resolves once `seq` events arrived, with the worker running it. */
  async function begin(workers: ServiceHandle[], seq = 12): Promise<{ rid: string; runner: ServiceHandle; other: ServiceHandle }> {
    const { rid } = await c!.request({ type: "generate", ...REQUEST });
    const runner = await runnerOf(workers, rid);
    await c!.next((f) => f.type === "event" && f.rid === rid && f.seq >= seq);
    return { rid, runner, other: workers.find((w) => w !== runner)! };
  }

  it("SIGKILL mid-answer: the other worker continues it, exactly as the dead one would have", async () => {
    const { a, b } = await stack();
    const { rid, runner, other } = await begin([a, b]);
    const killedAt = Date.now();
    await runner.kill();
    const took = await msUntil(
      c!,
      killedAt,
      (f) => f.type === "event" && f.rid === rid && (f.event as { kind: string }).kind === "handover",
    );
    timings.push(`SIGKILL → handover event at the client: ${took} ms (TAKEOVER_TIMEOUT 2 s)`);
    const events = await c!.untilEnd(rid, 60_000);
    const end = assertWhole(events);
    assert.equal(end.reason, "stop");
    const [marker, ...more] = handovers(events);
    assert.ok(marker, "the log shows the handover");
    assert.equal(more.length, 0);
    assert.deepEqual(
      { worker: marker.worker, epoch: marker.epoch, reason: marker.reason },
      { worker: other === a ? "wa" : "wb", epoch: 2, reason: "lost" },
    );
    assert.ok(
      events.slice(0, marker.seq - 1).some((e) => e.event.kind === "token"),
      "the dead worker wrote tokens before",
    );
    assert.ok(
      events.slice(marker.seq).some((e) => e.event.kind === "token"),
      "the new worker wrote tokens after",
    );

    const ref = await reference(c!, REQUEST);
    assert.equal(textOf(events), ref.text, "the continued text equals an uninterrupted run");
    const refEnd = ref.events.at(-1)!.event;
    assert.deepEqual(end.usage, refEnd.kind === "end" ? refEnd.usage : undefined, "usage counts both workers' tokens");
    await other.waitForLine((o) => o.msg === "generation continued" && o.rid === rid);
  });

  it("a zombie (SIGSTOP, taken over, SIGCONT) never writes again and frees its slot", async () => {
    const { a, b } = await stack({ CONCURRENCY: "1" });
    const { rid, runner, other } = await begin([a, b]);
    process.kill(runner.pid, "SIGSTOP");
    const stoppedAt = Date.now();
    let resumed = false;
    try {
      const took = await msUntil(
        c!,
        stoppedAt,
        (f) => f.type === "event" && f.rid === rid && (f.event as { kind: string }).kind === "handover",
      );
      timings.push(`SIGSTOP → handover event at the client: ${took} ms (TAKEOVER_TIMEOUT 2 s)`);
      const handoverSeq = c!.events(rid).at(-1)!.seq;
      await c!.next((f) => f.type === "event" && f.rid === rid && f.seq >= handoverSeq + 5);
    } finally {
      process.kill(runner.pid, "SIGCONT");
      resumed = true;
    }
    assert.ok(resumed);
    const gone = await runner.waitForLine((o) => o.rid === rid && /stopping/.test(o.msg ?? ""), 30_000);
    const events = await c!.untilEnd(rid, 60_000);
    const end = assertWhole(events);
    assert.equal(end.reason, "stop");
    const [marker] = handovers(events);
    assert.ok(marker);
    assert.equal(marker.worker, other === a ? "wa" : "wb");

    // Every event from the handover on carries the new worker's epoch in its msg id.
    const stored = await storedMsgIds(nats.url, rid);
    assert.equal(stored.length, events.length);
    for (const { seq, msgId } of stored) {
      assert.equal(epochOf(msgId), seq < marker.seq ? 1 : marker.epoch, `event ${seq} (${msgId})`);
    }
    assert.equal(textOf(events), (await reference(c!, REQUEST)).text);
    assert.ok(gone, "the zombie logged that it stopped");
    assert.ok(!runner.lines.some((l) => l.includes(rid) && l.includes("generation ended")), "the zombie wrote no end");

    // Its only slot is free again: with the other worker gone, it serves the next request.
    await other.stop("SIGTERM", 20_000);
    const next = await c!.request({ type: "generate", prompt: "write 10 words after the zombie woke" });
    const after = await c!.untilEnd(next.rid, 30_000);
    assert.equal(assertWhole(after).reason, "stop");
    await runner.waitForLine((o) => o.msg === "generation ended" && o.rid === next.rid);
  });

  it("SIGTERM past DRAIN_TIMEOUT hands the answer over at once; the text equals an uninterrupted run", async () => {
    const { a, b } = await stack({ DRAIN_TIMEOUT: "300ms" });
    const { rid, runner, other } = await begin([a, b]);
    const termAt = Date.now();
    const exit = runner.stop("SIGTERM", 20_000);
    const took = await msUntil(c!, termAt, (f) => f.type === "event" && f.rid === rid && (f.event as { kind: string }).kind === "handover");
    timings.push(`SIGTERM → handover event at the client: ${took} ms (DRAIN_TIMEOUT 300 ms)`);
    const events = await c!.untilEnd(rid, 60_000);
    assert.equal(assertWhole(events).reason, "stop");
    const [marker] = handovers(events);
    assert.deepEqual(marker && { worker: marker.worker, reason: marker.reason }, { worker: other === a ? "wa" : "wb", reason: "drain" });
    assert.equal((await exit).code, 0);
    assert.equal(textOf(events), (await reference(c!, REQUEST)).text);
  });
});
