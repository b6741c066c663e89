import { Registry, collectDefaultMetrics } from "prom-client";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * One Prometheus registry per edge or worker (never the library's global one, so tests can
 * run several in one process), with the process's default metrics under `unbroken_`.
 */
export function createRegistry(component: "edge" | "worker"): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ component });
  collectDefaultMetrics({ register: registry, prefix: "unbroken_" });
  return registry;
}

export async function metricsText(registry: Registry): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}

/** A tiny HTTP server for processes without one of their own (the worker): GET /metrics. */
export async function serveMetrics(registry: Registry, port: number, host: string): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if ((req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404).end();
      return;
    }
    metricsText(registry).then(
      ({ contentType, body }) => res.writeHead(200, { "content-type": contentType }).end(body),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
