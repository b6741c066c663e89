// Readings from /proc (Linux only): CPU time and resident memory of a process, and the
// open-files limit. Nothing here estimates: every number is what the kernel reports.

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";

let tick: number | undefined;

/** Clock ticks per second (the unit of utime/stime in /proc/<pid>/stat). */
export function clockTicks(): number {
  if (tick === undefined) {
    const r = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
    const n = Number(r.stdout?.trim());
    tick = Number.isFinite(n) && n > 0 ? n : 100;
  }
  return tick;
}

/** utime + stime of the whole process (all threads), in seconds; NaN when it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Field 2 (comm) may contain spaces and parentheses: split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (Number(rest[11]) + Number(rest[12])) / clockTicks();
  } catch {
    return Number.NaN;
  }
}

/** VmRSS in KiB; NaN when the process is gone. */
export function rssKiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

export interface NofileLimit {
  soft: number;
  hard: number;
}

/** The "Max open files" limit of a process (default: this one). Infinity for unlimited. */
export function nofileLimit(pid: number | "self" = "self"): NofileLimit {
  const text = readFileSync(`/proc/${pid}/limits`, "utf8");
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  const num = (s: string | undefined): number => (s === undefined || s === "unlimited" ? Infinity : Number(s));
  return { soft: num(m?.[1]), hard: num(m?.[2]) };
}

/**
 * Raises a running process's soft open-files limit to `want` (capped at its hard limit) with
 * util-linux `prlimit`. Returns the soft limit it has afterwards.
 */
export function raiseNofile(pid: number, want: number): number {
  const { soft, hard } = nofileLimit(pid);
  if (soft >= want) return soft;
  const target = Math.min(want, hard);
  const r = spawnSync("prlimit", [`--pid=${pid}`, `--nofile=${target}:${hard === Infinity ? "unlimited" : hard}`], { encoding: "utf8" });
  if (r.status !== 0) return soft;
  return nofileLimit(pid).soft;
}

/** CPU seconds of several processes at once, keyed by role. */
export function cpuSnapshot(pids: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [role, pid] of Object.entries(pids)) out[role] = cpuSeconds(pid);
  return out;
}

/** Samples VmRSS of some processes every `everyMs` and keeps each one's peak. */
export class RssPeak {
  readonly peak: Record<string, number> = {};
  private readonly timer: ReturnType<typeof setInterval>;
  constructor(
    private readonly pids: Record<string, number>,
    everyMs = 200,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }
  private sample(): void {
    for (const [role, pid] of Object.entries(this.pids)) {
      const v = rssKiB(pid);
      if (Number.isFinite(v) && !(v <= (this.peak[role] ?? -1))) this.peak[role] = v;
    }
  }
  stop(): Record<string, number> {
    clearInterval(this.timer);
    this.sample();
    return this.peak;
  }
}

export const rssSnapshot = (pids: Record<string, number>): Record<string, number> =>
  Object.fromEntries(Object.entries(pids).map(([role, pid]) => [role, rssKiB(pid)]));

/** CPU seconds the whole machine spent busy (all cores, /proc/stat), for spotting noise. */
export function machineBusySeconds(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const busy = (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
  return busy / clockTicks();
}
