// Runs one load job against a running target and reads what it cost from /proc: CPU
// seconds of every server process and of the load process over the job, their RSS before
// and at peak, and how busy the rest of the machine was meanwhile (noise).

import { LoadProcess } from "./loadproc.js";
import { cpuSnapshot, machineBusySeconds, RssPeak, rssSnapshot } from "./proc.js";
import type { RunningTarget, StartOptions, Target } from "./targets/target.js";
import type { IdleResult, Job, StreamsResult } from "./load/types.js";

export interface Usage {
  wallS: number;
  /** CPU seconds per process role over the job (edge, worker, nats-server, server, load). */
  cpuS: Record<string, number>;
  /** Sum over the server-side roles (everything but the load client). */
  serverCpuS: number;
  rssBeforeKiB: Record<string, number>;
  rssPeakKiB: Record<string, number>;
  /** CPU seconds the machine spent on processes other than these (and the bench itself). */
  otherCpuS: number;
}

export interface Probe {
  finish(): Usage;
}

/**
 * Starts measuring what rt's processes use. The load is `load`'s process, or, without one, this
 * process (W7's fill, which the bench writes itself); either way the bench's own CPU is ours,
 * not the machine's noise.
 */
export function startProbe(rt: RunningTarget, load?: LoadProcess): Probe {
  const pids = load ? { ...rt.pids, load: load.pid } : { ...rt.pids };
  const cpu0 = cpuSnapshot(pids);
  const self0 = process.cpuUsage();
  const busy0 = machineBusySeconds();
  const t0 = performance.now();
  const rssBeforeKiB = rssSnapshot(rt.pids);
  const peak = new RssPeak(rt.pids);
  return {
    finish() {
      const rssPeakKiB = peak.stop();
      const cpu1 = cpuSnapshot(pids);
      const self = process.cpuUsage(self0);
      const busy = machineBusySeconds() - busy0;
      const cpuS: Record<string, number> = {};
      for (const role of Object.keys(pids)) cpuS[role] = (cpu1[role] ?? Number.NaN) - (cpu0[role] ?? Number.NaN);
      const selfS = (self.user + self.system) / 1e6;
      if (!load) cpuS.load = selfS;
      const serverCpuS = Object.keys(rt.pids).reduce((a, r) => a + (cpuS[r] ?? 0), 0);
      const ours = serverCpuS + (load ? (cpuS.load ?? 0) + selfS : selfS);
      return {
        wallS: (performance.now() - t0) / 1000,
        cpuS,
        serverCpuS,
        rssBeforeKiB,
        rssPeakKiB,
        otherCpuS: Math.max(0, busy - ours),
      };
    },
  };
}

/** Starts the target, hands it to `fn`, and stops every process it started. */
export async function withTarget<T>(target: Target, opts: StartOptions, fn: (rt: RunningTarget) => Promise<T>): Promise<T> {
  const rt = await target.start(opts);
  try {
    return await fn(rt);
  } finally {
    await rt.stop();
  }
}

/** One streaming job in a fresh load process. */
export async function measureStreams(
  rt: RunningTarget,
  job: Exclude<Job, { kind: "idle" }>,
): Promise<{ result: StreamsResult; usage: Usage }> {
  const load = await LoadProcess.start();
  try {
    const probe = startProbe(rt, load);
    const result = await load.run(job);
    return { result, usage: probe.finish() };
  } finally {
    await load.stop();
  }
}

export interface IdleMeasure {
  result: IdleResult;
  /** RSS per role once every socket is open and has settled for a second. */
  rssOpenKiB: Record<string, number>;
  usage: Usage;
}

/** W5: open the sockets, let them settle, read RSS, close them. */
export async function measureIdle(rt: RunningTarget, job: Extract<Job, { kind: "idle" }>, nofile: number): Promise<IdleMeasure> {
  const load = await LoadProcess.start(nofile);
  try {
    const probe = startProbe(rt, load);
    let rssOpenKiB: Record<string, number> = {};
    const result = await load.run(job, async () => {
      await new Promise((r) => setTimeout(r, 1000));
      rssOpenKiB = rssSnapshot(rt.pids);
    });
    return { result, rssOpenKiB, usage: probe.finish() };
  } finally {
    await load.stop();
  }
}
