// One response as the load client lives it: connect, generate, read every event; and, for
// W3, drop the socket and resume, or for W4, cancel part way. The same code drives every
// target; only the wire format (conn.ts) differs.

import { now, openWs, postSse, type Conn, type Frame, type Handlers } from "./conn.js";
import { Tracker } from "./tracker.js";
import type { Job, StreamResult, StreamSpec } from "./types.js";

type StreamJob = Exclude<Job, { kind: "idle" }>;

/** Limits concurrent connection attempts. */
export class Limiter {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly max: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/**
 * W6: holds every stream's generate until all of them can be sent (connected, or failed), so
 * they leave at one instant; `go` resolves to that instant.
 */
export interface Gate {
  ready(): void;
  readonly go: Promise<number>;
}

export function gate(n: number): Gate {
  let left = n;
  let open: (at: number) => void = () => {};
  const go = new Promise<number>((r) => {
    open = r;
  });
  // A short pause once all are ready lets the last connection's own work settle.
  const ready = (): void => {
    if (--left === 0) setTimeout(() => open(now()), 20);
  };
  if (n === 0) open(now());
  return { ready, go };
}

const sleepUntil = (at: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, at - now())));

/** Token counts after which W3 drops the socket: evenly spread, jittered by the rid. */
function dropPoints(spec: StreamSpec, drops: number, index: number): number[] {
  const out: number[] = [];
  for (let k = 1; k <= drops; k++) {
    const base = (spec.maxTokens * k) / (drops + 1);
    const jitter = ((index * 7919 + k * 104729) % 1000) / 1000 - 0.5; // deterministic, ±0.5 slot
    out.push(Math.max(1, Math.round(base + (jitter * spec.maxTokens) / (drops + 2))));
  }
  return out.sort((a, b) => a - b);
}

