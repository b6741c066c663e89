// Per-response bookkeeping in the load client: which seqs arrived how often, and when each
// generated token arrived. Tokens are counted by words, not by events: every scripted token
// is one word (a first word, or whitespace then a word), so the count stays right if a
// later version of the stack packs several tokens into one event, and each token is timed
// by the event that carried it.

import type { Frame } from "./conn.js";

export class Tracker {
  /** recv[k] = epoch ms at which token k (0-based) arrived; NaN if it never did. */
  readonly recv: Float64Array;
  tokens = 0;
  events = 0;
  lastSeq = 0;
  endSeq = 0;
  endReason: string | undefined;
  completionTokens: number | undefined;
  private seen: Uint8Array;

  constructor(maxTokens: number) {
    this.recv = new Float64Array(maxTokens).fill(Number.NaN);
    this.seen = new Uint8Array(maxTokens + 16);
  }

  /** Records an event frame; true when it was the response's `end`. */
  event(f: Frame, at: number): boolean {
    const seq = f.seq ?? 0;
    if (seq >= this.seen.length) {
      const grown = new Uint8Array(seq * 2);
      grown.set(this.seen);
      this.seen = grown;
    }
    const first = this.seen[seq] === 0;
    this.seen[seq] = Math.min(255, (this.seen[seq] ?? 0) + 1);
    if (!first) return false;
    this.events++;
    if (seq > this.lastSeq) this.lastSeq = seq;
    const ev = f.event;
    if (ev?.kind === "token") {
      const n = countWords(ev.text ?? "");
      for (let j = 0; j < n && this.tokens + j < this.recv.length; j++) this.recv[this.tokens + j] = at;
      this.tokens += n;
    } else if (ev?.kind === "end") {
      this.endSeq = seq;
      this.endReason = ev.reason;
      this.completionTokens = ev.usage?.completion_tokens;
      return true;
    }
    return false;
  }

  /** Seqs 1..end that never arrived, and arrivals beyond the first of a seq. */
  accounting(): { lost: number; dup: number } {
    const last = this.endSeq || this.lastSeq;
    let lost = 0;
    let dup = 0;
    for (let s = 1; s <= last; s++) if (this.seen[s] === 0) lost++;
    for (let s = 1; s < this.seen.length; s++) if ((this.seen[s] ?? 0) > 1) dup += (this.seen[s] ?? 0) - 1;
    return { lost, dup };
  }
}

function countWords(text: string): number {
  let n = 0;
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const space = c === 32 || c === 10 || c === 9 || c === 13;
    if (!space && !inWord) n++;
    inWord = !space;
  }
  return n;
}
