// W7, history scale: the same probes on an empty event stream and on one holding a long
// history of finished responses (W7_RESPONSES × W7_EVENTS, written through the store's own
// operations), on one fresh nats-server of its own, so "empty" means empty. Probes: resume
// from the middle of a finished response, replay of one from 0, generate → first token, and
// nats-server's memory and disk. Unbroken only.

import { EVENTS_STREAM, RESPONSES_BUCKET, RID_OWNERS_BUCKET } from "@unbroken/protocol";
import { Broker, silentLog } from "@unbroken/store";
import { freePort } from "@unbroken/testing";
import { fillHistory, goHeap, storeDisk, type FillResult, type GoHeap } from "./history-fill.js";
import { readProbes, type ReadProbes } from "./history-probes.js";
import { startProbe, withTarget, type Usage } from "./measure.js";
import { setTimeout as sleep } from "node:timers/promises";
import { cpuSeconds, rssSnapshot } from "./proc.js";
import { summarize, type Summary } from "./stats.js";
import type { RunningTarget } from "./targets/target.js";
import { unbrokenTarget } from "./targets/unbroken.js";
import { idleProbes, type Context, type RunRecord } from "./workloads.js";

/** RETENTION's default, as edge and worker run here: a broker with another one would change the streams' max age. */
const RETENTION_MS = 24 * 3600_000;
/** Probes of each kind run and thrown away before the empty stack is measured (JIT, caches). */
const WARMUP = 10;
/**
 * How long the history rests before its heap is read: nats-server drops a block's cache a few
 * seconds after its last use, so what is left then is what the history itself holds.
 */
const REST_MS = 10_000;

/** nats-server counts as settled after a bulk write once it uses less than this share of a core for a second. */
const QUIET_CORES = 0.05;
const QUIET_MAX_MS = 30_000;

export interface HistoryPhase {
  /** Responses and events written so far (by the fill; the generate probes add a few). */
  responses: number;
  events: number;
  /** Resume: subscribe after the middle seq → first missed event, and → end (ms). */
  resumeFirstMs: Summary;
  resumeEndMs: Summary;
  /** Replay from 0: subscribe → end (ms). */
  replayEndMs: Summary;
  /** generate sent → first token, minus the generator's own time to it (ms), one at a time. */
  ttftAddedMs: Summary;
  errors: number;
  firstError?: string;
  /** After this phase's probes. */
  rssKiB: Record<string, number>;
  /** Bytes on disk: the store dir (`all`) and each stream's directory. */
  diskBytes: Record<string, number>;
  /** nats-server's live heap after a forced GC (read last: the GC changes what RSS shows next). */
  heap?: GoHeap;
}

export interface HistoryMetrics {
  eventsPerResponse: number;
  /** Responses written at once by the fill (and the seed). */
  window: number;
  probes: number;
  empty: HistoryPhase;
  full: HistoryPhase;
  fill: FillResult;
  /** nats-server (and edge, worker) RSS right after the fill, and seconds from there to `full`'s reading. */
  rssAfterFillKiB: Record<string, number>;
  /** Seconds nats-server took to settle after the fill (see settle), before the full probes. */
  quietS: number;
  /**
   * nats-server's live heap once the fill's block caches have expired (REST_MS idle after it
   * settled), before any probe reads an old block: what the history itself keeps in memory.
   */
  heapAtRest?: GoHeap;
  settleS: number;
  /** Disk the fill added, per event it wrote: all of the store dir, and the events stream alone. */
  bytesPerEvent: { all: number; events: number };
}

const ridOf =
  (tag: string) =>
  (i: number): string =>
    `h${tag}${i.toString(36).padStart(7, "0")}`;

/**
 * `n` indices in [0, to) at random, none read before (`read`, which keeps them): a response
 * an edge has served once may answer from its memory. Repeats only when too few are left.
 */
function pick(n: number, to: number, read: Set<number>): number[] {
  const out: number[] = [];
  if (to - read.size < n) {
    for (let i = 0; out.length < n; i++) out.push(i % to);
    return out;
  }
  while (out.length < n) {
    const i = Math.floor(Math.random() * to);
    if (read.has(i)) continue;
    read.add(i);
    out.push(i);
  }
  return out;
}

