/*
 * Installing node-llama-cpp: the decision, measured on this 2-core x64 Linux machine
 * (Node 20, npm 11, registry.npmjs.org):
 *
 * - A regular dependency of @unbroken/worker, pinned to ~3.21.1. 3.22.0 and 3.22.1 were
 *   published with Linux binaries only: their macOS, Windows and riscv64 binary packages
 *   are 404 on the registry, so Mac and Windows users would get no llama.cpp, and the
 *   lockfile written on Linux would lack those platforms. 3.21.1 has all 14. Move the
 *   pin once a newer release ships every binary package.
 * - Its prebuilt binaries are npm optionalDependencies; on linux-x64 npm installs CPU
 *   (29 MB), Vulkan (81 MB), CUDA (181 MB) and CUDA with its runtime bundled, "cuda-ext"
 *   (357 MB), and the arm64 (19 MB) and armv7l (13 MB) builds (their packages claim x64
 *   too), plus node-llama-cpp itself (41 MB): about 720 MB in 124 packages. Measured:
 *   `npm install` 17.6 s with an empty npm cache, `npm ci` 11.8 s cold and 10.7 s warm
 *   (unpacking dominates, so caching ~/.npm saves little). We keep them all: a plain
 *   `npm install` gives NVIDIA (no CUDA toolkit needed) and Vulkan users GPU inference,
 *   and `gpu: "auto"` picks it. There is no lighter CI install: `--omit=optional` would
 *   also drop the CPU binary (and other packages' platform binaries).
 * - Nothing is downloaded or compiled, at install or at run time, and CI needs only the
 *   npm registry: the root package.json sets `config.nodeLlamaCppPostinstall = "skip"`
 *   (npm 10's postinstall would otherwise test the binary and, when that fails, clone
 *   llama.cpp from GitHub and build it); the model process sets
 *   NODE_LLAMA_CPP_SKIP_DOWNLOAD=true and calls getLlama({ build: "never" }), which loads
 *   an installed prebuilt binary or throws (model_unavailable), and models come only from
 *   a file path (strace: no connect() during load and generation).
 *
 * Restart policy (when the model process dies or cannot load):
 * - generations running in a process that dies end with GeneratorError `model_crashed`;
 * - nothing restarts eagerly. The next generation after a failure reloads the model (and
 *   waits for it) unless it comes within the backoff window, in which case it fails at
 *   once with `model_unavailable` and the reason. The window is 0 after the first failure
 *   (a one-off crash costs no further request), then 1 s, 2 s, 4 s ... up to 60 s for
 *   consecutive failures; a generation that completes resets it. So a broken model file
 *   costs at most one reload attempt a minute once the window has grown, and a fixed one
 *   is picked up by the first request after the window.
 */

import type { EndErrorCode } from "@unbroken/protocol";
import { basename } from "node:path";
import type { Logger } from "pino";
import { GeneratorError, type GenerationJob, type GenerationSession, type TokenGenerator } from "./generator.js";
import type { FromChild, LlamaGpu } from "./llama-messages.js";
import { LlamaProcess, describeEnd, type ProcessEnd } from "./llama-process.js";
import { LlamaSession, type SessionHost, unsupportedByLlama } from "./llama-session.js";

export type { LlamaGpu } from "./llama-messages.js";

export interface LlamaGeneratorOptions {
  /** A GGUF file. */
  modelPath: string;
  /** CPU threads for evaluation (node-llama-cpp's own default oversubscribes small machines). */
  threads: number;
  /** "auto" uses CUDA, Vulkan or Metal when present, else the CPU. */
  gpu: LlamaGpu;
  /** Generations served at once, each on its own context sequence. */
  concurrency: number;
  log: Logger;
  /** Context tokens per generation; default the model's training context, at most 8192. */
  contextSize?: number;
}

export type LlamaState = "loading" | "ready" | "failed";

const MAX_BACKOFF_MS = 60_000;

export class LlamaGenerator implements TokenGenerator {
  private name: string;
  private named = false;
  private readonly log: Logger;
  private proc: LlamaProcess | undefined;
  private readonly retiring = new Set<Promise<ProcessEnd>>();
  private state: LlamaState = "loading";
  /** Why the model is unusable, in full (path, llama.cpp's words): for the log and `status()`. */
  private error: string | undefined;
  /** The same for clients: no path, no stderr (see GeneratorError.detail). */
  private publicError: string | undefined;
  private failures = 0;
  private retryAt = 0;
  private ctxSize: number | undefined;
  private settle: (() => void) | undefined;
  private readonly waiting = new Set<LlamaSession>();
  private readonly running = new Map<string, LlamaSession>();
  private nextId = 0;
  private closed = false;
  private readonly host: SessionHost;

  private constructor(private readonly opts: LlamaGeneratorOptions) {
    this.name = basename(opts.modelPath);
    this.log = opts.log.child({ generator: "llama" });
    this.host = {
      send: (msg) => this.proc?.send(msg),
      contextSize: () => this.ctxSize,
      detach: (s, healthy) => {
        this.waiting.delete(s);
        this.running.delete(s.id);
        if (healthy) this.failures = 0;
      },
    };
  }

