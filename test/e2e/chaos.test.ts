import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { UnbrokenClient } from "@unbroken/client";
import { WebSocket } from "ws";
import { type GenerationOutput, ScriptedGenerator } from "@unbroken/generators";
import { type GenerationBody, type ResponseRecord, newRid } from "@unbroken/protocol";
import { Broker, silentLog } from "@unbroken/store";
import { type NatsServerHandle, type ServiceHandle, prng, startNatsServer } from "@unbroken/testing";
import { Reader, audit, readLogs, spread } from "../helpers/chaos.js";
import { assertWhole, handovers, runnerOf, startEdge, startWorker, wsUrl } from "../helpers/failover.js";
import { RawClient, seqs } from "../helpers/raw-client.js";
import { Topology } from "../helpers/topology.js";

// Issue 5's chaos suite: tens of concurrent responses read by clients that drop and resume at
// random across two edges, while an edge, a worker and a nats-server node are killed and
// restarted. Then every reader is compared with the stored log. No assertion depends on how
// long anything took; the figures are printed (docs/operations.md, "Guarantees").
//
// Worker failover is required, not tolerated: every response the SIGKILLed worker was running
// must be continued by another worker (a `handover` event by a live worker in its log) and end
// normally. The edges keep their default ORPHAN_TIMEOUT (30 s), above the workers' TAKEOVER_TIMEOUT
// (5 s), as the docs require ("keep ORPHAN_TIMEOUT above TAKEOVER_TIMEOUT"): with equal timeouts an
// edge's probe may end a response `worker_lost` before a worker takes it over, which is the
// documented outcome only when no worker is alive — never the case here.
const RESPONSES = 30;
const CLIENTS = 10;
const TPS = 30;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("chaos: edges, workers and a NATS node die under live traffic", () => {
  let top: Topology;
  const clients: UnbrokenClient[] = [];
  before(async () => {
    top = await Topology.start({
      natsNodes: 3,
      edges: 2,
      workers: 2,
      edgeEnv: { DRAIN_TIMEOUT: "3s" },
      workerEnv: { SCRIPTED_TPS: String(TPS), CONCURRENCY: "16", TAKEOVER_TIMEOUT: "5s", DRAIN_TIMEOUT: "3s" },
    });
  });
  after(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await top.stop();
  });

  it("ends every response exactly once, loses and duplicates nothing, and every reader reads the same text", async () => {
    const seed = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);
    const random = prng(seed);
    const lb = top.lb!;
    for (let i = 0; i < CLIENTS; i++) {
      clients.push(
        new UnbrokenClient({ url: lb.url(), WebSocket, reconnect: { minDelayMs: 50, maxDelayMs: 1_000 }, requestTimeoutMs: 60_000 }),
      );
    }
    // Each response: its generator's handle, and a follower on another client (another socket).
    const readers: Reader[] = [];
    const rids: string[] = [];
    for (let i = 0; i < RESPONSES; i++) {
      const tokens = 360 + Math.floor(random() * 90);
      const handle = clients[i % CLIENTS]!.generate({
        prompt: `chaos ${i}: write ${tokens} words`,
        params: { max_tokens: tokens, seed: i },
      });
      rids.push(handle.rid);
      readers.push(new Reader(handle.rid, "generator", handle));
      const follower = clients[(i + CLIENTS / 2) % CLIENTS]!;
      void handle.accepted.then(
        () => readers.push(new Reader(handle.rid, "follower", follower.subscribe(handle.rid))),
        () => undefined,
      );
      await sleep(30);
    }

    // Random drops for as long as the responses run: one relayed socket cut every 250-500 ms.
    let drops = 0;
    let dropping = true;
    const dropper = (async () => {
      while (dropping) {
        await sleep(250 + random() * 250);
        if (dropping && lb.cutOne((n) => Math.floor(random() * n))) drops++;
      }
    })();

    const faults: Array<{ what: string; at: number; back: number }> = [];
    const fault = async (what: string, kill: () => Promise<unknown>, restart: () => Promise<unknown>, downMs: number): Promise<void> => {
      const at = Date.now();
      await kill();
      await sleep(downMs);
      await restart();
      faults.push({ what, at, back: Date.now() - at });
    };
    const [edge0, edge1] = [top.edges[0]!, top.edges[1]!];
    await sleep(1_500);
    await fault(
      "edge SIGKILL",
      () => edge0.handle.kill(),
      () => top.restart(edge0, "listening"),
      1_500,
    );
    await sleep(1_000);
    const victim = top.workers.reduce((a, b) => (count(b) > count(a) ? b : a));
    const victimRuns = count(victim);
    const victimId = workerId(victim.handle);
    const killedHandle = victim.handle;
    await fault(
      "worker SIGKILL",
      () => victim.handle.kill(),
      () => top.restart(victim, "ready"),
      1_500,
    );
    // What the killed worker was running when it died: started (or continued) and not ended, by
    // its own log. (Its answers take 12-15 s and it dies a few seconds in, so none has ended;
    // a "generation ended" line lost at the SIGKILL would show as a missing handover below.)
    const orphaned = unfinishedRuns(killedHandle.lines);
    await sleep(1_000);
    const cluster = top.cluster!;
    const leader = Math.max(0, cluster.indexOf((await cluster.leaders()).streams.LLM_EVENTS));
    await fault(
      `nats n${leader} SIGKILL (LLM_EVENTS leader)`,
      () => cluster.kill(leader),
      async () => {
        await cluster.restart(leader);
        await cluster.waitHealthy(60_000);
      },
      3_000,
    );
    await sleep(1_000);
    await fault(
      "edge SIGTERM",
      () => edge1.handle.stop("SIGTERM", 15_000),
      () => top.restart(edge1, "listening"),
      500,
    );

    // Every reader must come to its end (a hang fails here, after a generous bound).
    const all = Promise.all(readers.map((r) => r.done));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const bound = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), 120_000)));
    const finished = await Promise.race([all.then(() => "done" as const), bound]);
    clearTimeout(timer);
    dropping = false;
    await dropper;
    await sleep(200);
    const unfinished = readers.filter((r) => !r.end && !r.error).map((r) => `${r.rid} (${r.role}) at seq ${r.seqs.at(-1) ?? 0}`);

    const logs = await readLogs(top.nats.url, rids);
    const a = audit(readers, logs);
    const stalls = faults.map((f) => `${f.what}: readers waited p50/max ${spread(readers.map((r) => r.stallAfter(f.at)))}`);
    const reasons = Object.entries(a.reasons)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ");
    const events = [...logs.values()].reduce((n, l) => n + l.seqs.length, 0);
    process.stdout.write(
      `# chaos (seed ${seed}): ${a.responses} responses, ${a.readers} readers, ${events} events, ${drops} socket drops, ` +
        `killed worker ran ${victimRuns}, ${orphaned.length} of them unfinished at the kill | ended exactly once ${a.endedOnce}/${a.responses} | lost ${a.lost}, duplicated ${a.duplicated}, ` +
        `text mismatches ${a.textMismatches}, log gaps ${a.logGaps}, reader errors ${a.readerErrors.length}, unfinished ${unfinished.length} | ` +
        `ends: ${reasons}\n# chaos recovery: ${stalls.join("; ")}\n`,
    );

    assert.equal(finished, "done", `readers still waiting: ${unfinished.slice(0, 10).join(", ")}`);
    assert.equal(readers.length, 2 * RESPONSES, "every response has its two readers");
    assert.deepEqual(a.readerErrors, []);
    assert.deepEqual(a.problems, []);
    assert.equal(a.endedOnce, RESPONSES);
    assert.equal(a.lost, 0);
    assert.equal(a.duplicated, 0);
    assert.equal(a.textMismatches, 0);
    // Every response ends normally: two workers stay alive throughout (the killed one is
    // restarted under a new id), so no response is without a worker to continue it, and the
    // scripted generator can continue any log.
    for (const [reason] of Object.entries(a.reasons)) {
      assert.ok(["length", "stop"].includes(reason), `unexpected end: ${reason} (${JSON.stringify(a.reasons)})`);
    }
    // The killed worker was running responses (else this run tested no takeover)...
    assert.ok(orphaned.length > 0, `the killed worker ${victimId} had no unfinished response at the kill`);
    // ...and each of them was continued by a live worker: a handover written by another worker.
    const live = new Set(top.workers.map((w) => workerId(w.handle)));
    for (const rid of orphaned) {
      const log = logs.get(rid);
      assert.ok(log, `${rid}: the killed worker ran it, but it is not one of this test's responses`);
      assert.ok(log.handovers.length > 0, `${rid}: the killed worker's response has no handover (kinds: ${log.kinds.slice(-5).join(",")})`);
      for (const h of log.handovers) {
        assert.notEqual(h.worker, victimId, `${rid}: handover at seq ${h.seq} names the killed worker`);
        assert.ok(
          live.has(h.worker),
          `${rid}: handover at seq ${h.seq} by ${h.worker}, not one of the live workers ${[...live].join(", ")}`,
        );
      }
    }
  });
});