function note(phase: string, p: ReadProbes, out: { errors: number; firstError?: string }): void {
  out.errors += p.errors;
  if (p.firstError && !out.firstError) out.firstError = `${phase}: ${p.firstError}`;
}

/** generate → first token, one probe at a time: W0's idle probes. */
async function ttftProbes(
  rt: RunningTarget,
  ctx: Context,
  n: number,
  prefix: string,
): Promise<{ ttft: Summary; errors: number; first?: string }> {
  const { metrics: m } = await idleProbes(rt, ctx, n, prefix);
  return { ttft: m.probeTtftAddedMs ?? summarize([]), errors: m.errors, ...(m.firstError ? { first: m.firstError } : {}) };
}

interface Probing {
  rt: RunningTarget;
  ctx: Context;
  storeDir: string;
  events: number;
  rid(i: number): string;
  /** Responses probed so far (each is read once). */
  read: Set<number>;
  /** nats-server's profiling port (its heap). */
  profPort: number;
}

/** One phase's probes on responses [0, to) of the history, then RSS and disk. */
async function probePhase(s: Probing, to: number, name: string): Promise<Omit<HistoryPhase, "responses" | "events">> {
  const n = s.ctx.params.w7Probes;
  const picked = pick(2 * n, to, s.read).map(s.rid);
  const out: { errors: number; firstError?: string } = { errors: 0 };
  const { resume, replay } = await readProbes(s.rt.url, picked.slice(0, n), picked.slice(n), s.events);
  note("resume", resume, out);
  note("replay", replay, out);
  const gen = await ttftProbes(s.rt, s.ctx, n, name);
  out.errors += gen.errors;
  if (gen.first && !out.firstError) out.firstError = `generate: ${gen.first}`;
  const rssKiB = rssSnapshot(s.rt.pids);
  const diskBytes = storeDisk(s.storeDir);
  const heap = await goHeap(s.profPort);
  return {
    resumeFirstMs: summarize(resume.firstMs),
    resumeEndMs: summarize(resume.endMs),
    replayEndMs: summarize(replay.endMs),
    ttftAddedMs: gen.ttft,
    ...out,
    rssKiB,
    diskBytes,
    ...(heap ? { heap } : {}),
  };
}

/** The fill's cost, read from /proc like the other workloads' (the bench process counts as `load`). */
async function measuredFill(s: Probing, broker: Broker, from: number, count: number): Promise<{ fill: FillResult; usage: Usage }> {
  const probe = startProbe(s.rt);
  const fill = await fillHistory(broker, {
    rid: s.rid,
    from,
    count,
    events: s.events,
    window: s.ctx.params.w7Window,
    progress: (done) => s.ctx.log(`    ${done}/${count} responses`),
  });
  return { fill, usage: probe.finish() };
}

/**
 * Waits until nats-server has settled after the fill (it uses almost no CPU for a second): the
 * probes measure reads from a large history, not the tail of a bulk write.
 * Returns the seconds waited (at most QUIET_MAX_MS).
 */
async function settle(pid: number): Promise<number> {
  const t0 = performance.now();
  let quietFor = 0;
  for (let cpu = cpuSeconds(pid); performance.now() - t0 < QUIET_MAX_MS && quietFor < 2; ) {
    await sleep(500);
    const next = cpuSeconds(pid);
    quietFor = next - cpu < QUIET_CORES * 0.5 ? quietFor + 1 : 0;
    cpu = next;
  }
  return (performance.now() - t0) / 1000;
}

