// Preloaded (NODE_OPTIONS=--import) into the worker and into the baseline servers when
// BENCH_STAMP_FILE is set. Nothing is added to any event or frame: the stamps go to a file
// the bench reads after the workload, so the wire stays as it is.
//
// Per response it records:
//  - `began`: when the scripted generator began pacing. Token k is due at began + k/tps.
//    Taken when the runner creates the session's iterator, in the same synchronous turn as
//    the first next(), where the generator reads performance.now() as its own `began`.
//  - when each token was actually released: when the session's pacing wait for it ended
//    (the session computes a step first, then waits for its due time, then yields it; the
//    stamp is taken in a reaction attached before the session's own await). Node timers can
//    fire up to a loop turn early, so a token may leave before it is due; the bench measures
//    from the earlier of the two times. (Until the session paced after computing its step,
//    the stamp wrapped the text source's next(); a session without `pace` still gets that.)
// The cost in the measured process: a clock reading and an array push per token, and a
// file append every 200 ms. The baselines run the same generator with the same preload.

import { appendFileSync } from "node:fs";
import { ScriptedGenerator, type GenerationJob, type GenerationSession } from "@unbroken/generators";

const file = process.env.BENCH_STAMP_FILE;

interface Times {
  began: number;
  flushed: number;
  pending: number[];
}

if (file) {
  const live = new Map<string, Times>();
  let lines: string[] = [];
  const flush = (): void => {
    for (const [rid, t] of live) {
      if (t.pending.length === 0) continue;
      lines.push(`t ${rid} ${t.flushed} ${t.pending.map((x) => (x - t.began).toFixed(3)).join(" ")}\n`);
      t.flushed += t.pending.length;
      t.pending = [];
    }
    if (lines.length > 0) appendFileSync(file, lines.join(""));
    lines = [];
  };
  setInterval(flush, 200).unref();
  process.on("exit", flush);
  const clock = (): number => performance.timeOrigin + performance.now();

  const start = ScriptedGenerator.prototype.start;
  ScriptedGenerator.prototype.start = function (this: ScriptedGenerator, job: GenerationJob): GenerationSession {
    const session = start.call(this, job);
    const times: Times = { began: Number.NaN, flushed: 0, pending: [] };
    // The session's pacing wait (a private method), or else its text source (a private field
    // of older versions): wrapped when there, skipped when a later version has moved both
    // (then only `began` is recorded, and "generator late" shows –).
    const own = session as unknown as { pace?: (at: number) => Promise<void>; text?: { next?: () => string } };
    const text = own.text;
    if (typeof own.pace === "function") {
      const pace = own.pace.bind(session);
      own.pace = (at) => {
        const released = pace(at);
        void released.then(() => times.pending.push(clock()));
        return released;
      };
    } else if (text && typeof text.next === "function") {
      const next = text.next.bind(text);
      text.next = () => {
        times.pending.push(clock());
        return next();
      };
    }
    const iterate = session[Symbol.asyncIterator].bind(session);
    Object.defineProperty(session, Symbol.asyncIterator, {
      value: () => {
        times.began = clock();
        live.set(job.rid, times);
        lines.push(`b ${job.rid} ${times.began.toFixed(3)}\n`);
        return iterate();
      },
    });
    return session;
  };
}
