// From raw receipt times to the numbers in the table.
//
// Latency added: the scripted generator paces token k of a response to began + k/tps, where
// `began` is the stamp the preload took for that rid (stamp-preload.ts); the lean SSE server
// sends token k on its shared timer's tick first + k, due at that tick's time (firstDue +
// k/tps; servers/tick-stamps.ts). Each token's latency is its receipt time minus the earlier
// of its due time and the time it was actually generated. From the due time, it counts
// everything between the ideal schedule and the client: a late timer in a busy generator
// process, publishing, the broker, the edge, the socket. The "actually generated" stamp only
// matters when a Node timer fired a little early (then the token left before it was due, and
// the due time would understate the latency). The baselines are measured the same way, so a
// busy SSE server is charged for its lateness too.

import type { StreamsResult } from "./load/types.js";
import type { Stamp } from "./stamps.js";
import { summarize, Values, type Summary } from "./stats.js";

export interface StreamMetrics {
  streams: number;
  completed: number;
  errors: number;
  firstError?: string;
  tokensOffered: number;
  tokensDelivered: number;
  /** First generate sent → last token received. */
  wallS: number;
  deliveredTokPerS: number;
  /** Tokens per event received (events of every kind): above 1 when tokens were coalesced. */
  tokensPerEvent: number;
  /** Generator's due time → receipt, every token of the main streams (ms). */
  latencyMs?: Summary;
  /** Generated → due time (positive: the generator ran late; its process was busy) (ms). */
  generatorLateMs?: Summary;
  /** Generate sent → first token, minus the generator's own time to its first token (ms). */
  ttftAddedMs?: Summary;
  /** The same for the W0 probes running beside the load. */
  probeTtftAddedMs?: Summary;
  /** Generate sent → the generator began (queueing, pickup, start event) (ms). */
  requestPathMs?: Summary;
  /** Our protocol only: generate sent → `accepted` (the edge stored and queued it) (ms). */
  acceptedMs?: Summary;
  lost: number;
  dup: number;
  /** Streams whose token count differs from the end's completion_tokens. */
  countMismatch: number;
  missingStamps: number;
}

export function analyzeStreams(r: StreamsResult, stamps: Map<string, Stamp>, tps: number, opts: { latency: boolean }): StreamMetrics {
  const probes = r.streams.filter((s) => s.probe);
  const interval = tps > 0 ? 1000 / tps : 0;
  let first = Infinity;
  let last = -Infinity;
  let delivered = 0;
  let events = 0;
  let offered = 0;
  let lost = 0;
  let dup = 0;
  let countMismatch = 0;
  let missing = 0;
  const errs = r.streams.filter((s) => s.error !== undefined);
  const lat = new Values();
  const late = new Values();
  const reqPath = new Values();
  const accepted = new Values();
  const ttft = new Values();
  const probeTtft = new Values();
  for (const s of r.streams) {
    delivered += s.tokens;
    events += s.events;
    offered += s.recv.length;
    lost += s.lost;
    dup += s.dup;
    if (s.completionTokens !== undefined && s.completionTokens !== s.tokens) countMismatch++;
    if (Number.isFinite(s.sentAt)) first = Math.min(first, s.sentAt);
    for (let k = s.tokens - 1; k >= 0; k--) {
      const at = s.recv[k] as number;
      if (Number.isFinite(at)) {
        last = Math.max(last, at);
        break;
      }
    }
    const stamp = stamps.get(s.rid);
    if (!stamp || !Number.isFinite(stamp.began)) {
      missing++;
      ttft.push(Number.NaN);
      continue;
    }
    const { began, emitted } = stamp;
    if (Number.isFinite(s.sentAt)) (s.probe ? undefined : reqPath)?.push(began - s.sentAt);
    if (!s.probe && s.acceptedAt !== undefined) accepted.push(s.acceptedAt - s.sentAt);
    // Token 0's due time: 1/tps after began, or a shared timer's next tick (lean SSE).
    const due0 = stamp.firstDue ?? began + interval;
    // The generator's own time to first token: until token 0 was due, or less when its timer
    // fired early; never below 0 (a shared tick already overdue when the request came).
    const gen0 = (emitted[0] ?? Number.NaN) - began;
    const own = Math.max(0, Number.isFinite(gen0) ? Math.min(due0 - began, gen0) : due0 - began);
    (s.probe ? probeTtft : ttft).push((s.recv[0] as number) - s.sentAt - (Number.isFinite(own) ? own : interval));
    if (!opts.latency || s.probe || tps <= 0) continue;
    for (let k = 0; k < s.tokens && k < s.recv.length; k++) {
      const due = due0 + k * interval;
      const gen = emitted[k] ?? Number.NaN;
      lat.push((s.recv[k] as number) - (Number.isFinite(gen) ? Math.min(due, gen) : due));
      if (Number.isFinite(gen)) late.push(gen - due);
    }
  }
  const wallS = (last - first) / 1000;
  const out: StreamMetrics = {
    streams: r.streams.length,
    completed: r.streams.length - errs.length,
    errors: errs.length,
    tokensOffered: offered,
    tokensDelivered: delivered,
    wallS,
    deliveredTokPerS: wallS > 0 ? delivered / wallS : Number.NaN,
    tokensPerEvent: events > 0 ? delivered / events : Number.NaN,
    ttftAddedMs: summarize(ttft.view()),
    requestPathMs: summarize(reqPath.view()),
    ...(accepted.length > 0 ? { acceptedMs: summarize(accepted.view()) } : {}),
    lost,
    dup,
    countMismatch,
    missingStamps: missing,
  };
  if (errs[0]?.error) out.firstError = `${errs[0].rid}: ${errs[0].error}`;
  if (opts.latency && tps > 0) {
    out.latencyMs = summarize(lat.view());
    out.generatorLateMs = summarize(late.view());
  }
  if (probes.length > 0) out.probeTtftAddedMs = summarize(probeTtft.view());
  return out;
}

