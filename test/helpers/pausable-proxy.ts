import { connect, createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

/**
 * A TCP relay in front of an edge whose edge-to-client direction can be stalled: `pause()`
 * stops reading from the edge on every connection open now (like a client that stopped reading:
 * a frozen tab, a stalled link), so the edge's sends pile up on its side. Client-to-edge bytes
 * keep flowing. Connections opened later are not paused.
 */
export class PausableProxy {
  private readonly upstreams = new Set<Socket>();
  private readonly sockets = new Set<Socket>();
  private trickling: ReturnType<typeof setInterval> | undefined;
  private readonly server: Server;
  port = 0;

  private constructor(private readonly targetPort: number) {
    this.server = createServer((client) => this.relay(client));
  }

  static async start(targetPort: number): Promise<PausableProxy> {
    const proxy = new PausableProxy(targetPort);
    await new Promise<void>((r) => proxy.server.listen(0, "127.0.0.1", r));
    proxy.port = (proxy.server.address() as AddressInfo).port;
    return proxy;
  }

  private relay(client: Socket): void {
    const upstream = connect(this.targetPort, "127.0.0.1");
    this.upstreams.add(upstream);
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
      s.on("error", () => undefined);
    }
    upstream.on("close", () => this.upstreams.delete(upstream));
    client.on("data", (d) => upstream.write(d));
    upstream.on("data", (d) => client.write(d));
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.end());
  }

  url(path = "/v1/ws"): string {
    return `ws://127.0.0.1:${this.port}${path}`;
  }

  /** Stops reading from the edge on the connections open now. */
  pause(): void {
    for (const u of this.upstreams) u.pause();
  }

  resume(): void {
    clearInterval(this.trickling);
    for (const u of this.upstreams) u.resume();
  }

  /**
   * A slow reader that keeps reading: on the connections open now, takes at most `bytes` from
   * the edge every `everyMs`, so the edge's sends pile up on its side yet always move on.
   * Returns how many bytes it has taken so far. `resume()` reads at full speed again.
   */
  trickle(bytes: number, everyMs: number): () => number {
    let taken = 0;
    const ups = [...this.upstreams];
    for (const u of ups) {
      u.pause();
      u.on("data", (d: Buffer) => (taken += d.length));
    }
    clearInterval(this.trickling);
    this.trickling = setInterval(() => {
      // read() in paused mode hands the bytes to the "data" listener that relays them.
      for (const u of ups) if (u.readableLength > 0) u.read(Math.min(bytes, u.readableLength));
    }, everyMs);
    return () => taken;
  }

  async close(): Promise<void> {
    clearInterval(this.trickling);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
