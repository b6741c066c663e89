// The baselines, each one process (bench/servers): a plain SSE server and a raw ws server
// that generate their tokens with the same scripted generator the worker runs, and a lean
// SSE server as a user would write it (a word list and one shared timer), the cheaper SSE row.

import { spawnService } from "@unbroken/testing";
import path from "node:path";
import { BENCH_DIST, nodeEnv, stampFile, stampsOf, type Protocol, type RunningTarget, type StartOptions, type Target } from "./target.js";

function baseline(name: "sse" | "sse-lean" | "ws", script: string): Target {
  const protocol: Protocol = name === "ws" ? "ws" : "sse";
  // The lean server writes its own stamps (servers/tick-stamps.ts): it has no scripted
  // generator for the preload to wrap, and does not load one.
  const preload = name !== "sse-lean";
  return {
    name,
    protocol,
    async start(opts: StartOptions): Promise<RunningTarget> {
      const stamps = stampFile();
      const env = preload
        ? nodeEnv({ stamps: stamps.file, profileDir: opts.profileDir })
        : { ...nodeEnv({ profileDir: opts.profileDir }), BENCH_STAMP_FILE: stamps.file };
      const svc = await spawnService({
        name: `${name}-server`,
        script: path.join(BENCH_DIST, "servers", script),
        env: { SCRIPTED_TPS: String(opts.tps), ...env },
        readyMsg: "listening",
      });
      return {
        name,
        protocol,
        url: protocol === "sse" ? `http://127.0.0.1:${svc.port}` : `ws://127.0.0.1:${svc.port}/v1/ws`,
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
export const sseLeanTarget = (): Target => baseline("sse-lean", "lean-sse-server.js");
export const wsTarget = (): Target => baseline("ws", "ws-server.js");