export interface ResumeMetrics {
  reconnects: number;
  /** New socket opened → first event it had missed (ms). */
  resumeMs: Summary;
  /** Of which: `subscribe` sent → first missed event (the rest is connect + hello). */
  subscribeMs: Summary;
  lost: number;
  dup: number;
  /** Responses that did not reach their end. */
  unfinished: number;
}

export function analyzeResume(r: StreamsResult): ResumeMetrics {
  const all = new Values();
  const sub = new Values();
  for (const s of r.streams) for (const v of s.resumeMs ?? []) all.push(v);
  for (const s of r.streams) for (const v of s.resumeSubscribeMs ?? []) sub.push(v);
  return {
    reconnects: all.length,
    resumeMs: summarize(all.view()),
    subscribeMs: summarize(sub.view()),
    lost: r.streams.reduce((a, s) => a + s.lost, 0),
    dup: r.streams.reduce((a, s) => a + s.dup, 0),
    unfinished: r.streams.filter((s) => s.endReason === undefined).length,
  };
}

export interface CancelMetrics {
  cancelled: number;
  /** cancel sent → `end` received (ms). */
  toEndMs: Summary;
  /** cancel sent → its `ok` received (ms). */
  toOkMs: Summary;
  /** Tokens received between sending cancel and the end. */
  tokensAfterCancel: Summary;
  /** Tokens received after the cancel's ok, summed over all streams (must be 0). */
  tokensAfterOk: number;
  notCancelled: number;
}

export function analyzeCancel(r: StreamsResult): CancelMetrics {
  const c = r.streams.flatMap((s) => (s.cancel ? [s.cancel] : []));
  return {
    cancelled: r.streams.filter((s) => s.endReason === "cancelled").length,
    toEndMs: summarize(c.map((x) => x.endAt - x.sentAt)),
    toOkMs: summarize(c.map((x) => x.okAt - x.sentAt)),
    tokensAfterCancel: summarize(c.map((x) => x.tokensAtEnd - x.tokensAtCancel)),
    tokensAfterOk: c.reduce((a, x) => a + x.tokensAfterOk, 0),
    notCancelled: r.streams.filter((s) => s.endReason !== "cancelled").length,
  };
}