/** W7 on a fresh stack of its own: empty probes, the fill, the same probes again. */
export async function runW7(ctx: Context): Promise<RunRecord[]> {
  const p = ctx.params;
  const k = p.w7Events;
  const warm = p.w7Probes > 0 ? WARMUP : 0;
  // The empty stream holds only the responses its own probes read, each read once.
  // At least one window of them, so that their events interleave in the stream as the
  // fill's do: a read's cost grows with the other responses' events between its own.
  const seed = Math.min(p.w7Responses, Math.max(p.w7Window, 2 * (p.w7Probes + warm)));
  const profPort = await freePort();
  const target = unbrokenTarget({ name: "unbroken", workerEnv: {}, profPort });
  try {
    return await withTarget(target, { tps: p.tps, concurrency: 4 }, async (rt) => {
      if (!rt.broker) throw new Error("W7 needs the unbroken target's nats-server");
      const broker = await Broker.connect({ url: rt.broker.url, name: "bench-w7", log: silentLog, retentionMs: RETENTION_MS });
      const s: Probing = { rt, ctx, storeDir: rt.broker.storeDir, events: k, rid: ridOf(ctx.tag), read: new Set(), profPort };
      try {
        ctx.log(`  unbroken: seeding ${seed} responses × ${k} events, probing the empty stream`);
        const seeded = await fillHistory(broker, { rid: s.rid, from: 0, count: seed, events: k, window: p.w7Window });
        if (warm > 0) {
          const warmed = pick(2 * warm, seed, s.read).map(s.rid);
          await readProbes(rt.url, warmed.slice(0, warm), warmed.slice(warm), k);
          await ttftProbes(rt, ctx, warm, "w");
        }
        const empty = { responses: seeded.responses, events: seeded.events, ...(await probePhase(s, seed, "e")) };
        const rest = p.w7Responses - seed;
        ctx.log(`  unbroken: filling ${rest} responses × ${k} events (${p.w7Window} in flight)`);
        const { fill, usage } = await measuredFill(s, broker, seed, rest);
        const rssAfterFillKiB = rssSnapshot(rt.pids);
        const filledAt = performance.now();
        const quietS = await settle(rt.pids["nats-server"] ?? 0);
        await new Promise((r) => setTimeout(r, REST_MS));
        const heapAtRest = await goHeap(profPort);
        ctx.log(
          `  unbroken: ${fill.eventsPerS.toFixed(0)} events/s; nats-server settled in ${quietS.toFixed(1)} s; probing the full stream`,
        );
        const full = {
          responses: seeded.responses + fill.responses,
          events: seeded.events + fill.events,
          ...(await probePhase(s, p.w7Responses, "f")),
        };
        const added = (key: string): number => ((full.diskBytes[key] ?? 0) - (empty.diskBytes[key] ?? 0)) / fill.events;
        const history: HistoryMetrics = {
          eventsPerResponse: k,
          window: p.w7Window,
          probes: p.w7Probes,
          empty,
          full,
          fill,
          rssAfterFillKiB,
          quietS,
          ...(heapAtRest ? { heapAtRest } : {}),
          settleS: (performance.now() - filledAt) / 1000,
          bytesPerEvent: { all: added("all"), events: added(EVENTS_STREAM) },
        };
        return [
          {
            workload: "W7",
            label: `${p.w7Responses} × ${k} events, written ${p.w7Window} at once`,
            target: "unbroken",
            usage,
            history,
            notes: historyNotes(history, seeded),
          },
        ];
      } finally {
        await broker.close();
      }
    });
  } finally {
    await target.close();
  }
}

function historyNotes(h: HistoryMetrics, seeded: FillResult): string[] {
  const notes: string[] = [];
  for (const f of [seeded, h.fill]) if (f.failed) notes.push(`${f.failed} responses failed to fill (${f.firstError})`);
  for (const [name, ph] of [
    ["empty", h.empty],
    ["full", h.full],
  ] as const) {
    if (ph.errors) notes.push(`${ph.errors} ${name}-stream probes failed (${ph.firstError})`);
  }
  return notes;
}

// ---- report ----

const f = (n: number | undefined, d = 1): string => (n === undefined || !Number.isFinite(n) ? "–" : n.toFixed(n < 10 ? Math.max(d, 2) : d));
const mib = (b: number | undefined): string => (b === undefined || !Number.isFinite(b) ? "–" : (b / 1048576).toFixed(1));
const pair = (s: Summary): string => (s.n > 0 ? `${f(s.p50)} / ${f(s.p99)}` : "–");
const x = (a: number, b: number): string => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : "–");

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

