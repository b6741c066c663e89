// nats-server's CPU profile: Go's pprof format, fetched from its profiling port (`prof_port`,
// net/http/pprof) while a job runs, and summarized like the V8 profiles of edge and worker
// (top functions by self time, self time by Go package), plus the time under each of the
// server's own functions (inclusive), which is what says where a stored event's cost goes.
//   node bench/dist/go-profile.js <file.pprof>... [--top N]

import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { Profile } from "pprof-format";
import { renderProfile, type ProfileSummary } from "./profile.js";

/**
 * Writes to `file` a CPU profile of the Go process serving pprof on `port`, taken over the next
 * `seconds` (the request returns when they are up). False when the port did not answer: a
 * missing profile must not fail the run it was only watching.
 */
export async function captureGoProfile(port: number, seconds: number, file: string): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/debug/pprof/profile?seconds=${seconds}`);
    if (!res.ok) return false;
    writeFileSync(file, Buffer.from(await res.arrayBuffer()));
    return true;
  } catch {
    return false;
  }
}

/** `github.com/nats-io/nats-server/v2/server.(*client).deliverMsg` → `server.(*client).deliverMsg`. */
const shortName = (name: string): string => name.slice(name.lastIndexOf("/") + 1);

/** The Go package of a symbol, by its last path element: `server`, `runtime`, `syscall`, `poll`. */
function goPackage(name: string): string {
  const short = shortName(name);
  const dot = short.indexOf(".");
  return dot > 0 ? short.slice(0, dot) : short;
}

const num = (x: number | bigint | undefined): number => Number(x ?? 0);

type Entry = { fn: string; where: string; ns: number };

export function summarizeGoProfile(file: string, topN = 15): ProfileSummary {
  const raw = readFileSync(file);
  // Go serves the profile gzipped (magic 1f 8b); a file saved by other tools may not be.
  const prof = Profile.decode(raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw);
  const str = (i: number | bigint): string => prof.stringTable.strings[num(i)] ?? "";
  const cpu = prof.sampleType.findIndex((t) => str(t.type) === "cpu");
  const valueAt = cpu >= 0 ? cpu : prof.sampleType.length - 1;
  const fns = new Map(prof.function.map((f) => [num(f.id), { name: str(f.name), file: path.basename(str(f.filename)) }]));
  // Per location, its frames innermost first (pprof lists inlined callees before their caller).
  const frames = new Map(
    prof.location.map((l) => [
      num(l.id),
      l.line.map((ln) => {
        const f = fns.get(num(ln.functionId));
        return { fn: shortName(f?.name ?? "?"), pkg: goPackage(f?.name ?? "?"), where: `${f?.file ?? "?"}:${num(ln.line)}` };
      }),
    ]),
  );
  const self = new Map<string, Entry>();
  const total = new Map<string, Entry>();
  const pkgs = new Map<string, number>();
  let busy = 0;
  for (const s of prof.sample) {
    const ns = num(s.value[valueAt]);
    const stack = s.locationId.flatMap((id) => frames.get(num(id)) ?? []);
    const leaf = stack[0];
    if (!leaf) continue;
    busy += ns;
    add(self, leaf.fn, leaf.where, ns);
    pkgs.set(leaf.pkg, (pkgs.get(leaf.pkg) ?? 0) + ns);
    // Each function once per sample, however often it recurses.
    for (const fr of new Map(stack.filter((f) => f.pkg === "server").map((f) => [f.fn, f])).values()) add(total, fr.fn, "", ns);
  }
  const pct = (ns: number): number => (busy > 0 ? (100 * ns) / busy : 0);
  const top = (m: Map<string, Entry>) =>
    [...m.values()]
      .sort((a, b) => b.ns - a.ns)
      .slice(0, topN)
      .map((e) => ({ fn: e.fn, where: e.where, ms: e.ns / 1e6, pct: pct(e.ns) }));
  return {
    file,
    busyMs: busy / 1e6,
    top: top(self),
    byPackage: [...pkgs]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12)
      .map(([pkg, ns]) => ({ pkg, ms: ns / 1e6, pct: pct(ns) })),
    inclusive: top(total),
  };
}

function add(m: Map<string, Entry>, fn: string, where: string, ns: number): void {
  const e = m.get(fn) ?? { fn, where, ns: 0 };
  e.ns += ns;
  m.set(fn, e);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const at = args.indexOf("--top");
  const topN = at >= 0 ? Number(args.splice(at, 2)[1]) : 25;
  for (const f of args) console.log(renderProfile(summarizeGoProfile(f, topN)));
}
