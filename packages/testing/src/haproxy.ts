// HAProxy as a child process for tests: runs a given config file (deploy/haproxy.cfg) in the
// foreground with its addresses from the environment, and is stopped like every other child
// here (also when the test process dies first).
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import { connect } from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { exitPromise, isRunning, keepAlive, release, Tail, terminate, type ExitInfo } from "./child.js";
import { registerCleanup } from "./cleanup.js";

export const HAPROXY_INSTALL_HINT =
  "install it (Debian/Ubuntu: apt-get install haproxy; `npm test` does so itself as root) or set HAPROXY_BIN";

/** $HAPROXY_BIN, then PATH, then /usr/sbin. */
export function findHaproxy(): string | undefined {
  const executable = (p: string): boolean => {
    try {
      accessSync(p, constants.X_OK);
      return statSync(p).isFile();
    } catch {
      return false;
    }
  };
  const fromEnv = process.env.HAPROXY_BIN;
  if (fromEnv) return executable(fromEnv) ? fromEnv : undefined;
  const dirs = (process.env.PATH ?? "").split(path.delimiter).filter(Boolean);
  return [...dirs.map((d) => path.join(d, "haproxy")), "/usr/sbin/haproxy", "/usr/local/sbin/haproxy"].find(executable);
}

export interface HaproxyOptions {
  /** The config file to run. */
  config: string;
  /** Variables the config refers to (`"${NAME}"`). */
  env: Record<string, string>;
  /** The port it listens on, to wait for (from the env the test chose). */
  port: number;
  timeoutMs?: number;
}

export interface HaproxyHandle {
  readonly pid: number;
  /** Everything it logged (stdout and stderr), for assertions and failure messages. */
  output(): string;
  stop(): Promise<ExitInfo>;
}

export async function startHaproxy(opts: HaproxyOptions): Promise<HaproxyHandle> {
  const bin = findHaproxy();
  if (!bin) throw new Error(`haproxy not found: ${HAPROXY_INSTALL_HINT}`);
  // -db: foreground, no daemon; -W would add a master process we do not need.
  const child: ChildProcess = spawn(bin, ["-db", "-f", opts.config], {
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out = new Tail(64_000);
  child.stdout?.on("data", (c: Buffer) => out.push(c));
  child.stderr?.on("data", (c: Buffer) => out.push(c));
  child.on("error", (e) => out.push(`spawn error: ${e.message}\n`));
  const exited = exitPromise(child, "exit");
  const unregister = registerCleanup(() => {
    if (isRunning(child)) child.kill("SIGKILL");
  });
  release(child);
  const handle: HaproxyHandle = {
    get pid() {
      return child.pid ?? -1;
    },
    output: () => out.toString(),
    stop: async () => {
      const info = await terminate(child, exited, "SIGTERM", 5_000);
      unregister();
      return info;
    },
  };
  const done = keepAlive();
  try {
    const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
    while (!(await accepts(opts.port))) {
      if (!isRunning(child)) throw new Error(`haproxy exited before listening:\n${out}`);
      if (Date.now() > deadline) throw new Error(`haproxy did not listen on ${opts.port}:\n${out}`);
      await sleep(50);
    }
  } catch (err) {
    await handle.stop();
    throw err;
  } finally {
    done();
  }
  return handle;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}