export async function runStream(
  job: StreamJob,
  spec: StreamSpec,
  index: number,
  t0: number,
  limiter: Limiter,
  burst?: Gate,
): Promise<StreamResult> {
  await sleepUntil(t0 + spec.startAt);
  const tr = new Tracker(spec.maxTokens);
  const res: StreamResult = {
    rid: spec.rid,
    probe: spec.probe ?? false,
    sentAt: Number.NaN,
    connectMs: Number.NaN,
    recv: tr.recv,
    tokens: 0,
    events: 0,
    lost: 0,
    dup: 0,
  };
  const drops = job.kind === "resume" ? dropPoints(spec, job.drops, index) : [];
  if (job.kind === "resume") {
    res.resumeMs = [];
    res.resumeSubscribeMs = [];
  }
  let conn: Conn | undefined;
  let offline = false;
  let resumeFrom: { at: number; subscribedAt: number; after: number } | undefined;
  let cancel: { sentAt: number; tokens: number; endAt?: number; tokensAtEnd?: number; okAt?: number; tokensAtOk?: number } | undefined;

  return new Promise<StreamResult>((resolve) => {
    let done = false;
    const finish = (error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      conn?.close();
      Object.assign(res, tr.accounting(), {
        tokens: tr.tokens,
        events: tr.events,
        endReason: tr.endReason,
        completionTokens: tr.completionTokens,
      });
      if (error !== undefined) res.error = error;
      if (cancel?.endAt !== undefined && cancel.okAt !== undefined) {
        res.cancel = {
          sentAt: cancel.sentAt,
          endAt: cancel.endAt,
          okAt: cancel.okAt,
          tokensAtCancel: cancel.tokens,
          tokensAtEnd: cancel.tokensAtEnd ?? tr.tokens,
          tokensAfterOk: tr.tokens - (cancel.tokensAtOk ?? tr.tokens),
        };
      }
      resolve(res);
    };
    const timer = setTimeout(() => finish("timeout"), Math.max(1, t0 + job.timeoutMs - now()));

    const onFrame = (f: Frame, at: number): void => {
      if (f.type === "event") {
        res.firstEventAt ??= at;
        if (resumeFrom && (f.seq ?? 0) > resumeFrom.after) {
          res.resumeMs?.push(at - resumeFrom.at);
          res.resumeSubscribeMs?.push(at - resumeFrom.subscribedAt);
          resumeFrom = undefined;
        }
        const ended = tr.event(f, at);
        if (ended) {
          if (!cancel) {
            finish();
            return;
          }
          cancel.endAt = at;
          cancel.tokensAtEnd = tr.tokens;
          if (cancel.okAt !== undefined) finish();
          return;
        }
        if (f.event?.kind !== "token") return;
        if (drops.length > 0 && tr.tokens >= (drops[0] as number)) return void drop();
        if (job.kind === "cancel" && !cancel && tr.tokens >= job.cancelAfter) {
          cancel = { sentAt: now(), tokens: tr.tokens };
          conn?.send({ type: "cancel", id: "c", rid: spec.rid });
        }
        return;
      }
      if (f.type === "accepted") {
        res.acceptedAt ??= at;
        return;
      }
      if (f.type === "ok" && f.id === "c" && cancel) {
        cancel.okAt = at;
        cancel.tokensAtOk = tr.tokens;
        if (cancel.endAt !== undefined) finish();
        return;
      }
      if (f.type === "error") finish(`${f.code ?? "error"}: ${f.message ?? ""}`);
    };
    const h: Handlers = {
      frame: onFrame,
      closed: (why) => {
        if (!offline) finish(why);
      },
    };

    // Frames of a dropped socket that `ws` still emits after terminate() (it had them
    // buffered) belong to no connection any more: they are ignored, or a late one could
    // trigger a second drop while offline and two sockets would resume the same response.
    let generation = 0;
    const current = (): Handlers => {
      const mine = ++generation;
      return { frame: (f, at) => mine === generation && onFrame(f, at), closed: (why) => mine === generation && h.closed(why) };
    };

    // W3: lose the connection, stay away for offlineMs, then come back and resume.
    const drop = (): void => {
      drops.shift();
      offline = true;
      generation++;
      conn?.close();
      conn = undefined;
      setTimeout(
        () => {
          const at = now();
          openWs(job.url, true, current()).then(
            (c) => {
              if (done) return c.close();
              conn = c;
              offline = false;
              resumeFrom = { at, subscribedAt: now(), after: tr.lastSeq };
              c.send({ type: "subscribe", id: "s", rid: spec.rid, after: tr.lastSeq });
            },
            (err: Error) => finish(`reconnect failed: ${err.message}`),
          );
        },
        (job as { offlineMs?: number }).offlineMs ?? 0,
      );
    };

    const body = { rid: spec.rid, prompt: spec.prompt, params: { max_tokens: spec.maxTokens } };
    if (job.protocol === "sse" && burst) {
      // W6: the POST is the connection, so the burst opens them all at once, as a crowd would.
      burst.ready();
      void burst.go.then(() => {
        conn = postSse(job.url, body, h, (at) => {
          res.sentAt = at;
        });
      });
      return;
    }
    if (job.protocol === "sse") {
      // The POST is the connection: it counts as sent once its socket is connected.
      void limiter.run(
        () =>
          new Promise<void>((connected) => {
            const began = now();
            const hs: Handlers = {
              frame: onFrame,
              closed: (why) => {
                connected();
                h.closed(why);
              },
            };
            conn = postSse(job.url, body, hs, (at) => {
              res.sentAt = at;
              res.connectMs = at - began;
              connected();
            });
          }),
      );
      return;
    }
    let began = 0;
    limiter
      .run(() => {
        began = now();
        return openWs(job.url, job.protocol === "unbroken", current());
      })
      .then(
        async (c) => {
          res.connectMs = now() - began;
          if (burst) {
            burst.ready();
            await burst.go;
          }
          if (done) return c.close();
          conn = c;
          res.sentAt = now();
          c.send({ type: "generate", id: "g", ...body });
        },
        (err: Error) => {
          burst?.ready();
          finish(`connect failed: ${err.message}`);
        },
      );
  });
}