describe("chaos: a tool call in flight when its worker is SIGKILLed", () => {
  let nats: NatsServerHandle;
  let broker: Broker;
  const services: ServiceHandle[] = [];
  before(async () => {
    nats = await startNatsServer();
    broker = await Broker.connect({ url: nats.url, name: "chaos-tool-call", retentionMs: 3_600_000, log: silentLog });
  });
  after(async () => {
    await Promise.allSettled(services.map((s) => s.kill()));
    await broker?.close();
    await nats?.stop();
  });

  it("another worker finishes the call: nothing lost or duplicated, the arguments parse, the reasoning is intact", async () => {
    // TAKEOVER_TIMEOUT 1 s keeps the test short; 16 required parameters stream ~65 argument
    // tokens, two seconds at 30 tokens/s, so the kill lands inside the call.
    const env = { NATS_URL: nats.url, SCRIPTED_TPS: "30", TAKEOVER_TIMEOUT: "1s", LOG_LEVEL: "debug" };
    const workers = [await startWorker("ta", env), await startWorker("tb", env)];
    const edge = await startEdge({ NATS_URL: nats.url });
    services.push(...workers, edge);
    const fields = Array.from({ length: 16 }, (_, i) => `field_${i}`);
    const body: GenerationBody = {
      prompt: "Please submit_form with everything you know",
      params: { seed: 4, reasoning_effort: "low" },
      tools: [
        {
          type: "function",
          function: {
            name: "submit_form",
            parameters: { type: "object", properties: Object.fromEntries(fields.map((f) => [f, { type: "integer" }])), required: fields },
          },
        },
      ],
    };
    // Queued straight into the store as an edge queues it, and read through the edge.
    const rid = newRid();
    const record: ResponseRecord = {
      v: 1,
      rid,
      owner: "anonymous",
      status: "queued",
      created_at: new Date().toISOString(),
      request: body,
      steers: [],
      epoch: 0,
    };
    const revision = await broker.records.create(record);
    assert.ok(revision);
    await broker.enqueue({ rid, record, revision });
    const reader = await RawClient.connect(wsUrl(edge));
    assert.equal((await reader.request({ type: "subscribe", rid })).type, "ok");
    const runner = await runnerOf(workers, rid);
    await reader.next(
      (f) => f.type === "event" && f.rid === rid && reader.events(rid).filter((e) => e.event.kind === "tool_args").length >= 3,
    );
    await runner.kill();
    const events = await reader.untilEnd(rid, 60_000);
    reader.close();

    // What the reader got is the stored log, each event once, in order (seq 1..n, one end).
    const stored = (await readLogs(nats.url, [rid])).get(rid);
    const end = assertWhole(events);
    assert.deepEqual(seqs(events), stored?.seqs, "the reader got every stored event once");
    const [handover, ...more] = handovers(events);
    assert.ok(handover && more.length === 0, "one handover");
    assert.notEqual(handover.worker, runner === workers[0] ? "ta" : "tb", "taken over by the other worker");
    const kinds = events.map((e) => e.event.kind);
    const call = kinds.indexOf("tool_call");
    const done = kinds.indexOf("tool_done");
    assert.ok(call < handover.seq - 1 && handover.seq - 1 < done, `the kill landed inside the call: ${kinds.join(",")}`);

    // The call as an uninterrupted scripted answer writes it: same id, each argument delta once.
    const ref = await referenceOutputs(body);
    const refText = (type: string) => ref.map((o) => (o.type === type && "text" in o ? o.text : "")).join("");
    const logText = (kind: string) => events.map((e) => (e.event.kind === kind && "text" in e.event ? e.event.text : "")).join("");
    const toolCall = events[call]?.event as { id: string; name: string };
    const toolDone = events[done]?.event as { id: string; arguments: string };
    assert.deepEqual(toolCall, { kind: "tool_call", ...pick(ref.find((o) => o.type === "tool_call")) });
    assert.equal(toolDone.id, toolCall.id);
    assert.equal(toolDone.arguments, logText("tool_args"), "tool_done holds exactly the joined argument deltas");
    assert.deepEqual(Object.keys(JSON.parse(toolDone.arguments) as object), fields);
    assert.equal(logText("tool_args"), refText("tool_args"));
    assert.ok(
      events.every((e) => e.event.kind !== "tool_args" || (e.event as { id: string }).id === toolCall.id),
      "every delta is the call's",
    );
    // The reasoning was written before the kill, and is whole.
    assert.ok(kinds.lastIndexOf("reasoning") < call);
    assert.equal(logText("reasoning"), refText("reasoning"));
    assert.equal(end.reason, "tool_calls");
    const refEnd = ref.at(-1);
    assert.deepEqual(end.usage, refEnd?.type === "done" ? refEnd.usage : undefined, "usage counts both workers' tokens");
  });
});

