// The baselines: a plain SSE server and a raw ws server (bench/servers), each one process
// that generates its tokens itself with the same scripted generator the worker runs.

import { spawnService } from "@unbroken/testing";
import path from "node:path";
import { BENCH_DIST, nodeEnv, stampFile, stampsOf, type Protocol, type RunningTarget, type StartOptions, type Target } from "./target.js";

function baseline(name: "sse" | "ws", script: string): Target {
  const protocol: Protocol = name;
  return {
    name,
    protocol,
    async start(opts: StartOptions): Promise<RunningTarget> {
      const stamps = stampFile();
      const svc = await spawnService({
        name: `${name}-server`,
        script: path.join(BENCH_DIST, "servers", script),
        env: { SCRIPTED_TPS: String(opts.tps), ...nodeEnv({ stamps: stamps.file, profileDir: opts.profileDir }) },
        readyMsg: "listening",
      });
      return {
        name,
        protocol,
        url: name === "sse" ? `http://127.0.0.1:${svc.port}` : `ws://127.0.0.1:${svc.port}/v1/ws`,
        pids: { server: svc.pid },
        stamps: stampsOf(stamps.file),
        async stop() {
          await svc.stop("SIGTERM", 5_000);
          stamps.remove();
        },
      };
    },
    async close() {},
  };
}

export const sseTarget = (): Target => baseline("sse", "sse-server.js");
export const wsTarget = (): Target => baseline("ws", "ws-server.js");
