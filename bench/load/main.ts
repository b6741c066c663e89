// The load process: forked by the bench, one per (workload, target), so that its CPU and
// memory are its own and the same for every target. It runs one job sent over IPC and
// sends back every receipt time; the bench does the arithmetic.

import { now, openSseIdle, openWs, type Conn } from "./conn.js";
import { gate, Limiter, runStream } from "./streams.js";
import type { IdleResult, Job, LoadMessage, StreamsResult } from "./types.js";

const send = (m: LoadMessage): void => void process.send?.(m);

async function streams(job: Exclude<Job, { kind: "idle" }>): Promise<StreamsResult> {
  const limiter = new Limiter(job.connectConcurrency);
  const t0 = now() + 50;
  const burst = job.kind === "burst" ? gate(job.streams.length) : undefined;
  const results = await Promise.all(job.streams.map((spec, i) => runStream(job, spec, i, t0, limiter, burst)));
  const burstAt = burst ? await burst.go : undefined;
  return { kind: "streams", startedAt: t0, endedAt: now(), streams: results, ...(burstAt ? { burstAt } : {}) };
}

/** W5: open `count` sockets, say they are open, hold them until the bench says release. */
async function idle(job: Extract<Job, { kind: "idle" }>): Promise<IdleResult> {
  const limiter = new Limiter(job.connectConcurrency);
  const conns: Conn[] = [];
  let failed = 0;
  let firstError: string | undefined;
  const noop = { frame: () => {}, closed: () => {} };
  await Promise.all(
    Array.from({ length: job.count }, () =>
      limiter
        .run(() => (job.protocol === "sse" ? openSseIdle(job.url) : openWs(job.url, job.protocol === "unbroken", noop)))
        .then(
          (c) => void conns.push(c),
          (err: Error) => {
            failed++;
            firstError ??= err.message;
          },
        ),
    ),
  );
  const released = new Promise<void>((r) => process.once("message", () => r()));
  send({ type: "idle-ready", opened: conns.length, failed });
  await released;
  for (const c of conns) c.close();
  return { kind: "idle", opened: conns.length, failed, ...(firstError ? { firstError } : {}) };
}

process.once("message", (job: Job) => {
  (job.kind === "idle" ? idle(job) : streams(job)).then(
    (result) => send({ type: "result", result }),
    (err: Error) => send({ type: "failed", error: err.stack ?? String(err) }),
  );
});
// The bench went away (or is done with us): nothing here is worth keeping.
process.on("disconnect", () => process.exit(0));
