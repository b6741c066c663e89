import { Broker } from "@unbroken/store";
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type { Logger } from "pino";
import { WebSocketServer } from "ws";
import { authenticator } from "./auth.js";
import type { EdgeConfig } from "./config.js";
import { Heartbeat } from "./heartbeat.js";
import { httpHandler, principalFromRequest } from "./http.js";
import { TokenBuckets, clientAddress } from "./limits.js";
import { EdgeMetrics, type Transport } from "./metrics.js";
import { OriginPolicy, isLoopbackHost, refusedOriginMessage } from "./origin.js";
import { ResponseService } from "./responses.js";
import { Session, type SessionDeps } from "./session.js";

export const WS_PATH = "/v1/ws";

/** How often, and past what age, generations not seen ending are checked against the store. */
const GENERATION_SWEEP_MS = 30_000;

export interface Edge {
  readonly port: number;
  readonly url: string;
  readonly sessions: number;
  /** Sockets and SSE streams closed as slow consumers (MAX_SOCKET_BUFFER) since start. */
  readonly slowConsumers: number;
  /** This edge's Prometheus metrics (served at `GET /metrics`). */
  readonly metrics: EdgeMetrics;
  /** Drains: goaway to every socket, then closes the listener and the NATS connection. */
  close(): Promise<void>;
}

export async function startEdge(config: EdgeConfig, log: Logger): Promise<Edge> {
  for (const warning of config.warnings) log.warn(warning);
  const metrics = new EdgeMetrics();
  const broker = await Broker.connect({
    url: config.natsUrl,
    name: "unbroken-edge",
    retentionMs: config.retentionMs,
    replicas: config.replicas,
    log,
  });
  const responses = new ResponseService(
    broker,
    { authOn: config.auth.mode !== "none", queueTimeoutMs: config.queueTimeoutMs, limits: config.limits, metrics },
    log,
  );
  // Generations whose end no subscription here saw (an HTTP generate, an unsubscribed socket).
  const sweep = setInterval(() => void responses.generations.sweep(GENERATION_SWEEP_MS), GENERATION_SWEEP_MS);
  sweep.unref();
  const { connectionRate, connectionBurst } = config.limits;
  const connections = connectionRate > 0 ? new TokenBuckets(connectionRate, connectionBurst) : undefined;
  const address = (req: IncomingMessage) => clientAddress(req, config.trustProxy);
  // An anonymous edge on loopback is what a page could reach through a name rebound to 127.0.0.1 (OriginPolicy).
  const origins = new OriginPolicy(config.allowedOrigins, config.auth.mode === "none" && isLoopbackHost(config.host));
  let slowConsumers = 0;
  const onSlowConsumer = (transport: Transport): void => {
    slowConsumers++;
    metrics.slowConsumer(transport);
  };
  const deps: SessionDeps = {
    broker,
    responses,
    limits: config.limits,
    onSlowConsumer,
    authenticate: authenticator(config.auth, config.capabilityMaxTtlMs),
    heartbeatMs: config.heartbeatMs,
    helloTimeoutMs: config.helloTimeoutMs,
    queueTimeoutMs: config.queueTimeoutMs,
    orphanTimeoutMs: config.orphanTimeoutMs,
    metrics,
    log,
  };
  const sessions = new Map<string, Session>();
  const heartbeat = new Heartbeat(config.heartbeatMs);
  const wss = new WebSocketServer({ noServer: true, maxPayload: config.maxFrameBytes });
  const server = createServer(
    httpHandler({
      ready: () => broker.connected,
      responses,
      subscriptions: deps,
      principal: principalFromRequest(deps.authenticate),
      heartbeatMs: config.heartbeatMs,
      limits: config.limits,
      connections,
      address,
      origins,
      onSlowConsumer,
      metrics,
      maxBodyBytes: config.maxBodyBytes,
      webRoot: config.webRoot ? path.resolve(config.webRoot) : undefined,
      log,
    }),
  );

  server.on("upgrade", (req, socket, head) => {
    if ((req.url ?? "").split("?")[0] !== WS_PATH) {
      metrics.error("not_found", "http");
      socket.end("HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n");
      return;
    }
    if (connections && !connections.take(address(req))) {
      log.warn({ address: address(req) }, "connection refused: CONNECTION_RATE");
      metrics.error("rate_limited", "http");
      socket.end("HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
      return;
    }
    const verdict = origins.check(req);
    if (!verdict.allowed) {
      log.warn({ origin: verdict.origin }, "upgrade refused: origin not allowed (ALLOWED_ORIGINS)");
      metrics.error("forbidden", "http");
      const body = refusedOriginMessage(verdict.origin);
      socket.end(
        `HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const id = randomBytes(9).toString("base64url");
      const session = new Session(ws, id, deps, address(req));
      sessions.set(id, session);
      heartbeat.add(ws, () => session.timedOut());
      ws.on("close", () => sessions.delete(id));
    });
  });

  try {
    await listenOrFallBack(server, config, log);
  } catch (err) {
    heartbeat.stop();
    await broker.close();
    throw err;
  }
  const port = (server.address() as AddressInfo).port;
  log.info({ port, host: config.host, auth: config.auth.mode }, "listening");

  let closing: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    log.info({ sockets: sessions.size }, "draining");
    server.close();
    for (const s of sessions.values()) s.goaway();
    await waitUntil(() => sessions.size === 0, config.drainTimeoutMs);
    for (const ws of wss.clients) ws.terminate();
    clearInterval(sweep);
    heartbeat.stop();
    wss.close();
    server.closeAllConnections();
    await broker.close();
    log.info("edge stopped");
  };
  return {
    port,
    url: `ws://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}${WS_PATH}`,
    get sessions() {
      return sessions.size;
    },
    get slowConsumers() {
      return slowConsumers;
    },
    metrics,
    close: () => (closing ??= close()),
  };
}

/**
 * PORT when it was set (an address a load balancer points at is never silently changed); the
 * default 8787 when free, else any free port (a second edge on this host), with a warning.
 */
async function listenOrFallBack(server: Server, config: EdgeConfig, log: Logger): Promise<void> {
  try {
    await listen(server, config.port, config.host);
  } catch (err) {
    if (!config.portIsDefault || (err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
    await listen(server, 0, config.host);
    log.warn(
      { wanted: config.port, port: (server.address() as AddressInfo).port },
      "the default PORT is taken (another edge on this host?); listening on a free port instead",
    );
  }
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
}
