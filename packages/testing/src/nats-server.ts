// Throwaway nats-server instances for tests: random port, private JetStream
// store, guaranteed teardown. Never touches the developer's server on 4222.

import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants, rmSync, statSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { exitPromise, isRunning, keepAlive, release, Tail, terminate, type ExitInfo } from "./child.js";
import { registerCleanup } from "./cleanup.js";

export interface NatsServerOptions {
  /** Enable JetStream with file storage (default true). */
  jetstream?: boolean;
  /** Extra command-line arguments, appended after `-c <config>`. */
  args?: string[];
  /** Use this JetStream store dir instead of a fresh one; it is NOT deleted on stop(). */
  storeDir?: string;
  /** Raw text appended to the generated config file. */
  configExtra?: string;
  /** How long to wait for the server to come up (default 10 s). */
  timeoutMs?: number;
}

export interface NatsServerHandle extends AsyncDisposable {
  /** `nats://127.0.0.1:PORT` */
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** pid of the current process (changes on restart). */
  readonly pid: number;
  /** SIGTERM (SIGKILL after 5 s), then delete the temp dirs. Idempotent. */
  stop(): Promise<void>;
  /** Kill the process (default SIGKILL) but keep the store so restart() can recover it. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Start again on the same port and store dir (terminating the current process first if running). */
  restart(): Promise<void>;
}

const INSTALL_HINT = "install it with `apt-get install -y nats-server` or set NATS_SERVER_BIN";

function isExecutableFile(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Locate nats-server: $NATS_SERVER_BIN, then PATH, then the usual install locations. */
export function findNatsServer(): string | undefined {
  const fromEnv = process.env.NATS_SERVER_BIN;
  if (fromEnv) return isExecutableFile(fromEnv) ? fromEnv : undefined;
  const dirs = (process.env.PATH ?? "").split(path.delimiter).filter(Boolean);
  const candidates = [...dirs.map((d) => path.join(d, "nats-server")), "/usr/sbin/nats-server", "/usr/local/bin/nats-server"];
  return candidates.find(isExecutableFile);
}

export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const bin = findNatsServer();
  if (!bin) {
    const env = process.env.NATS_SERVER_BIN;
    throw new Error(
      env
        ? `NATS_SERVER_BIN=${env} is not an executable file`
        : `nats-server not found on PATH, /usr/sbin or /usr/local/bin: ${INSTALL_HINT}`,
    );
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), "unbroken-nats-"));
  const storeDir = opts.storeDir ?? path.join(dir, "store");
  await mkdir(storeDir, { recursive: true });
  const server = new NatsServer(bin, dir, storeDir, opts);
  try {
    await server.start(-1);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

class NatsServer implements NatsServerHandle {
  private child: ChildProcess | undefined;
  private exited: Promise<ExitInfo> = Promise.resolve({ code: null, signal: null });
  private stderr = new Tail();
  private stopped = false;
  private readonly unregister: () => void;
  private currentPort = 0;

  constructor(
    private readonly bin: string,
    private readonly dir: string,
    readonly storeDir: string,
    private readonly opts: NatsServerOptions,
  ) {
    this.unregister = registerCleanup(() => {
      if (this.child && isRunning(this.child)) this.child.kill("SIGKILL");
      rmSync(this.dir, { recursive: true, force: true });
    });
  }

  get port(): number {
    return this.currentPort;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.currentPort}`;
  }

  get pid(): number {
    return this.child?.pid ?? -1;
  }

  /** Spawn with `listen` on `port` (-1 = random) and wait for the ports file. */
  async start(port: number): Promise<void> {
    const { jetstream = true, args = [], configExtra = "", timeoutMs = 10_000 } = this.opts;
    const conf = path.join(this.dir, "nats-server.conf");
    // JSON.stringify gives double-quoted strings, which the NATS config parser accepts.
    const lines = [`listen: ${JSON.stringify(`127.0.0.1:${port}`)}`, `ports_file_dir: ${JSON.stringify(this.dir)}`];
    if (jetstream) lines.push(`jetstream { store_dir: ${JSON.stringify(this.storeDir)} }`);
    await writeFile(conf, `${lines.join("\n")}\n${configExtra}\n`);

    this.stderr = new Tail();
    const child = spawn(this.bin, ["-c", conf, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    this.exited = exitPromise(child, "exit");
    // Always drain the pipes: a Go process blocks once its stderr pipe is full.
    child.stdout?.on("data", (c: Buffer) => this.stderr.push(c));
    child.stderr?.on("data", (c: Buffer) => this.stderr.push(c));
    child.on("error", (e) => this.stderr.push(`spawn error: ${e.message}\n`));
    release(child);

    const done = keepAlive();
    try {
      this.currentPort = await this.waitForPortsFile(child, timeoutMs);
    } catch (err) {
      child.kill("SIGKILL");
      await this.exited;
      throw err;
    } finally {
      done();
    }
  }

  // The ports file (<executable>_<pid>.ports) appears once the listener is up,
  // so it doubles as the readiness signal. Match on pid only: the executable
  // name part depends on how the binary was invoked.
  private async waitForPortsFile(child: ChildProcess, timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    const suffix = `_${child.pid}.ports`;
    while (Date.now() < deadline) {
      if (!isRunning(child)) {
        const { code, signal } = await this.exited;
        throw new Error(`nats-server exited (code ${code}, signal ${signal}) before it was ready:\n${this.stderr}`);
      }
      const name = (await readdir(this.dir)).find((f) => f.endsWith(suffix));
      if (name) {
        try {
          const { nats } = JSON.parse(await readFile(path.join(this.dir, name), "utf8")) as { nats?: string[] };
          const port = Number(new URL(nats?.[0] ?? "").port);
          if (port > 0) return port;
        } catch {
          // Caught the file mid-write; try again.
        }
      }
      await sleep(20);
    }
    throw new Error(`nats-server did not become ready within ${timeoutMs} ms:\n${this.stderr}`);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.child) await terminate(this.child, this.exited, "SIGTERM", 5_000);
    await rm(this.dir, { recursive: true, force: true });
    this.unregister();
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (this.child) await terminate(this.child, this.exited, signal, 5_000);
  }

  async restart(): Promise<void> {
    if (this.stopped) throw new Error("nats-server handle was stopped; start a new one");
    if (this.child) await terminate(this.child, this.exited, "SIGTERM", 5_000);
    await this.start(this.currentPort);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}
