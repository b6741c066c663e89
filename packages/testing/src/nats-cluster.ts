// A throwaway clustered JetStream for tests: `size` nats-server processes on loopback, each
// with its own client port, cluster (route) port, monitoring port and JetStream store, joined
// by routes into one cluster. Each node can be killed and restarted by index on the same
// ports and store, which is what a crashed and rebooted cluster member looks like.
//
// Ports: a cluster's routes must be written into every node's config before any node starts,
// so the route and monitoring ports are chosen up front by binding port 0 and closing it (the
// client ports are random, read from each node's ports file like a single server's). A node
// restarted later keeps all three.
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { keepAlive } from "./child.js";
import { startNatsServer, type NatsServerHandle } from "./nats-server.js";

export interface NatsClusterOptions {
  /** Number of nodes (default 3: the smallest cluster that survives losing one). */
  size?: number;
  /** The cluster's name (default a random one). */
  name?: string;
  /** How long start() waits for every node to report JetStream healthy (default 30 s). */
  timeoutMs?: number;
}

export interface NatsClusterNode {
  readonly index: number;
  /** `server_name` of this node, e.g. `n0`. */
  readonly name: string;
  /** `nats://127.0.0.1:PORT` (the same across restarts). */
  readonly url: string;
  readonly routePort: number;
  /** `http://127.0.0.1:PORT` of the monitoring endpoint (`/healthz`, `/jsz`, `/routez`). */
  readonly monitorUrl: string;
  readonly pid: number;
  readonly running: boolean;
}

export interface NatsClusterHandle extends AsyncDisposable {
  readonly nodes: readonly NatsClusterNode[];
  /** Every node's client URL, comma-separated: the `NATS_URL` for edges and workers. */
  readonly url: string;
  /** SIGKILL (by default) node `index`, keeping its store. */
  kill(index: number, signal?: NodeJS.Signals): Promise<void>;
  /** Start node `index` again on its ports and store (stopping it first if it runs). */
  restart(index: number): Promise<void>;
  /**
   * Who leads what, from a running node's `/jsz`: the meta leader and each stream's leader
   * (server names; `indexOf` maps them to node indexes). Undefined while there is none.
   */
  leaders(): Promise<{ meta: string | undefined; streams: Record<string, string | undefined> }>;
  /** The index of the node named `name` (`n0` → 0), or -1. */
  indexOf(name: string | undefined): number;
  /**
   * Resolves (undefined) once every running node's `/healthz` says JetStream is healthy; at the
   * timeout, with what is still wrong when `opts.tolerate` matches all of it, else rejects.
   */
  waitHealthy(timeoutMs?: number, opts?: HealthOptions): Promise<string | undefined>;
  /** Stops every node and deletes the stores. Idempotent. */
  stop(): Promise<void>;
}

/** A loopback port that was free a moment ago (bound to 0 by the kernel, then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

class ClusterNode implements NatsClusterNode {
  running = true;
  constructor(
    readonly index: number,
    readonly name: string,
    readonly routePort: number,
    readonly monitorPort: number,
    readonly server: NatsServerHandle,
  ) {}
  get url(): string {
    return this.server.url;
  }
  get monitorUrl(): string {
    return `http://127.0.0.1:${this.monitorPort}`;
  }
  get pid(): number {
    return this.running ? this.server.pid : -1;
  }
}

/** Tries of a cluster start whose picked ports were taken in the meantime. */
const PORT_TRIES = 3;

export async function startNatsCluster(opts: NatsClusterOptions = {}): Promise<NatsClusterHandle> {
  const size = opts.size ?? 3;
  if (!Number.isInteger(size) || size < 1) throw new Error(`cluster size must be a positive integer, got ${size}`);
  // A port picked up front is free only "a moment ago": another process (or this cluster's
  // own random client ports) can take it before the node binds it, and the node exits. That
  // is the kit's race, not the test's failure: pick new ports and start again.
  for (let tries = 1; ; tries++) {
    try {
      return await startOnce(size, opts);
    } catch (err) {
      if (tries >= PORT_TRIES || !/address already in use/.test(String((err as Error).message))) throw err;
    }
  }
}

