// Run one of our services (edge, worker, ...) as a real child process and
// observe it through its pino JSON log lines on stdout.

import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { exitPromise, isRunning, keepAlive, release, Tail, terminate, type ExitInfo } from "./child.js";
import { registerCleanup } from "./cleanup.js";

export type { ExitInfo } from "./child.js";

export interface SpawnServiceOptions {
  /** Used in error messages (and as log prefix with UNBROKEN_TEST_LOGS=1). */
  name: string;
  /** Absolute path of the .js entry point. */
  script: string;
  /** Merged over process.env. */
  env: Record<string, string>;
  /** The pino `msg` that means the service is up, e.g. "listening" or "ready". */
  readyMsg: string;
  /** Default 15 s. */
  timeoutMs?: number;
}

export interface ServiceHandle {
  readonly name: string;
  readonly pid: number;
  /** The `port` field of the ready line, if it had one. */
  readonly port?: number;
  /** Every stdout line so far (kept updated). */
  readonly lines: string[];
  /**
   * Resolve with the first JSON line at index >= `fromIndex` (default 0, so
   * lines logged before the call count) for which `pred` returns true. Pass
   * `svc.lines.length` to only consider lines logged after the call.
   * Rejects on timeout (default 10 s) or if the process exits first.
   */
  // biome-ignore lint/suspicious/noExplicitAny: a log line is any JSON object; each test reads the fields it expects
  waitForLine(pred: (obj: any) => boolean, timeoutMs?: number, fromIndex?: number): Promise<any>;
  /** Send `signal` (default SIGTERM), SIGKILL after `timeoutMs` (default 10 s); resolves with the exit status. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<ExitInfo>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
  /** Resolves once the process has exited and its stdout has been fully read. */
  readonly exited: Promise<ExitInfo>;
}

interface Watcher {
  line(index: number): void;
  closed(): void;
}

const verbose = (): boolean => Boolean(process.env.UNBROKEN_TEST_LOGS);

class Service implements ServiceHandle {
  readonly lines: string[] = [];
  port?: number;
  // Parsed form of `lines` (same index; undefined for non-JSON lines).
  private readonly parsed: unknown[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly stderr = new Tail();
  private readonly exitedP: Promise<ExitInfo>;
  private closed = false;

  constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    this.exitedP = exitPromise(child, "close");
    const unregister = registerCleanup(() => {
      if (isRunning(child)) child.kill("SIGKILL");
    });
    void this.exitedP.then(() => {
      this.closed = true;
      unregister();
      for (const w of [...this.watchers]) w.closed();
    });
    // Spawned with stdio pipes (see spawnService), so both streams are there.
    const { stdout, stderr } = child as ChildProcess & { stdout: NodeJS.ReadableStream; stderr: NodeJS.ReadableStream };
    createInterface({ input: stdout, crlfDelay: Infinity }).on("line", (line) => this.onLine(line));
    stderr.on("data", (c: Buffer) => {
      this.stderr.push(c);
      if (verbose()) process.stderr.write(`[${name}:stderr] ${c.toString()}`);
    });
    child.on("error", (e) => this.stderr.push(`spawn error: ${e.message}\n`));
    release(child);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  // Awaiting a child's exit is not, by itself, enough to keep Node running
  // (children are unref'd, see child.ts), so keep the loop alive for whoever
  // asks for this promise until the process is gone.
  get exited(): Promise<ExitInfo> {
    void this.exitedP.then(keepAlive());
    return this.exitedP;
  }

  private onLine(line: string): void {
    if (verbose()) process.stderr.write(`[${this.name}] ${line}\n`);
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      obj = undefined;
    }
    this.lines.push(line);
    this.parsed.push(obj);
    for (const w of [...this.watchers]) w.line(this.lines.length - 1);
  }

  /** Last lines of output, for error messages. */
  tail(): string {
    return `--- stderr ---\n${this.stderr}\n--- stdout (last 20 lines) ---\n${this.lines.slice(-20).join("\n")}`;
  }

  // biome-ignore lint/suspicious/noExplicitAny: see ServiceHandle.waitForLine
  waitForLine(pred: (obj: any) => boolean, timeoutMs = 10_000, fromIndex = 0): Promise<any> {
    // A predicate that throws on an unexpected line shape just means "no match".
    const matches = (obj: unknown): boolean => {
      try {
        return obj !== undefined && pred(obj);
      } catch {
        return false;
      }
    };
    for (let i = fromIndex; i < this.parsed.length; i++) if (matches(this.parsed[i])) return Promise.resolve(this.parsed[i]);
    if (this.closed) return Promise.reject(new Error(`${this.name} exited before logging the expected line\n${this.tail()}`));

    return new Promise((resolve, reject) => {
      const finish = (fn: () => void): void => {
        clearTimeout(timer);
        this.watchers.delete(watcher);
        fn();
      };
      const watcher: Watcher = {
        line: (i) => {
          if (i >= fromIndex && matches(this.parsed[i])) finish(() => resolve(this.parsed[i]));
        },
        closed: () => finish(() => reject(new Error(`${this.name} exited before logging the expected line\n${this.tail()}`))),
      };
      const timer = setTimeout(
        () => finish(() => reject(new Error(`${this.name}: no matching log line within ${timeoutMs} ms\n${this.tail()}`))),
        timeoutMs,
      );
      this.watchers.add(watcher);
    });
  }

  stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 10_000): Promise<ExitInfo> {
    return terminate(this.child, this.exitedP, signal, timeoutMs);
  }

  async kill(): Promise<void> {
    await terminate(this.child, this.exitedP, "SIGKILL", 5_000);
  }
}

export async function spawnService(opts: SpawnServiceOptions): Promise<ServiceHandle> {
  const { name, script, env, readyMsg, timeoutMs = 15_000 } = opts;
  const child = spawn(process.execPath, [script], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const svc = new Service(name, child);
  try {
    const ready = await svc.waitForLine((o) => o.msg === readyMsg, timeoutMs);
    if (typeof ready.port === "number") svc.port = ready.port;
  } catch (err) {
    await svc.kill();
    throw new Error(`${name} (${script}) did not log "${readyMsg}": ${(err as Error).message}`);
  }
  return svc;
}
