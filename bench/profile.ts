// Summarizes V8 .cpuprofile files (node --cpu-prof): top functions by self time, and self
// time by package. Used by `npm run bench -- --profile`, or on its own:
//   node bench/dist/profile.js <file.cpuprofile>... [--top N]

import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  /** Sampled time that was not idle, ms. */
  busyMs: number;
  top: Array<{ fn: string; where: string; ms: number; pct: number }>;
  byPackage: Array<{ pkg: string; ms: number; pct: number }>;
  /** Time under each function, callees included (nats-server's own functions; see go-profile.ts). */
  inclusive?: Array<{ fn: string; where: string; ms: number; pct: number }>;
}

/** Where a frame's code lives: an npm package, one of ours, node internals, or V8 itself. */
function packageOf(url: string, fn: string): string {
  if (!url) return fn.startsWith("(") ? fn : "(native)";
  if (url.startsWith("node:")) return "node:internal";
  const nm = url.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = url.slice(nm + 13).split("/");
    return rest[0]?.startsWith("@") ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url);
  }
  const ours = /packages\/([^/]+)\//.exec(url);
  return ours ? `@unbroken/${ours[1]}` : path.basename(url);
}

export function summarizeProfile(file: string, topN = 15): ProfileSummary {
  const prof = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < prof.samples.length; i++) {
    const id = prof.samples[i] as number;
    self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
  }
  const fns = new Map<string, { fn: string; where: string; us: number }>();
  const pkgs = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of self) {
    const cf = byId.get(id)?.callFrame;
    if (!cf || cf.functionName === "(idle)") continue;
    busy += us;
    const where = cf.url ? `${packageOf(cf.url, cf.functionName)} ${path.basename(cf.url)}:${cf.lineNumber + 1}` : "";
    const key = `${cf.functionName}@${where}`;
    const e = fns.get(key) ?? { fn: cf.functionName || "(anonymous)", where, us: 0 };
    e.us += us;
    fns.set(key, e);
    const pkg = packageOf(cf.url, cf.functionName);
    pkgs.set(pkg, (pkgs.get(pkg) ?? 0) + us);
  }
  const pct = (us: number): number => (busy > 0 ? (100 * us) / busy : 0);
  return {
    file,
    busyMs: busy / 1000,
    top: [...fns.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, topN)
      .map((e) => ({ fn: e.fn, where: e.where, ms: e.us / 1000, pct: pct(e.us) })),
    byPackage: [...pkgs]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12)
      .map(([pkg, us]) => ({ pkg, ms: us / 1000, pct: pct(us) })),
  };
}

export function renderProfile(s: ProfileSummary): string {
  const lines = [`${path.basename(s.file)}: ${s.busyMs.toFixed(0)} ms sampled busy (idle excluded)`];
  lines.push(`  self time by package: ${s.byPackage.map((p) => `${p.pkg} ${p.pct.toFixed(1)}%`).join(", ")}`);
  lines.push("  top functions by self time:");
  for (const t of s.top) lines.push(`    ${t.pct.toFixed(1).padStart(5)}%  ${t.fn}  ${t.where}`);
  if (s.inclusive) {
    lines.push("  top functions by total time (callees included):");
    for (const t of s.inclusive) lines.push(`    ${t.pct.toFixed(1).padStart(5)}%  ${t.fn}`);
  }
  return lines.join("\n");
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const at = args.indexOf("--top");
  const top = at >= 0 ? Number(args.splice(at, 2)[1]) : 25;
  for (const f of args) console.log(renderProfile(summarizeProfile(f, top)));
}
