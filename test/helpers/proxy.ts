import { createServer, connect, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

/**
 * A TCP relay in front of an edge, so a test can cut every connection at once (a tunnel,
 * a network switch) without the client or the edge knowing it was a test.
 */
export class CuttableProxy {
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;
  private down = false;
  port = 0;

  private constructor(private readonly targetPort: number) {
    this.server = createServer((client) => this.relay(client));
  }

  static async start(targetPort: number): Promise<CuttableProxy> {
    const proxy = new CuttableProxy(targetPort);
    await new Promise<void>((r) => proxy.server.listen(0, "127.0.0.1", r));
    proxy.port = (proxy.server.address() as AddressInfo).port;
    return proxy;
  }

  private relay(client: Socket): void {
    if (this.down) return void client.destroy();
    const upstream = connect(this.targetPort, "127.0.0.1");
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
      s.on("error", () => undefined);
    }
    client.pipe(upstream).pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  }

  url(path = "/v1/ws"): string {
    return `ws://127.0.0.1:${this.port}${path}`;
  }

  /** Destroys every relayed connection, as a dead network would. */
  cut(): void {
    for (const s of this.sockets) s.destroy();
  }

  /** While down, new connections are dropped at once. */
  setDown(down: boolean): void {
    this.down = down;
    if (down) this.cut();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
