// W0..W5: what each workload asks of a target, and the record every workload leaves for the report (W6 is in burst.ts, W7 in history.ts).

import path from "node:path";
import { analyzeCancel, analyzeResume, analyzeStreams, type CancelMetrics, type ResumeMetrics, type StreamMetrics } from "./analyze.js";
import type { Params, Workload } from "./args.js";
import type { BurstMetrics } from "./burst.js";
import { captureGoProfile } from "./go-profile.js";
import type { HistoryMetrics } from "./history.js";
import type { StreamSpec } from "./load/types.js";
import { measureIdle, measureStreams, withTarget, type Usage } from "./measure.js";
import { nofileLimit, raiseNofile } from "./proc.js";
import type { Summary } from "./stats.js";
import type { RunningTarget, Target } from "./targets/target.js";

export interface RunRecord {
  workload: Workload;
  /** e.g. "1000 × 50 tok/s × 500". */
  label: string;
  target: string;
  usage: Usage;
  /** W1: the best "delivered tok/s" can be (all tokens, on time, starts spread over the ramp). */
  offeredTokPerS?: number;
  /** CPU seconds per million delivered tokens, per role and for all server roles ("total"). */
  cpuPerMTok?: Record<string, number>;
  /** KiB of RSS per connection: the connection-holding process, and all server processes. */
  rssPerConnKiB?: { conn: number; all: number };
  stream?: StreamMetrics;
  /** W0 on an idle target, after its first request. */
  ttftIdleMs?: Summary;
  /** W0: the added TTFT of the target's first request. */
  ttftColdMs?: number;
  resume?: ResumeMetrics;
  cancel?: CancelMetrics;
  idle?: { sockets: number; opened: number; failed: number; firstError?: string };
  burst?: BurstMetrics;
  /** W7: probes on an empty and a full event stream, the fill, and what grew. */
  history?: HistoryMetrics;
  notes: string[];
}

export interface Context {
  params: Params;
  /** A tag unique to this run, so rids never collide in the broker. */
  tag: string;
  profileDir?: string;
  /** pid → role of each profiled process, to name its .cpuprofile file. */
  profiled: Map<number, string>;
  log(msg: string): void;
}

const connRole = (pids: Record<string, number>): string => ("edge" in pids ? "edge" : "server");

let ridCounter = 0;
export function specs(ctx: Context, n: number, tokens: number, rampMs: number, prefix: string): StreamSpec[] {
  return Array.from({ length: n }, (_, i) => ({
    rid: `b${ctx.tag}${prefix}${(++ridCounter).toString(36).padStart(6, "0")}`,
    prompt: `write ${tokens} words about rivers, part ${i}`,
    maxTokens: tokens,
    startAt: n > 1 ? (rampMs * i) / n : 0,
  }));
}

function perMTok(usage: Usage, tokens: number): Record<string, number> {
  const out: Record<string, number> = { total: (usage.serverCpuS / tokens) * 1e6 };
  for (const [role, s] of Object.entries(usage.cpuS)) out[role] = (s / tokens) * 1e6;
  return out;
}

function perConn(
  before: Record<string, number>,
  after: Record<string, number>,
  conns: number,
  pids: Record<string, number>,
): { conn: number; all: number } {
  const d = (r: string): number => (after[r] ?? Number.NaN) - (before[r] ?? Number.NaN);
  const all = Object.keys(pids).reduce((a, r) => a + d(r), 0);
  return { conn: d(connRole(pids)) / conns, all: all / conns };
}

const durationMs = (tokens: number, tps: number): number => (tps > 0 ? (tokens / tps) * 1000 : tokens);

/** Tokens of a W0 probe: enough for a first token, few enough to end soon. */
const PROBE_TOKENS = 3;

/**
 * nats-server's CPU profile over the W1 job's ramp and streaming (`--profile`), beside the V8
 * profiles of edge and worker: the server's share is the largest fixed cost per event.
 */
function natsCpuProfile(port: number, dir: string, streams: number, ms: number): Promise<boolean> {
  return captureGoProfile(port, Math.max(1, Math.floor(ms / 1000)), path.join(dir, `NATS.${streams}-streams.pprof`));
}

/** W0's idle probes: the warm ones, and the target's first request alone. */
export interface IdleProbes {
  /** The `n` probes after the first: `probeTtftAddedMs` is the transport's added TTFT. */
  metrics: StreamMetrics;
  /** The added TTFT of the target's first request, sent before them (code not yet compiled, caches cold). */
  coldMs: number | undefined;
}

/**
 * W0's idle probes (W7 takes them too): one generate first, reported on its own, then `n` of
 * PROBE_TOKENS tokens, one at a time on one connection attempt at a time. The first request a
 * process serves compiles its code paths (17–20 ms on ours, against 4 ms after): it happens
 * once per process, so with 20 probes it alone made the p99. Every target gets the same first
 * request, and its figure is printed beside the others rather than dropped.
 */
