import assert from "node:assert/strict";
import { after, before, beforeEach, afterEach, describe, test } from "node:test";
import type { ResponseEvent } from "@unbroken/protocol";
import { Broker, silentLog } from "@unbroken/store";
import { pino } from "pino";
import { scrapeMetrics, startNatsServer, type NatsServerHandle, type Scrape } from "@unbroken/testing";
import WebSocket from "ws";
import { edgeConfigFromEnv } from "../src/config.js";
import { dropReasonOf } from "../src/metrics.js";
import { startEdge, type Edge } from "../src/server.js";

// The edge's /metrics against a real nats-server and a real edge. No worker: the test writes
// a response's events into its log itself (as a worker would), so every count is exact.

let nats: NatsServerHandle;
let writerBroker: Broker;
let edge: Edge;

before(async () => {
  nats = await startNatsServer();
  writerBroker = await Broker.connect({ url: nats.url, name: "test-writer", retentionMs: 3_600_000, log: silentLog });
});
after(async () => {
  await writerBroker?.close();
  await nats?.stop();
});
beforeEach(async () => {
  const config = edgeConfigFromEnv({ NATS_URL: nats.url, PORT: "0", LOG_LEVEL: "silent", WEB_ROOT: "none" });
  edge = await startEdge(config, pino({ level: "silent" }));
});
afterEach(async () => {
  await edge?.close();
});

const scrape = (): Promise<Scrape> => scrapeMetrics(`http://127.0.0.1:${edge.port}/metrics`);

