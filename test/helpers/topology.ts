import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  spawnService,
  startNatsCluster,
  startNatsServer,
  type NatsClusterHandle,
  type NatsServerHandle,
  type ServiceHandle,
} from "@unbroken/testing";
import { Balancer } from "./balancer.js";
import { RawClient } from "./raw-client.js";
import type { EventFrame } from "@unbroken/protocol";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const EDGE_MAIN = path.join(root, "packages/cli/dist/src/edge.js");
export const WORKER_MAIN = path.join(root, "packages/cli/dist/src/worker.js");
/**
 * How long a member may take to log that it is ready: longer than the 60 s a component waits
 * for JetStream at start (READY_TIMEOUT_MS in store), so a cluster slow to elect its leaders
 * fails a test only when the component itself gives up. A hang guard, not a measurement.
 */
const START_TIMEOUT_MS = 75_000;

/** The NATS side of a topology: one server or a cluster, with nodes killable by index. */
export interface Broker {
  /** NATS_URL for edges and workers (comma-separated for a cluster). */
  readonly url: string;
  readonly size: number;
  kill(index: number, signal?: NodeJS.Signals): Promise<void>;
  restart(index: number): Promise<void>;
  stop(): Promise<void>;
}

function single(server: NatsServerHandle): Broker {
  return {
    url: server.url,
    size: 1,
    kill: (_i, signal) => server.kill(signal),
    restart: () => server.restart(),
    stop: () => server.stop(),
  };
}

export interface TopologyOptions {
  /** nats-server processes: 1 (a single server) or a cluster of this many (default 3). */
  natsNodes?: number;
  edges?: number;
  workers?: number;
  edgeEnv?: Record<string, string>;
  workerEnv?: Record<string, string>;
  /** A round-robin TCP balancer in front of the edges (default true). */
  balancer?: boolean;
}

/** A service process and how to start it again on the same port. */
export interface Member {
  handle: ServiceHandle;
  readonly env: Record<string, string>;
}

/**
 * The deployed shape, as local processes: nats-server node(s), edge and worker processes
 * (`node packages/cli/dist/src/edge.js` and `worker.js`, as in docker-compose.yml), and a balancer in front of
 * the edges. Everything it started is stopped by stop(), and by the testing package's exit
 * hook if the test dies first.
 */
export class Topology {
  readonly edges: Member[] = [];
  readonly workers: Member[] = [];
  lb: Balancer | undefined;

  private constructor(
    readonly nats: Broker,
    /** The cluster's own handle (leaders, health, node URLs); undefined for a single server. */
    readonly cluster: NatsClusterHandle | undefined,
    private readonly opts: TopologyOptions,
  ) {}

  static async start(opts: TopologyOptions = {}): Promise<Topology> {
    const nodes = opts.natsNodes ?? 3;
    const cluster = nodes === 1 ? undefined : await startNatsCluster({ size: nodes });
    const nats: Broker = cluster
      ? {
          url: cluster.url,
          size: nodes,
          kill: (i, s) => cluster.kill(i, s),
          restart: (i) => cluster.restart(i),
          stop: () => cluster.stop(),
        }
      : single(await startNatsServer());
    const top = new Topology(nats, cluster, opts);
    try {
      // The first component creates the layout; start one alone so two do not race on it.
      const [edges, workers] = [opts.edges ?? 2, opts.workers ?? 2];
      if (edges > 0) await top.addEdge();
      await Promise.all([
        ...Array.from({ length: edges - 1 }, () => top.addEdge()),
        ...Array.from({ length: workers }, () => top.addWorker()),
      ]);
      if (opts.balancer ?? true) top.lb = await Balancer.start(top.edges.map((e) => e.handle.port as number));
    } catch (err) {
      await top.stop();
      throw err;
    }
    return top;
  }

  private get replicas(): string {
    return String(Math.min(3, this.nats.size));
  }

  /** The balancer's socket URL, or the first edge's without one. */
  get url(): string {
    return this.lb ? this.lb.url() : this.edgeUrl(0);
  }

  edgeUrl(index: number, p = "/v1/ws"): string {
    return `ws://127.0.0.1:${this.edges[index]?.handle.port}${p}`;
  }

  async addEdge(env: Record<string, string> = {}): Promise<Member> {
    const full = { NATS_URL: this.nats.url, REPLICAS: this.replicas, PORT: "0", WEB_ROOT: "none", ...this.opts.edgeEnv, ...env };
    const name = `edge${this.edgeCount++}`;
    const handle = await spawnService({ name, script: EDGE_MAIN, env: full, readyMsg: "listening", timeoutMs: START_TIMEOUT_MS });
    const member = { handle, env: { ...full, PORT: String(handle.port) } };
    this.edges.push(member);
    return member;
  }

  async addWorker(env: Record<string, string> = {}): Promise<Member> {
    const full = { NATS_URL: this.nats.url, REPLICAS: this.replicas, ...this.opts.workerEnv, ...env };
    const name = `worker${this.workerCount++}`;
    const handle = await spawnService({
      name,
      script: WORKER_MAIN,
      env: { WORKER_ID: name, ...full },
      readyMsg: "ready",
      timeoutMs: START_TIMEOUT_MS,
    });
    const member = { handle, env: { WORKER_ID: name, ...full } };
    this.workers.push(member);
    return member;
  }

  /** Starts a stopped member again with its environment (an edge on its old port). */
  async restart(member: Member, readyMsg: "listening" | "ready"): Promise<void> {
    const script = readyMsg === "listening" ? EDGE_MAIN : WORKER_MAIN;
    // A restarted worker is a new worker (as a new container would be), under a new id.
    const env = readyMsg === "ready" ? { ...member.env, WORKER_ID: `${member.env.WORKER_ID}-r${++this.restarts}` } : member.env;
    member.handle = await spawnService({ name: member.handle.name, script, env, readyMsg, timeoutMs: START_TIMEOUT_MS });
  }
  private restarts = 0;
  // Names are taken before the first await: members started together get distinct ones.
  private edgeCount = 0;
  private workerCount = 0;

  /** The worker whose log says it started `rid`. */
  workerRunning(rid: string): Member | undefined {
    return this.workers.find((w) => w.handle.lines.some((l) => l.includes(rid) && l.includes("generation started")));
  }

  async stop(): Promise<void> {
    await this.lb?.close();
    await Promise.allSettled([...this.edges, ...this.workers].map((m) => m.handle.kill()));
    await this.nats.stop();
  }
}

/** Reads a response's whole log through an edge: the reference every reader is compared with. */
export async function replay(url: string, rid: string, timeoutMs = 60_000, token?: string): Promise<EventFrame[]> {
  const c = await RawClient.connect(url, token);
  try {
    const ok = await c.request({ type: "subscribe", rid }, timeoutMs);
    if (ok.type !== "ok") throw new Error(`subscribe ${rid}: ${JSON.stringify(ok)}`);
    return await c.untilEnd(rid, timeoutMs);
  } finally {
    c.close();
  }
}

/** Retries `fn` until it resolves (e.g. a request while JetStream elects a leader). */
export async function eventually<T>(fn: () => Promise<T>, timeoutMs = 30_000, stepMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, stepMs));
    }
  }
}
