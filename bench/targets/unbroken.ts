// The full stack: one real nats-server (JetStream, file storage) for the whole run, and a
// fresh worker (scripted generator) and edge per workload, each its own child process
// started exactly as `npm run worker` / `npm run edge` would run it.

import { spawnService, startNatsServer, type NatsServerHandle, type ServiceHandle } from "@unbroken/testing";
import path from "node:path";
import { ROOT, nodeEnv, stampFile, stampsOf, type RunningTarget, type StartOptions, type Target } from "./target.js";

const EDGE = path.join(ROOT, "packages/cli/dist/src/edge.js");
const WORKER = path.join(ROOT, "packages/cli/dist/src/worker.js");

/**
 * `workerEnv`: settings for the worker beyond the defaults (e.g. coalescing off); `natsConfig`:
 * lines added to nats-server's config (W7's profiling port).
 */
export function unbrokenTarget(
  variant: { name: string; workerEnv: Record<string, string>; natsConfig?: string } = { name: "unbroken", workerEnv: {} },
): Target {
  let nats: NatsServerHandle | undefined;
  return {
    name: variant.name,
    protocol: "unbroken",
    async start(opts: StartOptions): Promise<RunningTarget> {
      nats ??= await startNatsServer(variant.natsConfig ? { configExtra: variant.natsConfig } : {});
      const stamps = stampFile();
      const common = { NATS_URL: nats.url, LOG_LEVEL: "info", DRAIN_TIMEOUT: "2s" };
      const started: ServiceHandle[] = [];
      const spawn = async (name: string, script: string, env: Record<string, string>, readyMsg: string): Promise<ServiceHandle> => {
        const svc = await spawnService({ name, script, env: { ...common, ...env }, readyMsg, timeoutMs: 30_000 });
        started.push(svc);
        return svc;
      };
      const stop = async (): Promise<void> => {
        await Promise.all(started.map((s) => s.stop("SIGTERM", 10_000)));
        stamps.remove();
      };
      try {
        const [edge, worker] = await Promise.all([
          spawn("edge", EDGE, { PORT: "0", HOST: "127.0.0.1", ...nodeEnv({ profileDir: opts.profileDir }) }, "listening"),
          spawn(
            "worker",
            WORKER,
            {
              GENERATOR: "scripted",
              METRICS_PORT: "0",
              SCRIPTED_TPS: String(opts.tps),
              CONCURRENCY: String(opts.concurrency),
              ...variant.workerEnv,
              ...nodeEnv({ stamps: stamps.file, profileDir: opts.profileDir }),
            },
            "ready",
          ),
        ]);
        return {
          name: variant.name,
          protocol: "unbroken",
          url: `ws://127.0.0.1:${edge.port}/v1/ws`,
          pids: { edge: edge.pid, worker: worker.pid, "nats-server": nats.pid },
          broker: { url: nats.url, storeDir: nats.storeDir },
          stamps: stampsOf(stamps.file),
          stop,
        };
      } catch (err) {
        await stop();
        throw err;
      }
    },
    async close(): Promise<void> {
      await nats?.stop();
      nats = undefined;
    },
  };
}
