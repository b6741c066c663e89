// W7's reads of finished responses, one at a time, each over a fresh socket (connect and
// hello are not timed): `subscribe` with `after` in the middle of the log (a resume) or 0 (a
// replay), timed from the frame sent to the first event after `after` and to the `end`.

import { now, openWs, type Conn, type Frame } from "./load/conn.js";

export interface ReadProbe {
  /** subscribe sent → first event with seq > after (ms). */
  firstMs: number;
  /** subscribe sent → the `end` event (ms). */
  endMs: number;
  error?: string;
}

/** One subscribe to a finished response of `events` events, after seq `after`. */
export async function readProbe(url: string, rid: string, after: number, events: number, timeoutMs = 10_000): Promise<ReadProbe> {
  let conn: Conn | undefined;
  let sentAt = Number.NaN;
  let firstMs = Number.NaN;
  let next = after + 1;
  return new Promise<ReadProbe>((resolve) => {
    let done = false;
    const finish = (endMs: number, error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      conn?.close();
      resolve({ firstMs, endMs, ...(error !== undefined ? { error } : {}) });
    };
    const timer = setTimeout(() => finish(Number.NaN, "timeout"), timeoutMs);
    /** The error that ends the probe, if `f` does; undefined when the probe goes on. */
    const check = (f: Frame): string | undefined => {
      if (f.type === "error") return `${f.code ?? "error"}: ${f.message ?? ""}`;
      if (f.type !== "event" || f.seq === undefined) return undefined;
      if (f.seq !== next) return `expected seq ${next}, got ${f.seq}`;
      if (f.event?.kind === "end" && f.seq !== events) return `end at seq ${f.seq}, not ${events}`;
      return undefined;
    };
    const frame = (f: Frame, at: number): void => {
      const error = check(f);
      if (error !== undefined) finish(Number.NaN, error);
      else if (f.type === "event" && f.seq !== undefined) {
        next++;
        if (Number.isNaN(firstMs)) firstMs = at - sentAt;
        if (f.event?.kind === "end") finish(at - sentAt);
      }
    };
    openWs(url, true, { frame, closed: (why) => finish(Number.NaN, why) }).then(
      (c) => {
        conn = c;
        if (done) return c.close();
        sentAt = now();
        c.send({ type: "subscribe", id: "s", rid, after });
      },
      (err: Error) => finish(Number.NaN, `connect failed: ${err.message}`),
    );
  });
}

export interface ReadProbes {
  firstMs: number[];
  endMs: number[];
  errors: number;
  firstError?: string;
}

const emptyProbes = (): ReadProbes => ({ firstMs: [], endMs: [], errors: 0 });

function add(out: ReadProbes, rid: string, p: ReadProbe): void {
  out.firstMs.push(p.firstMs);
  out.endMs.push(p.endMs);
  if (p.error === undefined) return;
  out.errors++;
  out.firstError ??= `${rid}: ${p.error}`;
}

/**
 * A resume (after the middle seq) of each of `resumed` and a replay (from 0) of each of
 * `replayed`, taking turns, so that whatever the server does meanwhile weighs on both alike.
 */
export async function readProbes(
  url: string,
  resumed: string[],
  replayed: string[],
  events: number,
): Promise<{ resume: ReadProbes; replay: ReadProbes }> {
  const resume = emptyProbes();
  const replay = emptyProbes();
  for (let i = 0; i < Math.max(resumed.length, replayed.length); i++) {
    const a = resumed[i];
    if (a !== undefined) add(resume, a, await readProbe(url, a, Math.floor(events / 2), events));
    const b = replayed[i];
    if (b !== undefined) add(replay, b, await readProbe(url, b, 0, events));
  }
  return { resume, replay };
}