  /** Starts the model process and waits for the first load; resolves even if it fails. */
  static async create(opts: LlamaGeneratorOptions): Promise<LlamaGenerator> {
    for (const key of ["threads", "concurrency"] as const) {
      if (!Number.isInteger(opts[key]) || opts[key] < 1) throw new RangeError(`llama: ${key} must be a positive integer, got ${opts[key]}`);
    }
    if (opts.contextSize !== undefined && (!Number.isInteger(opts.contextSize) || opts.contextSize < 1)) {
      throw new RangeError(`llama: contextSize must be a positive integer, got ${opts.contextSize}`);
    }
    const g = new LlamaGenerator(opts);
    await g.load();
    return g;
  }

  /** The model's name (general.name), or the file name until it has loaded once. */
  get model(): string {
    return this.name;
  }

  status(): { state: LlamaState; error?: string } {
    return this.error === undefined ? { state: this.state } : { state: this.state, error: this.error };
  }

  start(job: GenerationJob): GenerationSession {
    const session = new LlamaSession(`g${++this.nextId}`, job, this.host);
    if (session.isOver) return session;
    const unsupported = unsupportedByLlama(job.body);
    if (unsupported !== undefined) {
      session.fail(new GeneratorError("unsupported", unsupported));
    } else if (this.closed) {
      session.fail(new GeneratorError("model_unavailable", "the llama generator is closed"));
    } else if (this.state === "ready") {
      this.running.set(session.id, session);
      session.begin();
    } else if (this.state === "loading") {
      this.waiting.add(session);
    } else if (Date.now() >= this.retryAt) {
      this.waiting.add(session);
      void this.load();
    } else {
      const wait = Math.ceil((this.retryAt - Date.now()) / 1000);
      const message = `${this.publicError ?? "the model is unavailable"} (next load attempt in ${wait} s)`;
      session.fail(new GeneratorError("model_unavailable", message, undefined, this.error));
    }
    return session;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failAll("model_unavailable", "the llama generator was closed");
    this.settled();
    const proc = this.proc;
    this.proc = undefined;
    if (proc) this.retire(proc);
    await Promise.all([...this.retiring]);
  }

  /** Forks a model process and resolves once it is ready or has failed. */
  private load(): Promise<void> {
    this.state = "loading";
    this.error = undefined;
    this.publicError = undefined;
    const { modelPath, threads, gpu, concurrency, contextSize } = this.opts;
    const proc: LlamaProcess = new LlamaProcess(
      this.log,
      (msg) => this.onMessage(proc, msg),
      (end) => this.onExit(proc, end),
    );
    this.proc = proc;
    this.log.info({ modelPath, threads, gpu, concurrency, childPid: proc.pid }, "loading llama model");
    const settled = new Promise<void>((resolve) => (this.settle = resolve));
    proc.send({ type: "init", modelPath, threads, gpu, concurrency, contextSize });
    return settled;
  }

  private onMessage(proc: LlamaProcess, msg: FromChild): void {
    if (proc !== this.proc) return;
    switch (msg.type) {
      case "ready": {
        this.state = "ready";
        this.ctxSize = msg.contextSize;
        if (!this.named) {
          this.name = msg.model; // kept across reloads: responses name one model
          this.named = true;
        }
        const { model, gpu, contextSize, loadMs } = msg;
        this.log.info({ model, gpu, contextSize, threads: msg.threads, loadMs }, "llama model ready");
        for (const s of this.waiting) {
          this.running.set(s.id, s);
          s.begin();
        }
        this.waiting.clear();
        this.settled();
        return;
      }
      case "load_failed":
        this.proc = undefined;
        this.retire(proc);
        {
          this.failed("the model could not be loaded", `could not load the model ${this.opts.modelPath}: ${msg.message}`);
          return;
        }
      case "log":
        this.log[msg.level]({ from: "llama.cpp" }, msg.message);
        return;
      default:
        this.running.get(msg.id)?.onMessage(msg);
    }
  }

  private onExit(proc: LlamaProcess, end: ProcessEnd): void {
    if (proc !== this.proc) return;
    this.proc = undefined;
    if (this.state === "loading") {
      this.failed(
        "the model process stopped while loading the model",
        `the model process ${describeEnd(end)} while loading ${this.opts.modelPath}`,
      );
      return;
    }
    const why = `the model process ${describeEnd(end)}`;
    this.log.error({ code: end.code, signal: end.signal, running: this.running.size, err: why }, "llama model process died");
    for (const s of [...this.running.values()])
      s.fail(new GeneratorError("model_crashed", "the model process stopped; the generation was lost", undefined, why));
    this.failed("the model process stopped", why);
  }

  /** The model is not usable: fail what waits for it (with `message`; `error` is logged) and set the backoff window. */
  private failed(message: string, error: string): void {
    this.state = "failed";
    this.error = error;
    this.publicError = message;
    this.failures++;
    const backoff = this.failures <= 1 ? 0 : Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (this.failures - 2));
    this.retryAt = Date.now() + backoff;
    this.log.error({ err: error, failures: this.failures, retryInMs: backoff }, "llama model unavailable");
    for (const s of [...this.waiting]) s.fail(new GeneratorError("model_unavailable", message, undefined, error));
    this.waiting.clear();
    this.settled();
  }

  private settled(): void {
    const settle = this.settle;
    this.settle = undefined;
    settle?.();
  }

  private failAll(code: EndErrorCode, message: string): void {
    for (const s of [...this.waiting, ...this.running.values()]) s.fail(new GeneratorError(code, message));
    this.waiting.clear();
    this.running.clear();
  }

  private retire(proc: LlamaProcess): void {
    const stopped = proc.stop();
    this.retiring.add(stopped);
    void stopped.then(() => this.retiring.delete(stopped));
  }
}
