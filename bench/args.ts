// Command line (node:util parseArgs). Every workload parameter has a flag; --quick picks
// small defaults that finish in under two minutes on a 2-core machine (W7 fills 5,000 responses).

import { parseArgs } from "node:util";

export const WORKLOADS = ["W0", "W1", "W2", "W3", "W4", "W5", "W6", "W7"] as const;
export type Workload = (typeof WORKLOADS)[number];
/**
 * `sse-lean`: a lean SSE server as a user would write it (word list, one shared timer), the
 * cheaper SSE baseline. `unbroken-nc`: our stack with coalescing off (COALESCE_MS=0), the
 * latency-first setting; W0/W1 only. `unbroken-r3`: our stack on a 3-node JetStream cluster on this
 * machine, every stream and bucket at 3 replicas; W0/W1 and W3 (what capacity.md's R3 rows cost).
 */
export const TARGETS = ["sse", "sse-lean", "ws", "unbroken", "unbroken-nc", "unbroken-r3"] as const;
export type TargetName = (typeof TARGETS)[number];

export interface Params {
  mode: "quick" | "full";
  only: Workload[];
  targets: TargetName[];
  repeat: number;
  /** W1: each of these stream counts × tps × tokens, starts spread over rampMs (W0 beside the first). */
  w1Streams: number[];
  /** The largest of w1Streams: the default of W3/W4. */
  streams: number;
  tps: number;
  tokens: number;
  rampMs: number;
  /** W0: probes one at a time on an idle target, and probes beside the W1 load. */
  idleProbes: number;
  loadProbes: number;
  w2Streams: number[];
  w2Tokens: number;
  w3Streams: number;
  drops: number;
  offlineMs: number;
  w4Streams: number;
  cancelAfter: number;
  w5Sockets: number;
  /** W6: generates sent at one instant, each of w6Tokens tokens. */
  w6Streams: number;
  w6Tokens: number;
  /**
   * W7: finished responses in the full history, events in each (start and end included),
   * probes of each kind, and responses the fill writes at once (how their events interleave).
   */
  w7Responses: number;
  w7Events: number;
  w7Probes: number;
  w7Window: number;
  connectConcurrency: number;
  profile: boolean;
  outDir: string;
}

export const USAGE = `npm run bench -- [options]

  --quick                 small sizes, under two minutes on 2 cores (default: full)
  --only W1,W3            workloads to run (W0..W7; default all)
  --targets sse,sse-lean,ws,unbroken,unbroken-nc,unbroken-r3
                          systems to run (default all; sse-lean = a lean SSE
                          server with one shared timer, the cheaper SSE baseline;
                          unbroken-nc = our stack with coalescing off, W0/W1 only;
                          unbroken-r3 = our stack on a 3-node JetStream cluster,
                          REPLICAS=3, W0/W1 and W3 only)
  --repeat N              run each (workload, target) N times; the table shows medians
  --streams N,M --tps R --tokens T --ramp MS   W1 shapes, one run each (full: 300 and 1000 streams ×
                                               50 tok/s × 500 tokens, ramp 1000 ms; quick: 100)
  --idle-probes N --load-probes N              W0 probes, idle and beside W1
  --w2-streams 100,1000 --w2-tokens T          W2 (as fast as possible)
  --w3-streams N --drops 3 --offline MS        W3 resume storm (default N = --streams)
  --w4-streams N --cancel-after K              W4 cancel (default N = --streams)
  --w5-sockets N                               W5 idle sockets (full: 10000)
  --w6-streams N --w6-tokens T                 W6 burst: N generates at one instant (full: 1000 × 20)
  --w7-responses N --w7-events K --w7-probes P --w7-window W
                          W7 history scale (unbroken only): N finished responses of K
                          events (full: 100000 × 10; quick: 5000), P probes of each kind on
                          the empty and the full stream (full: 200; quick: 50), W responses
                          written at once by the fill (default 200)
  --connect-concurrency N                      connection attempts in flight (default 200)
  --profile               write V8 CPU profiles of the edge and worker during W1 and W6,
                          and nats-server's (Go pprof) during W1, and print their top
                          functions (inflates that run's CPU)
  --out DIR               results directory (default bench/results)
`;

const list = (s: string): string[] =>
  s
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);

