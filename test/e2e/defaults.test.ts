import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { scrapeMetrics, spawnService, startNatsServer, type NatsServerHandle, type ServiceHandle } from "@unbroken/testing";
import { RawClient, tokenCount } from "../helpers/raw-client.js";
import { EDGE_MAIN, WORKER_MAIN } from "../helpers/topology.js";

// Two workers and two edges on one host with nothing set but NATS_URL: the first step of
// scaling must work with the defaults. The second edge finds PORT 8787 taken (or both do, when
// something else holds it) and the second worker METRICS_PORT 9464: each warns and takes a
// free port instead of exiting.

describe("two workers and two edges on one host, default environment", () => {
  let nats: NatsServerHandle;
  const services: ServiceHandle[] = [];
  before(async () => {
    nats = await startNatsServer();
  });
  after(async () => {
    await Promise.allSettled(services.map((s) => s.stop()));
    await nats?.stop();
  });

  it("all four start, on distinct ports, and both edges and both workers serve", async () => {
    const env = { NATS_URL: nats.url };
    for (const name of ["edge A", "edge B"])
      services.push(await spawnService({ name, script: EDGE_MAIN, env, readyMsg: "listening", timeoutMs: 30_000 }));
    for (const name of ["worker A", "worker B"])
      services.push(await spawnService({ name, script: WORKER_MAIN, env, readyMsg: "ready", timeoutMs: 30_000 }));
    const [edgeA, edgeB, workerA, workerB] = services as [ServiceHandle, ServiceHandle, ServiceHandle, ServiceHandle];
    assert.notEqual(edgeA.port, edgeB.port, "two edge ports");
    const metricsPorts = await Promise.all(
      [workerA, workerB].map(async (w) => (await w.waitForLine((o) => o.msg === "ready")).metricsPort as number),
    );
    assert.notEqual(metricsPorts[0], metricsPorts[1], "two metrics ports");
    for (const port of metricsPorts)
      assert.ok((await scrapeMetrics(`http://127.0.0.1:${port}/metrics`)).text.length > 0, `metrics on ${port}`);

    // Responses through both edges until each worker has begun some (bounded: 64 responses).
    const began = (w: ServiceHandle): number => w.lines.filter((l) => l.includes('"msg":"generation started"')).length;
    const clients = await Promise.all([edgeA, edgeB].map((e) => RawClient.connect(`ws://127.0.0.1:${e.port}/v1/ws`)));
    try {
      for (let round = 0; round < 8 && (began(workerA) === 0 || began(workerB) === 0); round++) {
        await Promise.all(
          Array.from({ length: 8 }, async (_, i) => {
            const c = clients[i % 2] as RawClient;
            const { rid } = await c.request({ type: "generate", prompt: `defaults ${round}.${i}`, params: { max_tokens: 5 } });
            assert.equal(tokenCount(await c.untilEnd(rid)), 5, `edge ${i % 2 ? "B" : "A"} served ${rid} to its end`);
          }),
        );
      }
    } finally {
      for (const c of clients) c.close();
    }
    const served = [began(workerA), began(workerB)];
    assert.ok(
      served.every((n) => n > 0),
      `both workers began responses: ${served.join(", ")}`,
    );
  });
});
