// W7's fill: finished responses written through the store's own operations, in the order a
// response lives them (the edge creates the record queued and remembers the owner, a worker
// claims it, writes start, tokens and end through a fenced writer, and marks the record
// ended), many responses at once. Also the readings of what nats-server holds: its store
// dir's disk, and its Go heap.

import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import type { ResponseEvent, ResponseRecord } from "@unbroken/protocol";
import type { Broker } from "@unbroken/store";

/** With auth off every socket acts as this owner (the edge's ANONYMOUS), so probes may read what the fill wrote. */
const OWNER = "anonymous";
const WORKER = "bench-w7-fill";
const WORDS = [" the", " river", " runs", " past", " old", " stones", " and", " quiet", " fields", " toward"];

export interface FillOptions {
  /** rid of the i-th response. */
  rid(i: number): string;
  from: number;
  count: number;
  /** Events per response, start and end included (at least 2). */
  events: number;
  /** Responses in flight at once; each has one publish outstanding at a time. */
  window: number;
  /** Called now and then with the responses written so far. */
  progress?(done: number): void;
}

export interface FillResult {
  responses: number;
  events: number;
  failed: number;
  firstError?: string;
  seconds: number;
  eventsPerS: number;
}

function queued(rid: string, tokens: number): ResponseRecord {
  return {
    v: 1,
    rid,
    owner: OWNER,
    status: "queued",
    created_at: new Date().toISOString(),
    request: { prompt: `write ${tokens} words about rivers`, params: { max_tokens: tokens } },
    steers: [],
    epoch: 0,
  };
}

function eventsOf(i: number, count: number): ResponseEvent[] {
  const tokens = Math.max(0, count - 2);
  const out: ResponseEvent[] = [{ kind: "start", model: "scripted", created_at: new Date().toISOString() }];
  for (let k = 0; k < tokens; k++) out.push({ kind: "token", text: WORDS[(i + k) % WORDS.length] as string });
  out.push({ kind: "end", reason: "stop", usage: { prompt_tokens: 0, completion_tokens: tokens } });
  return out;
}

/**
 * One finished response, as edge and worker leave it: record created (queued) and the owner
 * remembered; the record claimed (running, epoch 1, compare-and-set on the revision just
 * written, as a worker's claim on the request's copy); every event appended by the fenced
 * writer with msg ids `<rid>:<seq>:1`; the record marked ended. The claim and the end pass
 * the record they know, which saves the read `lifecycle.finish` would make: the same writes.
 */
async function writeOne(broker: Broker, rid: string, i: number, events: number): Promise<void> {
  const record = queued(rid, events - 2);
  const revision = await broker.records.create(record);
  if (revision === null) throw new Error(`rid ${rid} exists already`);
  const remembered = broker.owners.remember(rid, OWNER);
  const claimed = await broker.records.mutate(rid, (r) => ({ ...r, status: "running", worker: WORKER, epoch: 1 }), { record, revision });
  if (!claimed) throw new Error(`record ${rid} vanished`);
  const writer = broker.logs.writer(rid, undefined, { epoch: 1 });
  const appends = eventsOf(i, events).map((e) => writer.append(e));
  await Promise.all(appends);
  await broker.records.mutate(rid, (r) => ({ ...r, status: "ended", reason: "stop" }), claimed);
  await remembered;
}

/** Writes responses from..from+count-1 with `window` of them in flight at once. */
export async function fillHistory(broker: Broker, opts: FillOptions): Promise<FillResult> {
  const t0 = performance.now();
  let next = opts.from;
  const end = opts.from + opts.count;
  let done = 0;
  let failed = 0;
  let firstError: string | undefined;
  const step = Math.max(1, Math.floor(opts.count / 10));
  const lane = async (): Promise<void> => {
    while (next < end) {
      const i = next++;
      const rid = opts.rid(i);
      try {
        await writeOne(broker, rid, i, opts.events);
      } catch (err) {
        failed++;
        firstError ??= `${rid}: ${(err as Error).message}`;
      }
      if (++done % step === 0) opts.progress?.(done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.window, opts.count) }, lane));
  const seconds = (performance.now() - t0) / 1000;
  const written = (opts.count - failed) * opts.events;
  return {
    responses: opts.count - failed,
    events: written,
    failed,
    ...(firstError ? { firstError } : {}),
    seconds,
    eventsPerS: seconds > 0 ? written / seconds : Number.NaN,
  };
}

/** Bytes a directory tree takes on disk (allocated blocks, as du counts them). */
export function diskBytes(dir: string): number {
  let total = 0;
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of entries) {
    const p = path.join(dir, name);
    const st = statSync(p, { throwIfNoEntry: false });
    if (!st) continue;
    total += st.isDirectory() ? diskBytes(p) : st.blocks * 512;
  }
  return total;
}

/** Disk per JetStream stream (LLM_EVENTS, KV_llm_responses, ...) and in all, under a store dir. */
export function storeDisk(storeDir: string): Record<string, number> {
  const out: Record<string, number> = { all: diskBytes(storeDir) };
  const streams = path.join(storeDir, "jetstream", "$G", "streams");
  let names: string[] = [];
  try {
    names = readdirSync(streams);
  } catch {
    return out;
  }
  for (const name of names) out[name] = diskBytes(path.join(streams, name));
  return out;
}

export interface GoHeap {
  /** Bytes of live heap after a forced GC (runtime.MemStats HeapAlloc). */
  alloc: number;
  /** Of which the duplicate window's message ids, as the sampled heap profile estimates them. */
  msgIds: number;
}

/**
 * nats-server's live heap, from its profiling port (`prof_port`): `gc=1` collects first, so
 * this is what it holds, not what its RSS has not yet given back. Undefined when unreachable.
 */
export async function goHeap(port: number): Promise<GoHeap | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/debug/pprof/heap?debug=1&gc=1`);
    const text = await res.text();
    const alloc = Number(/^# HeapAlloc = (\d+)/m.exec(text)?.[1] ?? Number.NaN);
    let msgIds = 0;
    // One record per allocation site: "<objects>: <bytes> [...] @ ..." and its "#\t<addr>\t<func>" frames.
    for (const site of text.split("\n\n")) {
      const bytes = /^\d+: (\d+) \[/m.exec(site)?.[1];
      if (bytes && /^#\t\S+\t\S*storeMsgIdLocked/m.test(site)) msgIds += Number(bytes);
    }
    return { alloc, msgIds };
  } catch {
    return undefined;
  }
}
