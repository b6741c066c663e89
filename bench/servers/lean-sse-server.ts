// Baseline 1b: a lean SSE server, written the way a user who only wants to stream tokens
// would write it, and the cheaper of the two SSE rows the bench compares against (issue 14,
// "an honest baseline"). sse-server.ts runs the worker's own ScriptedGenerator per response
// (a session, an async iterator, a pacing heap, an event object and a JSON.stringify per
// token), which costs about twice what streaming itself does; measured against it alone,
// our stack looked twice as cheap relative to plain SSE as it is. Here:
//  - the tokens come from a word list built once at start;
//  - ONE shared timer paces every stream: on each tick (every 1000/tps ms) every active
//    stream gets its next token, one res.write per token per stream;
//  - a frame is a string template around the word's JSON, computed once with the list;
//  - nothing is kept: a stream leaves the set when it ends or its request closes, and an
//    idle server has no timer.
// Same wire format as sse-server.ts (`id: <seq>` + `data: <event frame>`, start/token/end,
// seq from 1), so the same load client and the same lateness measurement run against it.
//
// The timer is re-armed to the next absolute tick (t0 + n/tps) rather than left to
// setInterval, which re-arms from when its callback ran and so drifts later by the loop's
// millisecond rounding on every tick: about 2 % fewer tokens per second than asked, and a
// schedule the lateness measurement would charge to the server. A late tick is caught up at
// once (the next one is then due already), as the scripted generator's pacer does.
// SCRIPTED_TPS=0 (W2, as fast as possible): a tick on every loop turn (setImmediate).

import type { ServerResponse } from "node:http";
import { serveSse, type GenerateRequest } from "./common.js";
import { tickStamps, type TickStamps } from "./tick-stamps.js";

const TEXT =
  "the river runs past the old mill and under a stone bridge where children wait for boats " +
  "to carry grain down toward the harbour while herons stand in the shallow water near reeds " +
  "and the current turns slowly around islands of gravel left by the spring floods each year";

/** Token j of every response, already JSON-encoded: the first without a leading space. */
const WORDS = TEXT.split(" ").map((w, j) => JSON.stringify(j === 0 ? w.charAt(0).toUpperCase() + w.slice(1) : ` ${w}`));

interface Stream {
  res: ServerResponse;
  /** `{"type":"event","rid":"…","seq":` — the part of every frame that never changes. */
  head: string;
  seq: number;
  /** Tokens it sends, and its end event once they are sent. */
  tokens: number;
  end: string;
}

const clock = (): number => performance.timeOrigin + performance.now();

class Ticker {
  private readonly active = new Set<Stream>();
  private readonly period: number;
  private timer: ReturnType<typeof setTimeout> | ReturnType<typeof setImmediate> | undefined;
  /** performance.now() when the running clock started, and ticks run since then. */
  private base = 0;
  private n = 0;
  /** Global index of the next tick (stamps name ticks by it). */
  private index = 0;

  constructor(
    tps: number,
    private readonly stamps: TickStamps | undefined,
  ) {
    this.period = tps > 0 ? 1000 / tps : 0;
  }

  add(s: Stream, rid: string): void {
    if (this.timer === undefined) {
      this.base = performance.now();
      this.n = 0;
      this.arm();
    }
    this.active.add(s);
    this.stamps?.began(rid, clock(), this.period > 0 ? this.index : undefined);
    s.res.on("close", () => this.active.delete(s));
  }

  private arm(): void {
    if (this.period === 0) {
      this.timer = setImmediate(() => this.tick());
      return;
    }
    const due = this.base + (this.n + 1) * this.period;
    this.timer = setTimeout(() => this.tick(), Math.max(0, due - performance.now()));
  }

  private tick(): void {
    this.n++;
    if (this.period > 0) {
      const due = performance.timeOrigin + this.base + this.n * this.period;
      this.stamps?.tick(this.index, due, clock());
    }
    this.index++;
    for (const s of this.active) {
      const seq = ++s.seq;
      const frame = `id: ${seq}\ndata: ${s.head}${seq},"event":{"kind":"token","text":${WORDS[(seq - 2) % WORDS.length]}}}\n\n`;
      if (seq - 1 < s.tokens) {
        s.res.write(frame);
        continue;
      }
      s.res.end(`${frame}id: ${seq + 1}\ndata: ${s.head}${seq + 1},"event":${s.end}}\n\n`);
      this.active.delete(s);
    }
    if (this.active.size > 0) this.arm();
    else this.timer = undefined;
  }
}

/** How many tokens, and why it ends: max_tokens, else "write N words" in the prompt, else 100. */
function plan(body: GenerateRequest): { tokens: number; reason: "length" | "stop" } {
  const asked = /(\d{1,5})\s*(?:words|tokens)/i.exec(body.prompt);
  const natural = asked ? Math.max(1, Number(asked[1])) : 100;
  const limit = body.params?.max_tokens;
  return limit !== undefined && limit <= natural ? { tokens: Math.max(1, limit), reason: "length" } : { tokens: natural, reason: "stop" };
}

function start(ticker: Ticker, body: GenerateRequest, res: ServerResponse): void {
  const { tokens, reason } = plan(body);
  const head = `{"type":"event","rid":${JSON.stringify(body.rid)},"seq":`;
  const promptTokens = body.prompt.split(" ").length;
  const end = `{"kind":"end","reason":"${reason}","usage":{"prompt_tokens":${promptTokens},"completion_tokens":${tokens}}}`;
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  res.write(`id: 1\ndata: ${head}1,"event":{"kind":"start","model":"lean","created_at":"${new Date().toISOString()}"}}\n\n`);
  ticker.add({ res, head, seq: 1, tokens, end }, body.rid);
}

const ticker = new Ticker(Number(process.env.SCRIPTED_TPS ?? "30"), tickStamps(process.env.BENCH_STAMP_FILE));
serveSse((body, res) => start(ticker, body, res));