/** Scrapes until `cond` holds: the edge counts a closed socket when its close event comes. */
async function scrapeUntil(cond: (m: Scrape) => boolean, what: string): Promise<Scrape> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const m = await scrape();
    if (cond(m)) return m;
    if (Date.now() > deadline) throw new Error(`${what}: not within 15 s\n${m.text}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// biome-ignore lint/suspicious/noExplicitAny: a frame as it arrived; each test reads the fields it expects
type Frame = Record<string, any>;

/** A bare socket client: every frame kept, awaited by predicate. */
class Client {
  readonly frames: Frame[] = [];
  private waiters: Array<() => void> = [];

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data) => {
      this.frames.push(JSON.parse(data.toString()) as Frame);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static async connect(url: string): Promise<Client> {
    const ws = new WebSocket(url);
    const c = new Client(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    c.send({ type: "hello" });
    await c.next((f) => f.type === "welcome");
    return c;
  }

  send(frame: Frame): void {
    this.ws.send(JSON.stringify(frame));
  }

  async next(pred: (f: Frame) => boolean): Promise<Frame> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const found = this.frames.find(pred);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no such frame within 15 s; got ${JSON.stringify(this.frames)}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }

  events(rid: string): Frame[] {
    return this.frames.filter((f) => f.type === "event" && f.rid === rid);
  }

  async untilEvents(rid: string, count: number): Promise<void> {
    await this.next(() => this.events(rid).length >= count);
  }
}

const START: ResponseEvent = { kind: "start", model: "test", created_at: new Date(0).toISOString() };
const token = (i: number): ResponseEvent => ({ kind: "token", text: ` t${i}` });
const END: ResponseEvent = { kind: "end", reason: "stop", usage: { prompt_tokens: 1, completion_tokens: 3 } };

/** A generate on `c`, answered `accepted`: its rid. */
async function generate(c: Client): Promise<string> {
  c.send({ type: "generate", id: "g", prompt: "hi" });
  const accepted = await c.next((f) => f.id === "g");
  assert.equal(accepted.type, "accepted", JSON.stringify(accepted));
  return accepted.rid as string;
}

describe("edge metrics", () => {
  test("GET /metrics speaks Prometheus' text format and includes the process metrics", async () => {
    const m = await scrape();
    assert.match(m.contentType, /^text\/plain; version=0\.0\.4/);
    assert.ok(m.has("process_cpu_user_seconds_total"), "collectDefaultMetrics");
    assert.equal(m.get("unbroken_edge_sockets"), 0);
    assert.equal(m.get("unbroken_edge_cancels_total"), 0);
  });

  test("a generate streamed to its end: TTFT, stream duration, events, frames, gauges", async () => {
    const c = await Client.connect(edge.url);
    const rid = await generate(c);
    assert.equal((await scrape()).get("unbroken_edge_streams", { transport: "ws" }), 1);
    const w = writerBroker.logs.writer(rid);
    for (const e of [START, token(1), token(2), token(3), END]) await w.append(e);
    await c.untilEvents(rid, 5);

    const m = await scrape();
    assert.equal(m.get("unbroken_edge_sockets"), 1);
    assert.equal(m.get("unbroken_edge_streams", { transport: "ws" }), 0, "the subscription ended with its end");
    assert.equal(m.get("unbroken_edge_generates_total", { existing: "false" }), 1);
    assert.equal(m.get("unbroken_edge_ttft_seconds_count"), 1);
    assert.equal(m.get("unbroken_edge_stream_duration_seconds_count", { transport: "ws" }), 1);
    assert.equal(m.get("unbroken_edge_events_sent_total"), 5);
    assert.equal(m.get("unbroken_edge_frames_received_total"), 2, "hello, generate");
    assert.equal(m.get("unbroken_edge_frames_sent_total"), 7, "welcome, accepted, 5 events");
    assert.equal(m.get("unbroken_edge_resumes_total", { transport: "ws" }), 0);

    c.ws.close(1000);
    const closed = await scrapeUntil((s) => s.get("unbroken_edge_sockets") === 0, "the socket closing");
    assert.equal(closed.sum("unbroken_edge_connection_drops_total"), 0, "a clean close is no drop");
  });

  test("cancel: counted, and timed until its end passes through this edge", async () => {
    const c = await Client.connect(edge.url);
    const rid = await generate(c);
    // No worker: the response stays queued, so the edge settles both itself.
    c.send({ type: "steer", id: "s", rid, text: "be brief" });
    assert.equal((await c.next((f) => f.id === "s")).type, "ok");
    c.send({ type: "cancel", id: "c", rid });
    assert.equal((await c.next((f) => f.id === "c")).type, "ok");
    await c.next((f) => f.type === "event" && f.event.kind === "end");

    const m = await scrape();
    assert.equal(m.get("unbroken_edge_steers_total"), 1);
    assert.equal(m.get("unbroken_edge_cancels_total"), 1);
    assert.equal(m.get("unbroken_edge_cancel_to_end_seconds_count"), 1);
    assert.equal(m.get("unbroken_edge_ttft_seconds_count"), 0, "no token came");
    c.ws.close(1000);
  });

  test("a dropped socket and its resume: a network drop, one resume, the missed events replayed", async () => {
    const a = await Client.connect(edge.url);
    const rid = await generate(a);
    const w = writerBroker.logs.writer(rid);
    for (const e of [START, token(1), token(2), token(3)]) await w.append(e);
    await a.untilEvents(rid, 4);
    a.ws.terminate(); // no close frame: what a lost network looks like to the edge

    const dropped = await scrapeUntil((s) => s.get("unbroken_edge_sockets") === 0, "the drop");
    assert.equal(dropped.get("unbroken_edge_connection_drops_total", { reason: "network" }), 1);
    assert.equal(dropped.get("unbroken_edge_streams", { transport: "ws" }), 0);
    const replayedBefore = dropped.get("unbroken_edge_events_replayed_total");

    // Written while the client was away: what the resumed subscription reads from the log.
    await w.append(token(4));
    await w.append(token(5));
    const b = await Client.connect(edge.url);
    b.send({ type: "subscribe", id: "r", rid, after: 4 });
    await b.untilEvents(rid, 2);
    // The stored read was bounded when it began: what follows now comes live.
    await w.append(token(6));
    await w.append(END);
    await b.untilEvents(rid, 4);
    assert.deepEqual(
      b.events(rid).map((f) => f.seq),
      [5, 6, 7, 8],
    );

    const m = await scrape();
    assert.equal(m.get("unbroken_edge_resumes_total", { transport: "ws" }), 1);
    assert.equal(m.get("unbroken_edge_events_replayed_total") - replayedBefore, 2, "the two events missed while away");
    assert.equal(m.get("unbroken_edge_ttft_seconds_count"), 1, "the first socket's generate only");
    b.ws.close(1000);
  });

  test("a socket that stops answering pings is a heartbeat drop, whatever close code it ends with", async () => {
    await edge.close();
    const config = edgeConfigFromEnv({ NATS_URL: nats.url, PORT: "0", LOG_LEVEL: "silent", WEB_ROOT: "none", HEARTBEAT: "100ms" });
    edge = await startEdge(config, pino({ level: "silent" }));
    const c = await Client.connect(edge.url);
    // Not reading: the pings are never seen, so never answered.
    (c.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const m = await scrapeUntil((s) => s.get("unbroken_edge_sockets") === 0, "the heartbeat closing the socket");
    assert.equal(m.get("unbroken_edge_connection_drops_total", { reason: "heartbeat" }), 1);
    assert.equal(m.sum("unbroken_edge_connection_drops_total"), 1);
    c.ws.terminate();
  });

  test("errors are counted by code: a bad frame, an unknown rid, an HTTP 404", async () => {
    const c = await Client.connect(edge.url);
    c.ws.send("{not json");
    await c.next((f) => f.type === "error" && f.code === "bad_request");
    c.send({ type: "subscribe", id: "x", rid: "nosuchrid123" });
    await c.next((f) => f.id === "x");
    assert.equal((await fetch(`http://127.0.0.1:${edge.port}/nowhere`)).status, 404);

    const m = await scrape();
    assert.equal(m.get("unbroken_edge_errors_total", { code: "bad_request", transport: "ws" }), 1);
    assert.equal(m.get("unbroken_edge_errors_total", { code: "not_found", transport: "ws" }), 1);
    assert.equal(m.get("unbroken_edge_errors_total", { code: "not_found", transport: "http" }), 1);
    assert.equal(m.sum("unbroken_edge_errors_total"), 3);
    c.ws.close(1000);
  });

  test("an SSE reader resuming with Last-Event-ID counts as an sse resume and stream", async () => {
    const c = await Client.connect(edge.url);
    const rid = await generate(c);
    const w = writerBroker.logs.writer(rid);
    for (const e of [START, token(1), token(2), END]) await w.append(e);
    await c.untilEvents(rid, 4);
    const res = await fetch(`http://127.0.0.1:${edge.port}/v1/responses/${rid}/events`, { headers: { "last-event-id": "2" } });
    const body = await res.text();
    assert.equal((body.match(/^id: /gm) ?? []).length, 2);

    const m = await scrape();
    assert.equal(m.get("unbroken_edge_resumes_total", { transport: "sse" }), 1);
    assert.equal(m.get("unbroken_edge_stream_duration_seconds_count", { transport: "sse" }), 1);
    assert.equal(m.get("unbroken_edge_streams", { transport: "sse" }), 0);
    c.ws.close(1000);
  });
});

test("dropReasonOf: clean closes are no drop; 1006 is the network; protocol violations; anything else", () => {
  assert.equal(dropReasonOf(1000), undefined);
  assert.equal(dropReasonOf(1001), undefined);
  assert.equal(dropReasonOf(1005), undefined);
  assert.equal(dropReasonOf(1006), "network");
  assert.equal(dropReasonOf(1009), "protocol");
  assert.equal(dropReasonOf(1007), "protocol");
  assert.equal(dropReasonOf(4000), "other");
});