export async function idleProbes(rt: RunningTarget, ctx: Context, n: number, prefix: string): Promise<IdleProbes> {
  const { tps } = ctx.params;
  const gap = durationMs(PROBE_TOKENS + 2, tps) + 100;
  const run = async (count: number, tag: string): Promise<StreamMetrics> => {
    const probes = specs(ctx, count, PROBE_TOKENS, 0, tag).map((s, i) => ({ ...s, startAt: i * gap, probe: true }));
    const { result } = await measureStreams(rt, {
      kind: "streams",
      protocol: rt.protocol,
      url: rt.url,
      streams: probes,
      timeoutMs: count * gap + 30_000,
      connectConcurrency: 1,
    });
    return analyzeStreams(result, await rt.stamps(), tps, { latency: false });
  };
  const cold = await run(1, `${prefix}0`);
  const metrics = await run(n, prefix);
  return { metrics, coldMs: cold.probeTtftAddedMs?.max };
}

/**
 * W1 at `streams` streams (with W0's probes beside it), preceded by W0's idle probes when W0 is
 * selected and `withW0` (the first W1 shape carries W0).
 */
export async function runW01(target: Target, ctx: Context, wanted: Set<Workload>, streams: number, withW0: boolean): Promise<RunRecord[]> {
  const p = { ...ctx.params, streams };
  const out: RunRecord[] = [];
  const concurrency = p.streams + p.loadProbes + p.idleProbes;
  const profileDir = target.name === "unbroken" ? ctx.profileDir : undefined;
  await withTarget(target, { tps: p.tps, concurrency, ...(profileDir ? { profileDir } : {}) }, async (rt) => {
    if (profileDir) for (const [role, pid] of Object.entries(rt.pids)) ctx.profiled.set(pid, role);
    const idle = wanted.has("W0") && withW0 ? await idleProbes(rt, ctx, p.idleProbes, "i") : undefined;
    const d = durationMs(p.tokens, p.tps);
    const main = specs(ctx, p.streams, p.tokens, p.rampMs, "l");
    const probes = specs(ctx, p.loadProbes, PROBE_TOKENS, 0, "p").map((s, i) => ({
      ...s,
      probe: true,
      startAt: p.rampMs + d * (0.2 + (0.6 * i) / Math.max(1, p.loadProbes)),
    }));
    const job = {
      kind: "streams" as const,
      protocol: rt.protocol,
      url: rt.url,
      streams: [...main, ...probes],
      timeoutMs: p.rampMs + 3 * d + 30_000,
      connectConcurrency: p.connectConcurrency,
    };
    ctx.log(`  ${target.name}: ${p.streams} streams × ${p.tps} tok/s × ${p.tokens}`);
    const natsProfile =
      profileDir && rt.broker?.profPort ? natsCpuProfile(rt.broker.profPort, profileDir, p.streams, p.rampMs + d) : undefined;
    const { result, usage } = await measureStreams(rt, job);
    await natsProfile;
    const m = analyzeStreams(result, await rt.stamps(), p.tps, { latency: true });
    const notes = noteStreams(m);
    const rec: RunRecord = {
      workload: "W1",
      label: `${p.streams} × ${p.tps} tok/s × ${p.tokens}`,
      target: target.name,
      usage,
      stream: m,
      notes,
    };
    rec.cpuPerMTok = perMTok(usage, m.tokensDelivered);
    rec.rssPerConnKiB = perConn(usage.rssBeforeKiB, usage.rssPeakKiB, p.streams, rt.pids);
    rec.offeredTokPerS = (p.streams * p.tokens) / ((p.rampMs + d) / 1000);
    if (wanted.has("W0") && withW0)
      out.push({
        workload: "W0",
        label: `idle, and beside W1 at ${streams} streams`,
        target: target.name,
        usage,
        stream: m,
        ...(idle?.metrics.probeTtftAddedMs ? { ttftIdleMs: idle.metrics.probeTtftAddedMs } : {}),
        ...(idle?.coldMs !== undefined ? { ttftColdMs: idle.coldMs } : {}),
        notes: [],
      });
    if (wanted.has("W1")) out.push(rec);
  });
  return out;
}

function noteStreams(m: StreamMetrics): string[] {
  const notes: string[] = [];
  if (m.errors) notes.push(`${m.errors} streams failed (${m.firstError})`);
  if (m.missingStamps) notes.push(`${m.missingStamps} responses without a generator stamp (not in latency)`);
  if (m.countMismatch) notes.push(`${m.countMismatch} responses whose token count differs from usage.completion_tokens`);
  if (m.lost || m.dup) notes.push(`PROTOCOL VIOLATION: ${m.lost} events lost, ${m.dup} duplicated (must be 0)`);
  return notes;
}

