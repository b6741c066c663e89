// The worker's handle on one model process (llama-child.ts): forks it, validates what it
// says, keeps the tail of its stderr (where llama.cpp prints a GGML_ASSERT before it
// aborts), and reports its exit once. Policy (when to restart, what sessions see) lives
// in llama.ts.

import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import { fromChildSchema, toChildSchema, type FromChild, type ToChild } from "./llama-messages.js";

const CHILD_ENTRY = fileURLToPath(new URL("./llama-child.js", import.meta.url));
const STDERR_LINES = 8;
const KILL_AFTER_MS = 5_000;

export interface ProcessEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Last lines the process wrote to stderr, for the error message. */
  stderr: string[];
}

export class LlamaProcess {
  private readonly child: ChildProcess;
  private readonly stderr: string[] = [];
  private partial = "";
  private ended: ProcessEnd | undefined;
  readonly exited: Promise<ProcessEnd>;

  constructor(
    private readonly log: Logger,
    onMessage: (msg: FromChild) => void,
    onExit: (end: ProcessEnd) => void,
  ) {
    this.child = fork(CHILD_ENTRY, [], {
      // The parent's flags (node --test, an inspector, loaders) are not for this process.
      execArgv: [],
      env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: "true" },
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      serialization: "json",
    });
    this.child.stdout?.setEncoding("utf8").on("data", (s: string) => this.log.debug({ out: s.trimEnd() }, "model process stdout"));
    this.child.stderr?.setEncoding("utf8").on("data", (s: string) => this.onStderr(s));
    this.child.on("message", (raw) => {
      const parsed = fromChildSchema.safeParse(raw);
      if (parsed.success) onMessage(parsed.data);
      else this.log.warn({ err: parsed.error.message }, "malformed message from the model process ignored");
    });
    this.exited = new Promise((resolve) => {
      const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
        if (this.ended) return;
        if (this.partial) this.keep(this.partial);
        this.ended = { code, signal, stderr: [...this.stderr] };
        this.child.removeAllListeners();
        this.child.stdout?.removeAllListeners();
        this.child.stderr?.removeAllListeners();
        onExit(this.ended);
        resolve(this.ended);
      };
      // 'close' comes after stdio is drained, so the assert message is in hand.
      this.child.once("close", finish);
      this.child.once("error", (err) => {
        this.keep(`could not start the model process: ${err.message}`);
        if (this.child.pid === undefined) finish(null, null);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.ended === undefined;
  }

  send(msg: ToChild): void {
    if (!this.alive || !this.child.connected) return;
    this.child.send(toChildSchema.parse(msg), (err) => {
      if (err) this.log.debug({ err: err.message }, "message to the model process not delivered");
    });
  }

  /** Asks the process to exit; kills it if it has not within a few seconds. */
  async stop(): Promise<ProcessEnd> {
    if (this.ended) return this.ended;
    this.send({ type: "shutdown" });
    const timer = setTimeout(() => this.child.kill("SIGKILL"), KILL_AFTER_MS);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  private onStderr(s: string): void {
    const lines = (this.partial + s).split("\n");
    this.partial = lines.pop() ?? "";
    for (const line of lines) this.keep(line);
  }

  private keep(line: string): void {
    const text = line.trim();
    if (text === "") return;
    this.log.warn({ stderr: text }, "model process stderr");
    this.stderr.push(text);
    if (this.stderr.length > STDERR_LINES) this.stderr.shift();
  }
}

/** "exited with code 134" / "was killed by SIGABRT", and the last stderr line if any. */
export function describeEnd(end: ProcessEnd): string {
  const how = end.signal ? `was killed by ${end.signal}` : `exited with code ${end.code ?? "?"}`;
  const last = end.stderr.at(-1);
  return last ? `${how}: ${last}` : how;
}
