import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { startNatsServer, spawnService, type NatsServerHandle, type ServiceHandle } from "@unbroken/testing";
import { RawClient, range, seqs, textOf, tokenCount, type Frame } from "../helpers/raw-client.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const EDGE = path.join(root, "packages/cli/dist/src/edge.js");
const WORKER = path.join(root, "packages/cli/dist/src/worker.js");

const edge = (env: Record<string, string>) =>
  spawnService({ name: "edge", script: EDGE, env: { PORT: "0", ...env }, readyMsg: "listening" });
const worker = (env: Record<string, string>) =>
  spawnService({ name: "worker", script: WORKER, env: { METRICS_PORT: "0", ...env }, readyMsg: "ready" });

function runToExit(script: string, env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script], { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (code) => resolve({ code, stderr }));
  });
}

// The run interface of DESIGN.md "Running it": real edge and worker processes.
describe("edge and worker processes", () => {
  let nats: NatsServerHandle;
  const services: ServiceHandle[] = [];
  const url = (s: ServiceHandle) => `ws://127.0.0.1:${s.port}/v1/ws`;
  before(async () => {
    nats = await startNatsServer();
  });
  after(async () => {
    await Promise.allSettled(services.map((s) => s.kill()));
    await nats.stop();
  });

  it("log listening with the chosen port and ready, then serve a generate", async () => {
    const e = await edge({ NATS_URL: nats.url });
    const w = await worker({ NATS_URL: nats.url, SCRIPTED_TPS: "200" });
    services.push(e, w);
    assert.equal(typeof e.port, "number");
    assert.ok((e.port as number) > 0);
    const c = await RawClient.connect(url(e));
    const { rid } = await c.request({ type: "generate", prompt: "hello processes", params: { max_tokens: 10 } });
    const events = await c.untilEnd(rid);
    assert.equal(tokenCount(events), 10);
    // Every log line about a response carries its rid.
    const line = await w.waitForLine((o) => o.msg === "generation ended" && o.rid === rid);
    assert.equal(line.reason, "length");
    c.close();
  });

  it("resumes on a second edge process after the first is killed mid-stream", async () => {
    const [first, second] = [await edge({ NATS_URL: nats.url }), await edge({ NATS_URL: nats.url })];
    services.push(first, second);
    const c = await RawClient.connect(url(first));
    const { rid } = await c.request({ type: "generate", prompt: "write 120 words across edges", params: { seed: 2 } });
    await c.next((f) => f.type === "event" && f.rid === rid && f.seq >= 10);
    await first.kill();
    await c.closed;
    const got = c.events(rid);
    const d = await RawClient.connect(url(second));
    await d.request({ type: "subscribe", rid, after: got.length });
    const rest = await d.untilEnd(rid);
    const all = [...got, ...rest];
    const whole = await RawClient.connect(url(second));
    await whole.request({ type: "subscribe", rid });
    const reference = await whole.untilEnd(rid);
    assert.deepEqual(seqs(all), range(1, reference.length));
    assert.equal(textOf(all), textOf(reference));
    d.close();
    whole.close();
  });

  it("drain on SIGTERM: the edge says goaway and closes with 1001; the worker finishes what it runs", async () => {
    const e = await edge({ NATS_URL: nats.url });
    const w = await worker({ NATS_URL: nats.url, SCRIPTED_TPS: "100", CONCURRENCY: "1" });
    services.push(e, w);
    const c = await RawClient.connect(url(e));
    // Both running workers may take it; stop the one that did.
    const { rid } = await c.request({ type: "generate", prompt: "write 40 words before shutdown", params: { max_tokens: 40 } });
    await c.next((f) => f.type === "event" && f.rid === rid && f.seq >= 2);
    // Its log line may come a moment after the events (another pipe): wait for it, from any worker.
    const workers = services.filter((s) => s.name === "worker");
    const started = await Promise.any(
      workers.map((s) => s.waitForLine((o) => o.msg === "generation started" && o.rid === rid, 15_000).then(() => s)),
    );
    const workerExit = started.stop("SIGTERM", 20_000);
    const events = await c.untilEnd(rid);
    const end = events.at(-1)!.event;
    assert.equal(end.kind === "end" && end.reason, "length");
    assert.equal((await workerExit).code, 0);

    const edgeExit = e.stop("SIGTERM");
    await c.next((f) => f.type === "goaway");
    assert.equal((await c.closed).code, 1001);
    assert.equal((await edgeExit).code, 0);
  });

  it("continue a response whose worker was killed: another worker takes it over (see failover.test.ts)", async () => {
    const env = { NATS_URL: nats.url, SCRIPTED_TPS: "20", TAKEOVER_TIMEOUT: "1s", CONCURRENCY: "1" };
    // Stop earlier tests' workers so the two below are the only ones.
    for (const s of services.filter((s) => s.name === "worker")) await s.stop();
    const [w1, w2] = [await worker(env), await worker(env)];
    const e = await edge({ NATS_URL: nats.url });
    services.push(w1, w2, e);
    const c = await RawClient.connect(url(e));
    const { rid } = await c.request({ type: "generate", prompt: "write 300 words then lose the worker" });
    await c.next((f) => f.type === "event" && f.rid === rid && f.seq >= 3);
    const running = await Promise.any(
      [w1, w2].map((w) => w.waitForLine((o) => o.msg === "generation started" && o.rid === rid, 15_000).then(() => w)),
    );
    await running.kill();
    const events = await c.untilEnd(rid, 60_000);
    const end = events.at(-1)!.event;
    assert.equal(end.kind === "end" && end.reason, "stop");
    assert.equal(events.filter((f) => (f.event.kind as string) === "handover").length, 1);
    assert.deepEqual(seqs(events), range(1, events.length));
    assert.equal(events.filter((f) => f.event.kind === "end").length, 1);
    c.close();
  });

  it("end a response whose only worker was killed: the watching edge closes it with worker_lost", async () => {
    for (const s of services.filter((s) => s.name === "worker")) await s.stop();
    const w = await worker({ NATS_URL: nats.url, SCRIPTED_TPS: "20", TAKEOVER_TIMEOUT: "1s" });
    const e = await edge({ NATS_URL: nats.url, ORPHAN_TIMEOUT: "1s" });
    services.push(w, e);
    const c = await RawClient.connect(url(e));
    const { rid } = await c.request({ type: "generate", prompt: "write 300 words with nobody to take over" });
    await c.next((f) => f.type === "event" && f.rid === rid && f.seq >= 4);
    await w.kill();
    const events = await c.untilEnd(rid, 30_000);
    const end = events.at(-1)!.event;
    assert.equal(end.kind === "end" && end.error?.code, "worker_lost");
    assert.equal(end.kind === "end" && end.usage.completion_tokens, tokenCount(events));
    assert.deepEqual(seqs(events), range(1, events.length));
    c.close();
  });

  it("end it so too when its readers reconnect more often than ORPHAN_TIMEOUT: silence is the log's, not a reader's", async () => {
    for (const s of services.filter((s) => s.name === "worker")) await s.stop();
    const w = await worker({ NATS_URL: nats.url, SCRIPTED_TPS: "20", TAKEOVER_TIMEOUT: "1s" });
    const e = await edge({ NATS_URL: nats.url, ORPHAN_TIMEOUT: "3s" });
    services.push(w, e);
    const c = await RawClient.connect(url(e));
    const { rid } = await c.request({ type: "generate", prompt: "write 300 words for a flapping reader" });
    await c.next((f) => f.type === "event" && f.rid === rid && f.seq >= 4);
    c.close();
    await w.kill();
    // A reader that drops and comes back every second, each time from where it was: every new
    // subscription used to restart the edge's silence clock, so the response never ended.
    let after = 0;
    let end: Frame | undefined;
    const deadline = Date.now() + 30_000;
    while (!end) {
      assert.ok(Date.now() < deadline, "the response ends worker_lost within 30 s although its reader keeps reconnecting");
      const r = await RawClient.connect(url(e));
      await r.request({ type: "subscribe", rid, after });
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      for (const f of r.frames.filter((f) => f.type === "event" && f.rid === rid)) {
        after = Math.max(after, f.seq);
        if (f.event.kind === "end") end = f.event;
      }
      r.close();
    }
    assert.equal(end.error?.code, "worker_lost");
  });

  it("refuse to start on invalid configuration, saying why", async () => {
    const jwt = await runToExit(EDGE, { NATS_URL: nats.url, AUTH: "jwt", JWT_SECRET: "" });
    assert.equal(jwt.code, 2);
    assert.match(jwt.stderr, /JWT_SECRET/);
    const retention = await runToExit(WORKER, { NATS_URL: nats.url, RETENTION: "forever" });
    assert.equal(retention.code, 2);
    assert.match(retention.stderr, /RETENTION/);
  });

  it("apply RETENTION to the existing stream and log that they did", async () => {
    const e = await edge({ NATS_URL: nats.url, RETENTION: "2h" });
    services.push(e);
    const line = await e.waitForLine((o) => o.msg === "updated stream retention" && o.stream === "LLM_EVENTS");
    assert.equal(line.to, "2h");
  });
});
