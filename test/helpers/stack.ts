import { edgeConfigFromEnv, startEdge, type Edge } from "@unbroken/edge";
import { createLogger } from "@unbroken/cli";
import { startNatsServer, type NatsServerHandle } from "@unbroken/testing";
import { startWorker, workerConfigFromEnv, type Worker } from "@unbroken/worker";

export interface StackOptions {
  edges?: number;
  workers?: number;
  edgeEnv?: Record<string, string>;
  workerEnv?: Record<string, string>;
}

const level = process.env.UNBROKEN_TEST_LOGS ? "debug" : "silent";

/**
 * A real nats-server on a random port with in-process edges and workers on it. Every
 * test owns one and stops it in `after`, which stops everything it started.
 */
export class Stack {
  readonly edges: Edge[] = [];
  readonly workers: Worker[] = [];

  private constructor(
    readonly nats: NatsServerHandle,
    private readonly opts: StackOptions,
  ) {}

  static async start(opts: StackOptions = {}): Promise<Stack> {
    const stack = new Stack(await startNatsServer(), opts);
    try {
      for (let i = 0; i < (opts.edges ?? 1); i++) await stack.addEdge();
      for (let i = 0; i < (opts.workers ?? 1); i++) await stack.addWorker();
    } catch (err) {
      await stack.stop();
      throw err;
    }
    return stack;
  }

  get url(): string {
    return (this.edges[0] as Edge).url;
  }

  async addEdge(env: Record<string, string> = {}): Promise<Edge> {
    const config = edgeConfigFromEnv({ NATS_URL: this.nats.url, PORT: "0", LOG_LEVEL: level, ...this.opts.edgeEnv, ...env });
    const edge = await startEdge(config, createLogger(config.logLevel, "edge"));
    this.edges.push(edge);
    return edge;
  }

  async addWorker(env: Record<string, string> = {}): Promise<Worker> {
    const config = workerConfigFromEnv({
      NATS_URL: this.nats.url,
      LOG_LEVEL: level,
      SCRIPTED_TPS: "200",
      // Several workers share this machine: each serves its metrics on a free port.
      METRICS_PORT: "0",
      ...this.opts.workerEnv,
      ...env,
    });
    const worker = await startWorker(config, createLogger(config.logLevel, "worker"));
    this.workers.push(worker);
    return worker;
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.workers.map((w) => w.close()));
    await Promise.allSettled(this.edges.map((e) => e.close()));
    await this.nats.stop();
  }
}
