import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";

interface Pair {
  client: Socket;
  upstream: Socket | undefined;
  backend: number;
}

/**
 * A TCP round-robin load balancer on loopback, in front of several edges: what nginx or
 * HAProxy does for the edges in deploy/, small enough to cut connections from a test. A new
 * connection goes to the next backend; a backend that refuses it (a killed edge) is skipped
 * for the next one, as a balancer's health check would. Nothing of HTTP or WebSocket is
 * parsed: bytes are relayed as they come.
 */
export class Balancer {
  private readonly pairs = new Set<Pair>();
  private readonly server: Server;
  private next = 0;
  port = 0;
  /** Connections relayed per backend index (for the test's figures). */
  readonly relayed: number[];

  private constructor(private readonly backends: number[]) {
    this.relayed = backends.map(() => 0);
    this.server = createServer((client) => this.accept(client));
  }

  static async start(backendPorts: number[]): Promise<Balancer> {
    const lb = new Balancer([...backendPorts]);
    await new Promise<void>((r) => lb.server.listen(0, "127.0.0.1", r));
    lb.port = (lb.server.address() as AddressInfo).port;
    return lb;
  }

  url(path = "/v1/ws"): string {
    return `ws://127.0.0.1:${this.port}${path}`;
  }

  /** Points backend `index` at another port (an edge restarted elsewhere). */
  setBackend(index: number, port: number): void {
    this.backends[index] = port;
  }

  get connections(): number {
    return this.pairs.size;
  }

  private accept(client: Socket): void {
    const pair: Pair = { client, upstream: undefined, backend: -1 };
    this.pairs.add(pair);
    client.on("error", () => undefined);
    client.on("close", () => {
      this.pairs.delete(pair);
      pair.upstream?.destroy();
    });
    client.pause();
    this.dial(pair, this.backends.length);
  }

  /** Tries backends round-robin, at most `tries` of them, before giving up on the client. */
  private dial(pair: Pair, tries: number): void {
    if (tries === 0 || pair.client.destroyed) return void pair.client.destroy();
    const index = this.next++ % this.backends.length;
    const upstream = connect(this.backends[index] as number, "127.0.0.1");
    let connected = false;
    upstream.once("connect", () => {
      connected = true;
      if (pair.client.destroyed) return void upstream.destroy();
      pair.upstream = upstream;
      pair.backend = index;
      this.relayed[index] = (this.relayed[index] ?? 0) + 1;
      pair.client.pipe(upstream).pipe(pair.client);
      pair.client.resume();
    });
    upstream.on("error", () => {
      if (!connected) this.dial(pair, tries - 1);
    });
    upstream.on("close", () => {
      if (connected) pair.client.destroy();
    });
  }

  /** Destroys one relayed connection chosen by `pick` (an index into the live ones); false if none. */
  cutOne(pick: (count: number) => number): boolean {
    const live = [...this.pairs].filter((p) => p.upstream);
    if (live.length === 0) return false;
    const pair = live[pick(live.length) % live.length] as Pair;
    pair.client.destroy();
    pair.upstream?.destroy();
    return true;
  }

  /** Destroys every relayed connection, as a dead network would. */
  cutAll(): void {
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream?.destroy();
    }
  }

  async close(): Promise<void> {
    this.cutAll();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
