// Reads the generator stamps written by stamp-preload.ts:
//   b <rid> <began, epoch ms>
//   t <rid> <index of the first token in this line> <ms after began, per token>...

import { existsSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

export interface Stamp {
  /** Epoch ms the generator began pacing this response. */
  began: number;
  /** emitted[k] = epoch ms token k was generated (NaN where unknown). */
  emitted: number[];
}

/** Waits past the preload's flush interval, then reads every stamp so far. */
export async function readStamps(file: string): Promise<Map<string, Stamp>> {
  await sleep(300);
  const out = new Map<string, Stamp>();
  if (!existsSync(file)) return out;
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
    if (f[0] === "b" && f[1]) get(f[1]).began = Number(f[2]);
    if (f[0] === "t" && f[1]) {
      const s = get(f[1]);
      const from = Number(f[2]);
      for (let i = 3; i < f.length; i++) s.emitted[from + i - 3] = Number(f[i]);
    }
  }
  // Relative times become absolute once every line is read (a `b` line may come later).
  for (const s of out.values()) s.emitted = Array.from(s.emitted, (x) => (x === undefined ? Number.NaN : s.began + x));
  return out;
}
