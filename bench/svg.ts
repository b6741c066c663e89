// A hand-written SVG chart per run: horizontal bars, one panel per measure.

import type { RunRecord } from "./workloads.js";

interface Segment {
  name: string;
  value: number;
}
interface Row {
  label: string;
  segments: Segment[];
}
interface Panel {
  title: string;
  unit: string;
  rows: Row[];
}

const COLORS: Record<string, string> = {
  edge: "#4e79a7",
  worker: "#f28e2b",
  "nats-server": "#59a14f",
  server: "#9c755f",
  p50: "#76b7b2",
  p99: "#e15759",
  "tok/s": "#4e79a7",
  KiB: "#b07aa1",
};

const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const num = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

function panels(records: RunRecord[]): Panel[] {
  const out: Panel[] = [];
  const of = (w: string): RunRecord[] => records.filter((r) => r.workload === w);
  const cpuRow = (r: RunRecord): Row => ({
    label: `${r.target} (${r.label})`,
    segments: Object.entries(r.cpuPerMTok ?? {})
      .filter(([role]) => role !== "total" && role !== "load")
      .map(([name, value]) => ({ name, value })),
  });
  const w1 = of("W1");
  if (w1.length) {
    out.push({ title: "W1 server CPU per million tokens, by process", unit: "CPU-s", rows: w1.map(cpuRow) });
    out.push({
      title: "W1 latency added (generator due time → client)",
      unit: "ms",
      rows: w1.flatMap((r) => [
        { label: `${r.target} p50`, segments: [{ name: "p50", value: r.stream?.latencyMs?.p50 ?? 0 }] },
        { label: `${r.target} p99`, segments: [{ name: "p99", value: r.stream?.latencyMs?.p99 ?? 0 }] },
      ]),
    });
  }
  const w2 = of("W2");
  if (w2.length) {
    out.push({
      title: "W2 delivered tokens per second (as fast as possible)",
      unit: "tok/s",
      rows: w2.map((r) => ({ label: `${r.target} (${r.label})`, segments: [{ name: "tok/s", value: r.stream?.deliveredTokPerS ?? 0 }] })),
    });
    out.push({ title: "W2 server CPU per million tokens, by process", unit: "CPU-s", rows: w2.map(cpuRow) });
  }
  const mem = [...of("W1"), ...of("W5")].filter((r) => r.rssPerConnKiB);
  if (mem.length) {
    out.push({
      title: "RSS per connection (W1 streaming, W5 idle), all server processes",
      unit: "KiB",
      rows: mem.map((r) => ({
        label: `${r.target} ${r.workload === "W1" ? "streaming" : "idle"}`,
        segments: [{ name: "KiB", value: Math.max(0, r.rssPerConnKiB?.all ?? 0) }],
      })),
    });
  }
  return out;
}

export function renderSvg(records: RunRecord[], title: string): string {
  const width = 900;
  const labelW = 260;
  const barW = width - labelW - 90;
  const rowH = 20;
  const parts: string[] = [];
  let y = 40;
  for (const p of panels(records)) {
    parts.push(`<text x="10" y="${y}" font-weight="bold">${esc(p.title)} (${esc(p.unit)})</text>`);
    y += 12;
    const max = Math.max(1e-9, ...p.rows.map((r) => r.segments.reduce((a, s) => a + (Number.isFinite(s.value) ? s.value : 0), 0)));
    const legend = [...new Set(p.rows.flatMap((r) => r.segments.map((s) => s.name)))];
    for (const row of p.rows) {
      let x = labelW;
      let total = 0;
      parts.push(`<text x="${labelW - 6}" y="${y + 14}" text-anchor="end">${esc(row.label)}</text>`);
      for (const s of row.segments) {
        const v = Number.isFinite(s.value) ? s.value : 0;
        const w = (v / max) * barW;
        parts.push(
          `<rect x="${x.toFixed(1)}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${COLORS[s.name] ?? "#bab0ac"}"><title>${esc(`${s.name}: ${num(v)}`)}</title></rect>`,
        );
        x += w;
        total += v;
      }
      parts.push(`<text x="${(x + 4).toFixed(1)}" y="${y + 14}">${num(total)}</text>`);
      y += rowH;
    }
    if (legend.length > 1) {
      let lx = labelW;
      for (const name of legend) {
        parts.push(
          `<rect x="${lx}" y="${y + 4}" width="10" height="10" fill="${COLORS[name] ?? "#bab0ac"}"/><text x="${lx + 14}" y="${y + 13}">${esc(name)}</text>`,
        );
        lx += 14 + name.length * 7 + 16;
      }
      y += 18;
    }
    y += 24;
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`,
    ...parts,
    `</svg>`,
  ].join("\n");
}