async function startOnce(size: number, opts: NatsClusterOptions): Promise<NatsClusterHandle> {
  const clusterName = opts.name ?? `unbroken-test-${Math.random().toString(36).slice(2, 8)}`;
  const routePorts: number[] = [];
  const monitorPorts: number[] = [];
  // Sequential, so no two picks can return the same port.
  for (let i = 0; i < size; i++) {
    routePorts.push(await freePort());
    monitorPorts.push(await freePort());
  }
  const routes = routePorts.map((p) => JSON.stringify(`nats-route://127.0.0.1:${p}`));
  const started = await Promise.allSettled(
    routePorts.map((routePort, i) => {
      const name = `n${i}`;
      const configExtra = [
        `server_name: ${name}`,
        `http: ${JSON.stringify(`127.0.0.1:${monitorPorts[i]}`)}`,
        "cluster {",
        `  name: ${JSON.stringify(clusterName)}`,
        `  listen: ${JSON.stringify(`127.0.0.1:${routePort}`)}`,
        `  routes: [${routes.join(", ")}]`,
        // Loopback only: never gossip other addresses to peers or clients.
        "  no_advertise: true",
        "}",
      ].join("\n");
      return startNatsServer({ configExtra, timeoutMs: 15_000 }).then(
        (server) => new ClusterNode(i, name, routePort, monitorPorts[i] as number, server),
      );
    }),
  );
  const nodes = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const cluster = new NatsCluster(nodes);
  const failed = started.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) {
    await cluster.stop();
    throw failed.reason;
  }
  try {
    await cluster.waitHealthy(opts.timeoutMs ?? 30_000);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

export interface HealthOptions {
  /**
   * Complaints that may remain when the time is up: waitHealthy then returns them instead of
   * failing (nats-server 2.9 can report a replica "not current" for minutes after a restart).
   */
  tolerate?: RegExp;
}

class NatsCluster implements NatsClusterHandle {
  private stopped = false;
  constructor(readonly nodes: readonly ClusterNode[]) {}

  get url(): string {
    return this.nodes.map((n) => n.url).join(",");
  }

  private node(index: number): ClusterNode {
    const node = this.nodes[index];
    if (!node) throw new Error(`no node ${index} in a cluster of ${this.nodes.length}`);
    return node;
  }

  async kill(index: number, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const node = this.node(index);
    node.running = false;
    await node.server.kill(signal);
  }

  async restart(index: number): Promise<void> {
    const node = this.node(index);
    await node.server.restart();
    node.running = true;
  }

  indexOf(name: string | undefined): number {
    return this.nodes.findIndex((n) => n.name === name);
  }

  async leaders(): Promise<{ meta: string | undefined; streams: Record<string, string | undefined> }> {
    for (const node of this.nodes.filter((n) => n.running)) {
      try {
        const res = await fetch(`${node.monitorUrl}/jsz?streams=true`, { signal: AbortSignal.timeout(2_000) });
        const jsz = (await res.json()) as {
          meta_cluster?: { leader?: string };
          account_details?: Array<{ stream_detail?: Array<{ name: string; cluster?: { leader?: string } }> }>;
        };
        const streams: Record<string, string | undefined> = {};
        for (const acc of jsz.account_details ?? []) for (const st of acc.stream_detail ?? []) streams[st.name] = st.cluster?.leader;
        return { meta: jsz.meta_cluster?.leader, streams };
      } catch {
        // Try the next node.
      }
    }
    return { meta: undefined, streams: {} };
  }

  async waitHealthy(timeoutMs = 30_000, opts: HealthOptions = {}): Promise<string | undefined> {
    const done = keepAlive();
    const deadline = Date.now() + timeoutMs;
    let last = "";
    try {
      for (;;) {
        const states = await Promise.all(this.nodes.filter((n) => n.running).map((n) => health(n)));
        const bad = states.filter((s) => s !== "ok");
        if (bad.length === 0) return undefined;
        last = bad.join("; ");
        if (Date.now() > deadline) {
          if (opts.tolerate && bad.every((b) => opts.tolerate?.test(b))) return last;
          throw new Error(`NATS cluster not healthy within ${timeoutMs} ms: ${last}`);
        }
        await sleep(100);
      }
    } finally {
      done();
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.allSettled(this.nodes.map((n) => n.server.stop()));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/** `ok`, or what the node's /healthz said (2.9: not ok until it has a JetStream meta leader). */
async function health(node: ClusterNode): Promise<string> {
  try {
    const res = await fetch(`${node.monitorUrl}/healthz`, { signal: AbortSignal.timeout(2_000) });
    const body = (await res.json()) as { status?: string; error?: string };
    return res.status === 200 && body.status === "ok" ? "ok" : `${node.name}: ${body.error ?? res.status}`;
  } catch (err) {
    return `${node.name}: ${(err as Error).message}`;
  }
}