/** W7's two tables: latencies empty against full, and what grew. */
export function renderHistory(records: RunRecord[]): string[] {
  const out: string[] = [];
  for (const r of records) {
    const h = r.history;
    if (!h) continue;
    const lat = (name: string, of: (ph: HistoryPhase) => Summary): string[] => {
      const [e, u] = [of(h.empty), of(h.full)];
      return [name, pair(e), pair(u), `${x(u.p50, e.p50)} / ${x(u.p99, e.p99)}`];
    };
    out.push(
      `W7 — history scale, ${r.label}: ${h.probes} probes of each kind, one at a time, on the empty stream (${h.empty.responses} responses) and the full one (${h.full.responses}); ms, target ≤ 1.5×`,
    );
    out.push(
      table(
        ["probe", "empty p50 / p99", "full p50 / p99", "full ÷ empty p50 / p99"],
        [
          lat("resume from the middle: subscribe → first missed event", (ph) => ph.resumeFirstMs),
          lat("resume from the middle: subscribe → end", (ph) => ph.resumeEndMs),
          lat("replay from 0: subscribe → end", (ph) => ph.replayEndMs),
          lat("generate → first token (added)", (ph) => ph.ttftAddedMs),
        ],
      ),
    );
    const nats = (ph: Record<string, number>): number => (ph["nats-server"] ?? Number.NaN) * 1024;
    const grow = (name: string, e: number, u: number): string[] => [name, mib(e), mib(u), mib(u - e)];
    const d = (ph: HistoryPhase, key: string): number => ph.diskBytes[key] ?? Number.NaN;
    out.push(
      `W7 — what grew (MiB); fill: ${f(h.fill.eventsPerS, 0)} events/s (${h.fill.responses} responses in ${f(h.fill.seconds)} s, nats-server ${f(r.usage.cpuS["nats-server"])} CPU-s), ${f(h.bytesPerEvent.all, 0)} bytes on disk per event (${f(h.bytesPerEvent.events, 0)} in ${EVENTS_STREAM})`,
    );
    out.push(
      table(
        ["", "empty", "full", "grew"],
        [
          grow("nats-server RSS, full: right after the fill", nats(h.empty.rssKiB), nats(h.rssAfterFillKiB)),
          grow(`… full: after its probes, ${f(h.settleS, 0)} s later`, nats(h.empty.rssKiB), nats(h.full.rssKiB)),
          grow(
            `nats-server live heap at rest: the fill done, ${REST_MS / 1000} s idle, a forced GC`,
            h.empty.heap?.alloc ?? Number.NaN,
            h.heapAtRest?.alloc ?? Number.NaN,
          ),
          grow("… of which message ids (duplicate window)", h.empty.heap?.msgIds ?? Number.NaN, h.heapAtRest?.msgIds ?? Number.NaN),
          grow(
            "nats-server live heap after its probes (the blocks they read cached; forced GC)",
            h.empty.heap?.alloc ?? Number.NaN,
            h.full.heap?.alloc ?? Number.NaN,
          ),
          grow("… of which message ids (duplicate window)", h.empty.heap?.msgIds ?? Number.NaN, h.full.heap?.msgIds ?? Number.NaN),
          grow("edge RSS", (h.empty.rssKiB.edge ?? 0) * 1024, (h.full.rssKiB.edge ?? 0) * 1024),
          grow("store dir on disk", d(h.empty, "all"), d(h.full, "all")),
          grow(`… ${EVENTS_STREAM}`, d(h.empty, EVENTS_STREAM), d(h.full, EVENTS_STREAM)),
          grow(`… KV_${RESPONSES_BUCKET}`, d(h.empty, `KV_${RESPONSES_BUCKET}`), d(h.full, `KV_${RESPONSES_BUCKET}`)),
          grow(`… KV_${RID_OWNERS_BUCKET}`, d(h.empty, `KV_${RID_OWNERS_BUCKET}`), d(h.full, `KV_${RID_OWNERS_BUCKET}`)),
        ],
      ),
    );
  }
  return out;
}
