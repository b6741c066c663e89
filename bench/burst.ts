// W6: a burst of generates. Every client is connected first (a WebSocket client holds its
// socket before it asks; an SSE request is its own connection, so SSE connects inside the
// burst, as a crowd of POSTs would), then all generates leave at one instant. Each is timed
// from that instant to the first event of its answer: the request path under a crowd, which
// a steady ramp (W1) never shows.

import type { StreamsResult } from "./load/types.js";
import { measureStreams, withTarget } from "./measure.js";
import type { Stamp } from "./stamps.js";
import { summarize, Values, type Summary } from "./stats.js";
import type { Target } from "./targets/target.js";
import { specs, type Context, type RunRecord } from "./workloads.js";

export interface BurstMetrics {
  streams: number;
  /** Responses whose first event arrived. */
  started: number;
  errors: number;
  firstError?: string;
  /** The burst's instant → the answer's first event (ms). */
  startMs: Summary;
  /** The burst's instant → the generator began (queueing, pickup; ms). */
  requestPathMs: Summary;
  /** Our protocol only: the burst's instant → `accepted` (the edge stored and queued it; ms). */
  acceptedMs: Summary;
}

export function analyzeBurst(r: StreamsResult, stamps: Map<string, Stamp>): BurstMetrics {
  const at = r.burstAt ?? Number.NaN;
  const start = new Values();
  const path = new Values();
  const accepted = new Values();
  for (const s of r.streams) {
    accepted.push((s.acceptedAt ?? Number.NaN) - at);
    start.push((s.firstEventAt ?? Number.NaN) - at);
    path.push((stamps.get(s.rid)?.began ?? Number.NaN) - at);
  }
  const errs = r.streams.filter((s) => s.error !== undefined);
  return {
    streams: r.streams.length,
    started: r.streams.filter((s) => s.firstEventAt !== undefined).length,
    errors: errs.length,
    ...(errs[0] ? { firstError: `${errs[0].rid}: ${errs[0].error}` } : {}),
    startMs: summarize(start.view()),
    requestPathMs: summarize(path.view()),
    acceptedMs: summarize(accepted.view()),
  };
}

/** W6 on one target: `w6Streams` generates of `w6Tokens` tokens at `tps`, sent at one instant. */
export async function runW6(target: Target, ctx: Context): Promise<RunRecord[]> {
  const p = ctx.params;
  const n = p.w6Streams;
  const profileDir = target.name === "unbroken" ? ctx.profileDir : undefined;
  return withTarget(target, { tps: p.tps, concurrency: n, ...(profileDir ? { profileDir } : {}) }, async (rt) => {
    if (profileDir) for (const [role, pid] of Object.entries(rt.pids)) ctx.profiled.set(pid, role);
    ctx.log(`  ${target.name}: ${n} generates at once (${p.w6Tokens} tokens each)`);
    const job = {
      kind: "burst" as const,
      protocol: rt.protocol,
      url: rt.url,
      streams: specs(ctx, n, p.w6Tokens, 0, "b"),
      timeoutMs: 60_000 + (p.w6Tokens / p.tps) * 3000,
      connectConcurrency: p.connectConcurrency,
    };
    const { result, usage } = await measureStreams(rt, job);
    const burst = analyzeBurst(result, await rt.stamps());
    const notes: string[] = [];
    if (burst.errors) notes.push(`${burst.errors} of ${n} failed (${burst.firstError})`);
    return [{ workload: "W6", label: `${n} at once`, target: target.name, usage, burst, notes }];
  });
}
