import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

export interface Component {
  readonly name: string;
  /** The ready line's fields (`port` for an edge, `metricsPort` for a worker). */
  readonly ready: Record<string, unknown>;
  /** Resolves when the process has exited, with its code or signal. */
  readonly exited: Promise<string>;
  /** SIGTERM (the component drains), SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Runs an edge or a worker as a child process (`node <script>`) and resolves once it logs its
 * ready line (`msg` = `readyMsg`). Its JSON log lines go to stderr when `echo` is set.
 */
export function startComponent(
  name: string,
  script: string,
  env: NodeJS.ProcessEnv,
  readyMsg: string,
  echo: boolean,
  timeoutMs = 60_000,
): Promise<Component> {
  const child: ChildProcess = spawn(process.execPath, [script], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-4_000);
    if (echo) process.stderr.write(c);
  });
  const exited = new Promise<string>((r) => child.once("exit", (code, signal) => r(signal ?? `code ${code}`)));
  return new Promise<Component>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${name} did not log "${readyMsg}" within ${timeoutMs} ms:\n${stderr}`));
    }, timeoutMs);
    void exited.then((how) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${how}) before it was ready:\n${stderr}`));
    });
    if (!child.stdout) throw new Error("spawned without a stdout pipe");
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (echo) process.stderr.write(`${line}\n`);
      let obj: Record<string, unknown>;
      try {
        obj = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      if (obj.msg !== readyMsg) return;
      clearTimeout(timer);
      resolve({
        name,
        ready: obj,
        exited,
        stop: async (graceMs = 15_000) => {
          child.kill("SIGTERM");
          const kill = setTimeout(() => child.kill("SIGKILL"), graceMs);
          await exited;
          clearTimeout(kill);
        },
      });
    });
  });
}