/** The outputs of an uninterrupted scripted answer to `body`, computed here (the generator is deterministic). */
async function referenceOutputs(body: GenerationBody): Promise<GenerationOutput[]> {
  const gen = new ScriptedGenerator({ tokensPerSecond: 0 });
  const outputs: GenerationOutput[] = [];
  for await (const out of gen.start({ rid: newRid(), body, steers: [], signal: new AbortController().signal })) outputs.push(out);
  await gen.close();
  return outputs;
}

/** A tool_call output's id and name. */
const pick = (out: GenerationOutput | undefined): { id?: string; name?: string } =>
  out?.type === "tool_call" ? { id: out.id, name: out.name } : {};

/** How many responses a worker process has started (its log). */
function count(member: { handle: { lines: string[] } }): number {
  return member.handle.lines.filter((l) => l.includes('"generation started"')).length;
}

/** The WORKER_ID a worker process logs under (its `ready` line). */
function workerId(handle: { lines: string[] }): string {
  for (const line of handle.lines) {
    const o = parse(line);
    if (o?.msg === "ready" && typeof o.worker === "string") return o.worker;
  }
  throw new Error("worker logged no ready line with its id");
}

/** rids a worker's log shows started or continued and not ended. */
function unfinishedRuns(lines: string[]): string[] {
  const running = new Set<string>();
  for (const line of lines) {
    const o = parse(line);
    const rid = o?.rid;
    if (typeof rid !== "string") continue;
    if (o?.msg === "generation started" || o?.msg === "generation continued") running.add(rid);
    if (o?.msg === "generation ended") running.delete(rid);
  }
  return [...running];
}

function parse(line: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
