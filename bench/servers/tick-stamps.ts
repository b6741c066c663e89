// The lean SSE server's generator stamps (it runs no ScriptedGenerator, so the bench's
// stamp-preload has nothing to wrap). Same file and format as stamp-preload.ts, read by
// stamps.ts, plus two kinds of line that fit a server whose one shared timer paces every
// stream:
//   b <rid> <arrival, epoch ms> <index of the tick that carries its first token>
//   k <tick index> <when the tick was due, epoch ms> <when it ran, epoch ms>
// Token k of a response goes out on tick first + k, so the bench gets each token's due time
// and generation time from the tick lines. The cost in the measured process: a line per
// response and a clock reading and a line per tick (not per token), appended to the file
// every 200 ms. Nothing is written to any frame.

import { appendFileSync } from "node:fs";

export interface TickStamps {
  /** A response joined: its first token goes out on tick `firstTick` (none when unpaced). */
  began(rid: string, at: number, firstTick?: number): void;
  tick(index: number, due: number, ran: number): void;
}

/** The stamp writer when BENCH_STAMP_FILE is set, else undefined. */
export function tickStamps(file: string | undefined): TickStamps | undefined {
  if (!file) return undefined;
  let lines: string[] = [];
  const flush = (): void => {
    if (lines.length > 0) appendFileSync(file, lines.join(""));
    lines = [];
  };
  setInterval(flush, 200).unref();
  process.on("exit", flush);
  return {
    began: (rid, at, firstTick) => void lines.push(`b ${rid} ${at.toFixed(3)}${firstTick === undefined ? "" : ` ${firstTick}`}\n`),
    tick: (index, due, ran) => void lines.push(`k ${index} ${due.toFixed(3)} ${ran.toFixed(3)}\n`),
  };
}
