// The tables printed after a run (Markdown, so they paste into docs/benchmarks.md as they are).

import { renderHistory } from "./history.js";
import type { Summary } from "./stats.js";
import type { RunRecord } from "./workloads.js";

const f = (n: number | undefined, d = 1): string => (n === undefined || !Number.isFinite(n) ? "–" : n.toFixed(d));
const k = (n: number | undefined): string =>
  n === undefined || !Number.isFinite(n) ? "–" : n >= 10_000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(0);
const ms = (s: Summary | undefined, keys: Array<keyof Summary> = ["p50", "p99", "max"]): string =>
  s && s.n > 0 ? keys.map((key) => f(s[key], s[key] < 10 ? 2 : 1)).join(" / ") : "–";
const ratio = (a: number | undefined, b: number | undefined): string =>
  a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : "–";

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

/** Server CPU per role, e.g. "edge 9.1 · worker 12.0 · nats-server 8.3". */
function roles(r: RunRecord): string {
  const c = r.cpuPerMTok ?? {};
  const names = Object.keys(c).filter((x) => x !== "total" && x !== "load");
  return names.length > 1 ? names.map((n) => `${n} ${f(c[n])}`).join(" · ") : "";
}

/** Cores' worth of CPU that other processes used during the run: the noise in it. */
const noise = (r: RunRecord): string => f(r.usage.otherCpuS / r.usage.wallS, 2);

const byLabel = (records: RunRecord[]): Map<string, RunRecord[]> => {
  const m = new Map<string, RunRecord[]>();
  for (const r of records) m.set(r.label, [...(m.get(r.label) ?? []), r]);
  return m;
};

/**
 * The SSE row every "× SSE" ratio of a table is taken against: of the SSE rows (`sse`, the
 * scripted generator's; `sse-lean`, a word list and one shared timer), the one with the lower
 * `metric`: server CPU per token, unless a table compares something else (W6: p99 to the first
 * event). Comparing with the dearer one would flatter every other row.
 */
function sseRef(rs: RunRecord[], metric: (r: RunRecord) => number = (r) => r.cpuPerMTok?.total ?? Number.NaN): RunRecord | undefined {
  const sse = rs.filter((r) => r.target === "sse" || r.target === "sse-lean");
  const priced = sse.filter((r) => Number.isFinite(metric(r)));
  return priced.length > 0 ? priced.reduce((a, b) => (metric(b) < metric(a) ? b : a)) : sse[0];
}

/** Names the reference row, and why it is that one when there was a choice. */
function refNote(ref: RunRecord | undefined, rs: RunRecord[]): string {
  if (!ref) return "no SSE row, no ratios";
  const n = rs.filter((r) => r.target === "sse" || r.target === "sse-lean").length;
  return n > 1 ? `ratios against ${ref.target}, the SSE row with the lower server CPU per token` : `ratios against ${ref.target}`;
}