/** W2: as fast as the generator can go, at each stream count. */
export async function runW2(target: Target, ctx: Context): Promise<RunRecord[]> {
  const p = ctx.params;
  const out: RunRecord[] = [];
  for (const n of p.w2Streams) {
    await withTarget(target, { tps: 0, concurrency: n }, async (rt) => {
      ctx.log(`  ${target.name}: ${n} streams × ${p.w2Tokens} tokens, as fast as possible`);
      const job = {
        kind: "streams" as const,
        protocol: rt.protocol,
        url: rt.url,
        streams: specs(ctx, n, p.w2Tokens, 0, "f"),
        timeoutMs: 60_000 + (n * p.w2Tokens) / 2,
        connectConcurrency: p.connectConcurrency,
      };
      const { result, usage } = await measureStreams(rt, job);
      const m = analyzeStreams(result, await rt.stamps(), 0, { latency: false });
      const rec: RunRecord = {
        workload: "W2",
        label: `${n} × max × ${p.w2Tokens}`,
        target: target.name,
        usage,
        stream: m,
        notes: noteStreams(m),
      };
      rec.cpuPerMTok = perMTok(usage, m.tokensDelivered);
      out.push(rec);
    });
  }
  return out;
}

/** W3: every client drops its socket `drops` times mid-stream and resumes after offlineMs. */
export async function runW3(target: Target, ctx: Context): Promise<RunRecord[]> {
  const p = ctx.params;
  return withTarget(target, { tps: p.tps, concurrency: p.w3Streams }, async (rt) => {
    ctx.log(`  ${target.name}: ${p.w3Streams} streams, ${p.drops} drops each, ${p.offlineMs} ms offline`);
    const d = durationMs(p.tokens, p.tps);
    const job = {
      kind: "resume" as const,
      protocol: rt.protocol,
      url: rt.url,
      streams: specs(ctx, p.w3Streams, p.tokens, p.rampMs, "r"),
      drops: p.drops,
      offlineMs: p.offlineMs,
      timeoutMs: p.rampMs + 3 * d + p.drops * p.offlineMs + 30_000,
      connectConcurrency: p.connectConcurrency,
    };
    const { result, usage } = await measureStreams(rt, job);
    const m = analyzeStreams(result, await rt.stamps(), p.tps, { latency: false });
    const label = `${p.w3Streams} × ${p.drops} drops, ${p.offlineMs} ms away`;
    return [{ workload: "W3", label, target: target.name, usage, stream: m, resume: analyzeResume(result), notes: noteStreams(m) }];
  });
}

/** W4: cancel each response after `cancelAfter` tokens. */
export async function runW4(target: Target, ctx: Context): Promise<RunRecord[]> {
  const p = ctx.params;
  return withTarget(target, { tps: p.tps, concurrency: p.w4Streams }, async (rt) => {
    ctx.log(`  ${target.name}: ${p.w4Streams} streams, cancel after ${p.cancelAfter} tokens`);
    const d = durationMs(p.tokens, p.tps);
    const job = {
      kind: "cancel" as const,
      protocol: rt.protocol,
      url: rt.url,
      streams: specs(ctx, p.w4Streams, p.tokens, p.rampMs, "c"),
      cancelAfter: p.cancelAfter,
      timeoutMs: p.rampMs + 3 * d + 30_000,
      connectConcurrency: p.connectConcurrency,
    };
    const { result, usage } = await measureStreams(rt, job);
    const m = analyzeStreams(result, await rt.stamps(), p.tps, { latency: false });
    const notes = noteStreams(m).filter((n) => !n.includes("completion_tokens"));
    return [
      {
        workload: "W4",
        label: `${p.w4Streams} × cancel after ${p.cancelAfter}`,
        target: target.name,
        usage,
        cancel: analyzeCancel(result),
        notes,
      },
    ];
  });
}

/** W5: `sockets` idle connections held open on one server process. */
export async function runW5(target: Target, ctx: Context): Promise<RunRecord[]> {
  const p = ctx.params;
  const notes: string[] = [];
  const spare = 512;
  const hard = nofileLimit().hard;
  let sockets = p.w5Sockets;
  if (sockets + spare > hard) {
    sockets = Math.max(1, hard - spare);
    notes.push(`scaled down from ${p.w5Sockets} to ${sockets} sockets: the open-files hard limit is ${hard}`);
  }
  return withTarget(target, { tps: p.tps, concurrency: 1 }, async (rt) => {
    const role = connRole(rt.pids);
    const soft = raiseNofile(rt.pids[role] ?? 0, sockets + spare);
    if (soft < sockets + spare) notes.push(`${role} could open only ${soft} files; expect failures`);
    ctx.log(`  ${target.name}: ${sockets} idle sockets`);
    const job = { kind: "idle" as const, protocol: rt.protocol, url: rt.url, count: sockets, connectConcurrency: p.connectConcurrency };
    const { result, rssOpenKiB, usage } = await measureIdle(rt, job, sockets + spare);
    if (result.failed) notes.push(`${result.failed} sockets failed to open (${result.firstError})`);
    const rec: RunRecord = {
      workload: "W5",
      label: `${sockets} idle sockets`,
      target: target.name,
      usage,
      idle: { sockets, ...result },
      notes,
    };
    rec.rssPerConnKiB = perConn(usage.rssBeforeKiB, rssOpenKiB, Math.max(1, result.opened), rt.pids);
    return [rec];
  });
}
