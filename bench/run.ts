// `npm run bench`: runs the selected workloads against our stack and the baselines in
// the same run, prints the tables, and writes bench/results/<timestamp>.{json,svg}.

import { findNatsServer, freePort } from "@unbroken/testing";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parse, USAGE, type Params, type TargetName, type Workload } from "./args.js";
import { installCleanup } from "./cleanup.js";
import { machineBusySeconds } from "./proc.js";
import { runW6 } from "./burst.js";
import { summarizeGoProfile } from "./go-profile.js";
import { renderProfile, summarizeProfile } from "./profile.js";
import { renderTables } from "./report.js";
import { medianOf } from "./stats.js";
import { renderSvg } from "./svg.js";
import { sseLeanTarget, sseTarget, wsTarget } from "./targets/baseline.js";
import { ROOT, type Target } from "./targets/target.js";
import { unbrokenTarget } from "./targets/unbroken.js";
import { runW01, runW2, runW3, runW4, runW5, type Context, type RunRecord } from "./workloads.js";
import { runW7 } from "./history.js";

const log = (msg: string): void => void process.stderr.write(`[bench] ${msg}\n`);

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", cwd: ROOT });
  return (r.stdout ?? "").trim();
}

function meta(params: Params): Record<string, unknown> {
  const nats = findNatsServer();
  return {
    date: new Date().toISOString(),
    commit: sh("git", ["rev-parse", "HEAD"]),
    dirty: sh("git", ["status", "--porcelain"]).length > 0,
    node: process.version,
    natsServer: nats ? sh(nats, ["--version"]) : undefined,
    cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? "?"}`,
    loadavg: os.loadavg(),
    params,
  };
}

/**
 * Which targets each workload runs on: W3 needs resume, W4 an upstream cancel message (SSE has
 * none). The cluster runs what capacity.md takes from it: per-token costs (W1) and resumes (W3).
 */
function targetsFor(w: Workload, chosen: TargetName[]): TargetName[] {
  if (w !== "W1") chosen = chosen.filter((t) => t !== "unbroken-nc");
  if (w !== "W1" && w !== "W3") chosen = chosen.filter((t) => t !== "unbroken-r3");
  if (w === "W3") return chosen.filter((t) => t === "unbroken" || t === "unbroken-r3");
  // W7 starts a stack of its own (a fresh nats-server: its empty stream must be empty).
  if (w === "W7") return chosen.filter((t) => t === "unbroken");
  if (w === "W4") return chosen.filter((t) => t !== "sse" && t !== "sse-lean");
  return chosen;
}

async function runOnce(params: Params, targets: Map<TargetName, Target>, ctx: Context): Promise<RunRecord[]> {
  const wanted = new Set(params.only);
  const records: RunRecord[] = [];
  const each = async (w: Workload, fn: (t: Target) => Promise<RunRecord[]>): Promise<void> => {
    for (const name of targetsFor(w, params.targets)) records.push(...(await fn(targets.get(name) as Target)));
  };
  if (wanted.has("W0") || wanted.has("W1")) {
    log(wanted.has("W0") ? "W0 + W1" : "W1");
    // W0 only: the first shape carries its probes, and no other shape runs.
    const shapes = wanted.has("W1") ? params.w1Streams : params.w1Streams.slice(0, 1);
    for (const [i, n] of shapes.entries()) await each("W1", (t) => runW01(t, ctx, wanted, n, i === 0));
  }
  if (wanted.has("W2")) {
    log("W2");
    await each("W2", (t) => runW2(t, ctx));
  }
  if (wanted.has("W3")) {
    log("W3");
    await each("W3", (t) => runW3(t, ctx));
  }
  if (wanted.has("W4")) {
    log("W4");
    await each("W4", (t) => runW4(t, ctx));
  }
  if (wanted.has("W5")) {
    log("W5");
    await each("W5", (t) => runW5(t, ctx));
  }
  if (wanted.has("W6")) {
    log("W6");
    await each("W6", (t) => runW6(t, ctx));
  }
  if (wanted.has("W7")) {
    log("W7");
    await each("W7", () => runW7(ctx));
  }
  return records;
}

/** The median of each (workload, load, target) over the repeats. */
function medians(reps: RunRecord[][]): RunRecord[] {
  const first = reps[0] ?? [];
  return first.map((r) =>
    medianOf(reps.map((rep) => rep.find((x) => x.workload === r.workload && x.label === r.label && x.target === r.target) ?? r)),
  );
}

async function main(): Promise<void> {
  const defaultOut = path.join(ROOT, "bench", "results");
  let params: Params | "help";
  try {
    params = parse(process.argv.slice(2), defaultOut);
  } catch (err) {
    process.stderr.write(`[bench] ${(err as Error).message}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  if (params === "help") return void process.stdout.write(USAGE);
  if (process.platform !== "linux") throw new Error("the bench reads /proc: it runs on Linux only");
  for (const p of ["packages/cli/dist/src/edge.js", "packages/cli/dist/src/worker.js"]) {
    if (!existsSync(path.join(ROOT, p))) throw new Error(`${p} is missing: run npm run build (or npm run bench, which builds)`);
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  mkdirSync(params.outDir, { recursive: true });
  const profileDir = params.profile ? path.join(params.outDir, `${stamp}-profiles`) : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const targets = new Map<TargetName, Target>([
    ["sse", sseTarget()],
    ["sse-lean", sseLeanTarget()],
    ["ws", wsTarget()],
    // --profile: nats-server serves pprof too, for its CPU profile during W1.
    ["unbroken", unbrokenTarget({ name: "unbroken", workerEnv: {}, ...(profileDir ? { profPort: await freePort() } : {}) })],
    ["unbroken-nc", unbrokenTarget({ name: "unbroken-nc", workerEnv: { COALESCE_MS: "0" } })],
    ["unbroken-r3", unbrokenTarget({ name: "unbroken-r3", workerEnv: {}, replicas: 3 })],
  ]);
  installCleanup(async () => {
    await Promise.allSettled([...targets.values()].map((t) => t.close()));
  });

  const busy0 = machineBusySeconds();
  await new Promise((r) => setTimeout(r, 1000));
  const idleBusy = machineBusySeconds() - busy0;
  log(
    `${params.mode} mode; ${params.only.join(",")} on ${params.targets.join(",")}; machine busy before start: ${idleBusy.toFixed(2)} cores`,
  );
  if (idleBusy > 0.25) log("warning: other processes are using the CPU; numbers from this run will be noisy");

  const ctx: Context = { params, tag: Date.now().toString(36).slice(-5), log, profiled: new Map(), ...(profileDir ? { profileDir } : {}) };
  const reps: RunRecord[][] = [];
  const t0 = performance.now();
  try {
    for (let i = 0; i < params.repeat; i++) {
      if (params.repeat > 1) log(`repeat ${i + 1}/${params.repeat}`);
      reps.push(await runOnce(params, targets, ctx));
    }
  } finally {
    await Promise.allSettled([...targets.values()].map((t) => t.close()));
  }
  const table = medians(reps);
  const tables = renderTables(table);
  const title = `unbroken bench ${params.mode} — ${new Date().toISOString().slice(0, 19)}Z, ${os.cpus().length} cores`;
  const json = path.join(params.outDir, `${stamp}.json`);
  const svg = path.join(params.outDir, `${stamp}.svg`);
  const m = meta(params);
  writeFileSync(
    json,
    JSON.stringify({ ...m, idleBusyCores: idleBusy, seconds: (performance.now() - t0) / 1000, medians: table, repeats: reps }, null, 1),
  );
  writeFileSync(svg, renderSvg(table, title));
  process.stdout.write(`\n${tables}\n\n`);
  if (profileDir && existsSync(profileDir)) {
    for (const f of readdirSync(profileDir).filter((x) => x.endsWith(".cpuprofile"))) {
      const pid = Number(f.split(".")[1]);
      process.stdout.write(`[${ctx.profiled.get(pid) ?? "?"}] ${renderProfile(summarizeProfile(path.join(profileDir, f)))}\n\n`);
    }
    for (const f of readdirSync(profileDir).filter((x) => x.endsWith(".pprof"))) {
      process.stdout.write(`[nats-server] ${renderProfile(summarizeGoProfile(path.join(profileDir, f)))}\n\n`);
    }
  }
  log(`done in ${((performance.now() - t0) / 1000).toFixed(0)} s; wrote ${path.relative(ROOT, json)} and ${path.relative(ROOT, svg)}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`[bench] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
