// The full stack: one real nats-server (JetStream, file storage) for the whole run, or a
// 3-node cluster with every stream and bucket at 3 replicas (`unbroken-r3`), and a fresh
// worker (scripted generator) and edge per workload, each its own child process started
// exactly as `npm run worker` / `npm run edge` would run it.

import {
  spawnService,
  startNatsCluster,
  startNatsServer,
  type NatsClusterHandle,
  type NatsServerHandle,
  type ServiceHandle,
} from "@unbroken/testing";
import path from "node:path";
import { ROOT, nodeEnv, stampFile, stampsOf, type RunningTarget, type StartOptions, type Target } from "./target.js";

const EDGE = path.join(ROOT, "packages/cli/dist/src/edge.js");
const WORKER = path.join(ROOT, "packages/cli/dist/src/worker.js");

export interface UnbrokenVariant {
  name: string;
  /** Settings for the worker beyond the defaults (e.g. coalescing off). */
  workerEnv: Record<string, string>;
  /** nats-server's profiling port (`prof_port`: W7's heap readings, --profile's CPU profile); single server only. */
  profPort?: number;
  /**
   * Nodes of a JetStream cluster on this machine, each stream and bucket at that many replicas
   * (REPLICAS): what capacity.md's R3 rows cost. Default 1: one server.
   */
  replicas?: number;
}

/** What edge and worker connect to, started once per run and reused by every workload. */
interface NatsBackend {
  url: string;
  /** nats-server processes by role: `nats-server`, or `nats-n0`… for a cluster's nodes. */
  pids: Record<string, number>;
  /** The single server's store and profiling port; none for a cluster. */
  storeDir?: string;
  profPort?: number;
  stop(): Promise<void>;
}

const single = (s: NatsServerHandle, profPort: number | undefined): NatsBackend => ({
  url: s.url,
  pids: { "nats-server": s.pid },
  storeDir: s.storeDir,
  ...(profPort ? { profPort } : {}),
  stop: () => s.stop(),
});

const cluster = (c: NatsClusterHandle): NatsBackend => ({
  url: c.url,
  pids: Object.fromEntries(c.nodes.map((n) => [`nats-${n.name}`, n.pid])),
  stop: () => c.stop(),
});

async function startNats(variant: UnbrokenVariant): Promise<NatsBackend> {
  const replicas = variant.replicas ?? 1;
  if (replicas > 1) return cluster(await startNatsCluster({ size: replicas }));
  const { profPort } = variant;
  return single(await startNatsServer(profPort ? { configExtra: `prof_port: ${profPort}` } : {}), profPort);
}

export function unbrokenTarget(variant: UnbrokenVariant): Target {
  let backend: NatsBackend | undefined;
  return {
    name: variant.name,
    protocol: "unbroken",
    async start(opts: StartOptions): Promise<RunningTarget> {
      backend ??= await startNats(variant);
      const nats = backend;
      const stamps = stampFile();
      const replicas: Record<string, string> = variant.replicas && variant.replicas > 1 ? { REPLICAS: String(variant.replicas) } : {};
      const common = { NATS_URL: nats.url, LOG_LEVEL: "info", DRAIN_TIMEOUT: "2s", ...replicas };
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
          pids: { edge: edge.pid, worker: worker.pid, ...nats.pids },
          ...(nats.storeDir
            ? { broker: { url: nats.url, storeDir: nats.storeDir, ...(nats.profPort ? { profPort: nats.profPort } : {}) } }
            : {}),
          stamps: stampsOf(stamps.file),
          stop,
        };
      } catch (err) {
        await stop();
        throw err;
      }
    },
    async close(): Promise<void> {
      await backend?.stop();
      backend = undefined;
    },
  };
}
