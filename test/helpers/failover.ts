import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { EventFrame } from "@unbroken/protocol";
import { NatsTools, spawnService, type ServiceHandle } from "@unbroken/testing";
import { type RawClient, range, seqs, textOf } from "./raw-client.js";

// Shared by the worker failover tests: real worker and edge processes, the log as the
// client saw it, and the log as stored (with each event's msg id, which names the epoch).

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const EDGE = path.join(root, "packages/cli/dist/src/edge.js");
export const WORKER = path.join(root, "packages/cli/dist/src/worker.js");

export const startEdge = (env: Record<string, string>): Promise<ServiceHandle> =>
  spawnService({ name: "edge", script: EDGE, env: { PORT: "0", ...env }, readyMsg: "listening" });

export const startWorker = (id: string, env: Record<string, string>): Promise<ServiceHandle> =>
  spawnService({
    name: `worker ${id}`,
    script: WORKER,
    env: { WORKER_ID: id, METRICS_PORT: "0", ...env },
    readyMsg: "ready",
    timeoutMs: 30_000,
  });

export const wsUrl = (edge: ServiceHandle): string => `ws://127.0.0.1:${edge.port}/v1/ws`;

/** The worker among `workers` that logged starting rid. */
export async function runnerOf(workers: ServiceHandle[], rid: string): Promise<ServiceHandle> {
  const started = (o: { msg?: string; rid?: string }): boolean => o.msg === "generation started" && o.rid === rid;
  return Promise.any(workers.map((w) => w.waitForLine(started, 30_000).then(() => w)));
}

/** `kind: "handover"` events of a log. */
export function handovers(events: EventFrame[]): Array<{ seq: number; worker: string; epoch: number; reason: string }> {
  return events.flatMap((e) => {
    const ev = e.event as unknown as { kind: string; worker: string; epoch: number; reason: string };
    return ev.kind === "handover" ? [{ seq: e.seq, worker: ev.worker, epoch: ev.epoch, reason: ev.reason }] : [];
  });
}

/** Checks what every response must satisfy: seq 1..n, one `end`, last. Returns that end. */
export function assertWhole(events: EventFrame[]): Extract<EventFrame["event"], { kind: "end" }> {
  assert.deepEqual(seqs(events), range(1, events.length), "seq is contiguous from 1");
  const ends = events.filter((e) => e.event.kind === "end");
  assert.equal(ends.length, 1, "exactly one end");
  const end = events.at(-1)?.event;
  assert.ok(end?.kind === "end", "end is last");
  return end;
}

/** An uninterrupted run of the same request on a fresh rid: the text a failover must equal. */
export async function reference(c: RawClient, frame: Record<string, unknown>): Promise<{ text: string; events: EventFrame[] }> {
  const { rid } = await c.request({ type: "generate", ...frame });
  const events = await c.untilEnd(rid, 60_000);
  return { text: textOf(events), events };
}

/** Every stored event of rid with its msg id (`<rid>:<seq>:<epoch>` for worker writes). */
export async function storedMsgIds(natsUrl: string, rid: string): Promise<Array<{ seq: number; msgId: string }>> {
  const tools = await NatsTools.connect(natsUrl);
  try {
    return (await tools.events(rid)).map(({ seq, msgId }) => ({ seq, msgId }));
  } finally {
    await tools.close();
  }
}

/** The epoch in a worker's msg id, or undefined for an id without one. */
export const epochOf = (msgId: string): number | undefined => {
  const parts = msgId.split(":");
  return parts.length === 3 ? Number(parts[2]) : undefined;
};

/** Milliseconds from `since` until the first frame matching `pred` arrives at `c`. */
export async function msUntil(
  c: RawClient,
  since: number,
  pred: (f: Record<string, unknown>) => boolean,
  timeoutMs = 60_000,
): Promise<number> {
  await c.next(pred, timeoutMs);
  return Date.now() - since;
}