export function parse(argv: string[], defaultOut: string): Params | "help" {
  const { values: v } = parseArgs({
    args: argv,
    strict: true,
    options: {
      help: { type: "boolean", short: "h" },
      quick: { type: "boolean" },
      only: { type: "string" },
      targets: { type: "string" },
      repeat: { type: "string" },
      streams: { type: "string" },
      tps: { type: "string" },
      tokens: { type: "string" },
      ramp: { type: "string" },
      "idle-probes": { type: "string" },
      "load-probes": { type: "string" },
      "w2-streams": { type: "string" },
      "w2-tokens": { type: "string" },
      "w3-streams": { type: "string" },
      drops: { type: "string" },
      offline: { type: "string" },
      "w4-streams": { type: "string" },
      "cancel-after": { type: "string" },
      "w5-sockets": { type: "string" },
      "w6-streams": { type: "string" },
      "w6-tokens": { type: "string" },
      "w7-responses": { type: "string" },
      "w7-events": { type: "string" },
      "w7-probes": { type: "string" },
      "w7-window": { type: "string" },
      "connect-concurrency": { type: "string" },
      profile: { type: "boolean" },
      out: { type: "string" },
    },
  });
  if (v.help) return "help";
  const quick = v.quick ?? false;
  const int = (name: string, s: string | undefined, dflt: number, min = 0): number => {
    if (s === undefined) return dflt;
    const n = Number(s);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${s}`);
    return n;
  };
  const pick = <T extends string>(name: string, s: string | undefined, all: readonly T[]): T[] => {
    if (s === undefined) return [...all];
    const items = list(name === "only" ? s.toUpperCase() : s.toLowerCase());
    const bad = items.filter((x) => !all.includes(x as T));
    if (bad.length) throw new Error(`--${name}: unknown ${bad.join(", ")} (known: ${all.join(", ")})`);
    return all.filter((x) => items.includes(x));
  };
  const w1Streams = v.streams ? list(v.streams).map((x) => int("streams", x, 0, 1)) : quick ? [100] : [300, 1000];
  const streams = Math.max(...w1Streams);
  return {
    mode: quick ? "quick" : "full",
    only: pick("only", v.only, WORKLOADS),
    targets: pick("targets", v.targets, TARGETS),
    repeat: int("repeat", v.repeat, 1, 1),
    w1Streams,
    streams,
    tps: int("tps", v.tps, 50, 1),
    tokens: int("tokens", v.tokens, quick ? 100 : 500, 1),
    rampMs: int("ramp", v.ramp, quick ? 200 : 1000),
    idleProbes: int("idle-probes", v["idle-probes"], quick ? 5 : 20, 1),
    loadProbes: int("load-probes", v["load-probes"], quick ? 5 : 20),
    w2Streams: v["w2-streams"] ? list(v["w2-streams"]).map((s) => int("w2-streams", s, 0, 1)) : quick ? [20, 100] : [100, 1000],
    w2Tokens: int("w2-tokens", v["w2-tokens"], quick ? 200 : 500, 1),
    w3Streams: int("w3-streams", v["w3-streams"], quick ? 50 : streams, 1),
    drops: int("drops", v.drops, 3),
    offlineMs: int("offline", v.offline, 250),
    w4Streams: int("w4-streams", v["w4-streams"], quick ? 50 : streams, 1),
    cancelAfter: int("cancel-after", v["cancel-after"], 20, 1),
    w5Sockets: int("w5-sockets", v["w5-sockets"], quick ? 1000 : 10_000, 1),
    w6Streams: int("w6-streams", v["w6-streams"], quick ? 200 : 1000, 1),
    w6Tokens: int("w6-tokens", v["w6-tokens"], 20, 1),
    w7Responses: int("w7-responses", v["w7-responses"], quick ? 5000 : 100_000, 1),
    w7Events: int("w7-events", v["w7-events"], 10, 2),
    w7Probes: int("w7-probes", v["w7-probes"], quick ? 50 : 200, 1),
    w7Window: int("w7-window", v["w7-window"], 200, 1),
    connectConcurrency: int("connect-concurrency", v["connect-concurrency"], 200, 1),
    profile: v.profile ?? false,
    outDir: v.out ?? defaultOut,
  };
}