export function renderTables(records: RunRecord[]): string {
  const out: string[] = [];
  const of = (w: string): RunRecord[] => records.filter((r) => r.workload === w);

  for (const [label, rs] of byLabel(of("W1"))) {
    const sse = sseRef(rs);
    const x = `× ${sse?.target ?? "SSE"}`;
    out.push(`W1 — ${label} (latency: generator's due time → client receipt, ms; tok/s and CPU ${refNote(sse, rs)})`);
    out.push(
      table(
        [
          "target",
          "delivered tok/s (offered)",
          x,
          "tok/event",
          "latency p50 / p99 / max",
          "generator late p99",
          "server CPU-s per 1M tok",
          x,
          "per process",
          "RSS KiB per stream (conn / all)",
          "load CPU-s/1M",
          "noise (cores)",
        ],
        rs.map((r) => {
          const m = r.stream;
          return [
            r.target,
            `${k(m?.deliveredTokPerS)} (${k(r.offeredTokPerS)})${m && m.tokensDelivered < m.tokensOffered ? `, ${m.tokensDelivered}/${m.tokensOffered} tokens` : ""}`,
            ratio(m?.deliveredTokPerS, sse?.stream?.deliveredTokPerS),
            f(m?.tokensPerEvent),
            ms(m?.latencyMs),
            ms(m?.generatorLateMs, ["p99"]),
            f(r.cpuPerMTok?.total),
            ratio(r.cpuPerMTok?.total, sse?.cpuPerMTok?.total),
            roles(r),
            `${f(r.rssPerConnKiB?.conn)} / ${f(r.rssPerConnKiB?.all)}`,
            f(r.cpuPerMTok?.load),
            noise(r),
          ];
        }),
      ),
    );
  }
  const w0 = of("W0");
  if (w0.length) {
    out.push(
      `W0 — time to first token added by the transport (generate sent → first token − 1/tps), ms; ${w0[0]?.label ?? ""} (idle: after the target's first request, shown on its own)`,
    );
    out.push(
      table(
        [
          "target",
          "first request",
          "idle p50 / p99",
          "beside W1 p50 / p99",
          "W1's own streams (start ramp) p50 / p99",
          "of which request path p50 / p99",
          "of which → accepted p50 / p99",
        ],
        w0.map((r) => [
          r.target,
          r.ttftColdMs === undefined ? "–" : r.ttftColdMs.toFixed(1),
          ms(r.ttftIdleMs, ["p50", "p99"]),
          ms(r.stream?.probeTtftAddedMs, ["p50", "p99"]),
          ms(r.stream?.ttftAddedMs, ["p50", "p99"]),
          ms(r.stream?.requestPathMs, ["p50", "p99"]),
          ms(r.stream?.acceptedMs, ["p50", "p99"]),
        ]),
      ),
    );
  }
  const w2 = of("W2");
  if (w2.length) {
    const groups = [...byLabel(w2)].map(([label, rs]) => ({ label, rs, sse: sseRef(rs) }));
    const refs = [...new Set(groups.map((g) => g.sse?.target ?? "SSE"))];
    const x = refs.length === 1 ? `× ${refs[0]}` : "× cheaper SSE";
    const which =
      refs.length === 1
        ? `CPU ${refNote(groups[0]?.sse, groups[0]?.rs ?? [])}`
        : groups.map((g) => `${g.label}: CPU ${refNote(g.sse, g.rs)}`).join("; ");
    out.push(`W2 — as fast as possible (SCRIPTED_TPS=0); ${which}`);
    const rows = groups.flatMap(({ label, rs, sse }) => {
      const ws = rs.find((r) => r.target === "ws");
      return rs.map((r) => [
        label,
        r.target,
        k(r.stream?.deliveredTokPerS),
        ratio(r.stream?.deliveredTokPerS, ws?.stream?.deliveredTokPerS),
        f(r.cpuPerMTok?.total),
        ratio(r.cpuPerMTok?.total, sse?.cpuPerMTok?.total),
        roles(r),
        noise(r),
      ]);
    });
    out.push(table(["load", "target", "delivered tok/s", "× raw ws", "server CPU-s per 1M tok", x, "per process", "noise (cores)"], rows));
  }
  const w3 = of("W3");
  if (w3.length) {
    out.push("W3 — resume storm (new socket opened → first missed event, ms)");
    out.push(
      table(
        [
          "target",
          "load",
          "reconnects",
          "resume p50 / p99 / max",
          "of which subscribe → event p50 / p99",
          "lost",
          "duplicated",
          "unfinished",
        ],
        w3.map((r) => [
          r.target,
          r.label,
          String(r.resume?.reconnects ?? "–"),
          ms(r.resume?.resumeMs),
          ms(r.resume?.subscribeMs, ["p50", "p99"]),
          String(r.resume?.lost ?? "–"),
          String(r.resume?.dup ?? "–"),
          String(r.resume?.unfinished ?? "–"),
        ]),
      ),
    );
  }
  const w4 = of("W4");
  if (w4.length) {
    out.push("W4 — cancel (ms from sending cancel)");
    out.push(
      table(
        ["target", "load", "→ end p50 / p99 / max", "→ ok p50 / p99", "tokens after cancel p50 / max", "tokens after ok", "not cancelled"],
        w4.map((r) => {
          const c = r.cancel;
          return [
            r.target,
            r.label,
            ms(c?.toEndMs),
            ms(c?.toOkMs, ["p50", "p99"]),
            ms(c?.tokensAfterCancel, ["p50", "max"]),
            String(c?.tokensAfterOk ?? "–"),
            String(c?.notCancelled ?? "–"),
          ];
        }),
      ),
    );
  }
  const w5 = of("W5");
  if (w5.length) {
    out.push("W5 — idle sockets on one server process (RSS delta per socket)");
    out.push(
      table(
        ["target", "sockets open", "KiB per socket (conn process)", "KiB per socket (all processes)"],
        w5.map((r) => [
          r.target,
          `${r.idle?.opened ?? 0}${r.idle?.failed ? ` (${r.idle.failed} failed)` : ""}`,
          f(r.rssPerConnKiB?.conn),
          f(r.rssPerConnKiB?.all),
        ]),
      ),
    );
  }
  const w6 = of("W6");
  if (w6.length) {
    // Against the SSE row that started sooner: the stricter comparison.
    const sse = sseRef(w6, (r) => r.burst?.startMs.p99 ?? Number.NaN);
    out.push(
      `W6 — a burst: every generate sent at one instant (→ the answer's first event, ms; SSE connects inside the burst; × ${sse?.target ?? "SSE"}, the SSE row with the lower p99)`,
    );
    out.push(
      table(
        ["target", "load", "started", "→ first event p50 / p99 / max", "p99 × SSE", "→ accepted p50 / p99", "→ generator began p50 / p99"],
        w6.map((r) => [
          r.target,
          r.label,
          `${r.burst?.started ?? 0}/${r.burst?.streams ?? 0}`,
          ms(r.burst?.startMs),
          ratio(r.burst?.startMs.p99, sse?.burst?.startMs.p99),
          ms(r.burst?.acceptedMs, ["p50", "p99"]),
          ms(r.burst?.requestPathMs, ["p50", "p99"]),
        ]),
      ),
    );
  }
  out.push(...renderHistory(of("W7")));
  const notes = records.flatMap((r) => r.notes.map((n) => `- ${r.workload} ${r.target}: ${n}`));
  if (notes.length) out.push(`Notes:\n${notes.join("\n")}`);
  return out.join("\n\n");
}
