// Reads the generator stamps written by stamp-preload.ts:
//   b <rid> <began, epoch ms>
//   t <rid> <index of the first token in this line> <ms after began, per token>...
// and by the lean SSE server's shared timer (servers/tick-stamps.ts):
//   b <rid> <arrival, epoch ms> <index of the tick that carries its first token>
//   k <tick index> <due, epoch ms> <ran, epoch ms>

import { existsSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

export interface Stamp {
  /** Epoch ms the generator began pacing this response. */
  began: number;
  /** emitted[k] = epoch ms token k was generated (NaN where unknown). */
  emitted: number[];
  /** When token 0 was due, where that is not began + 1/tps (a shared timer's next tick). */
  firstDue?: number;
}

/** Ticks after a response's first one that the reader fills in at most (a response's longest). */
const MAX_TICKS = 20_000;

/** Waits past the preload's flush interval, then reads every stamp so far. */
export async function readStamps(file: string): Promise<Map<string, Stamp>> {
  await sleep(300);
  const out = new Map<string, Stamp>();
  if (!existsSync(file)) return out;
  const ticks = new Map<number, { due: number; ran: number }>();
  const firstTicks = new Map<Stamp, number>();
  const get = (rid: string): Stamp => {
    let s = out.get(rid);
    if (!s) {
      s = { began: Number.NaN, emitted: [] };
      out.set(rid, s);
    }
    return s;
  };
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const f = line.split(" ");
    if (f[0] === "b" && f[1]) {
      const s = get(f[1]);
      s.began = Number(f[2]);
      if (f[3] !== undefined) firstTicks.set(s, Number(f[3]));
    }
    if (f[0] === "k") ticks.set(Number(f[1]), { due: Number(f[2]), ran: Number(f[3]) });
    if (f[0] === "t" && f[1]) {
      const s = get(f[1]);
      const from = Number(f[2]);
      for (let i = 3; i < f.length; i++) s.emitted[from + i - 3] = Number(f[i]);
    }
  }
  // Relative times become absolute once every line is read (a `b` line may come later).
  for (const s of out.values()) s.emitted = Array.from(s.emitted, (x) => (x === undefined ? Number.NaN : s.began + x));
  // Paced by a shared timer: token k went out on tick first + k, when that tick ran.
  for (const [s, first] of firstTicks) {
    s.firstDue = ticks.get(first)?.due ?? Number.NaN;
    for (let k = 0; k < MAX_TICKS; k++) {
      const t = ticks.get(first + k);
      if (!t) break;
      s.emitted[k] = t.ran;
    }
  }
  return out;
}
