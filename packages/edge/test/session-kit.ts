// What the Session tests share: Sessions served on a `ws` server of their own (port 0) with
// deps built as server.ts builds them, and a bare socket client that keeps every frame.
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import type { Broker } from "@unbroken/store";
import { pino } from "pino";
import WebSocket, { WebSocketServer } from "ws";
import { authenticator } from "../src/auth.js";
import { edgeConfigFromEnv, type EdgeConfig, type EdgeLimits } from "../src/config.js";
import { EdgeMetrics } from "../src/metrics.js";
import { ResponseService } from "../src/responses.js";
import { Session, type SessionDeps } from "../src/session.js";

export interface ServeOptions {
  auth?: EdgeConfig["auth"];
  limits?: Partial<EdgeLimits>;
  heartbeatMs?: number;
  helloTimeoutMs?: number;
  /** The sessions' clock for token expiry (default Date.now). */
  clock?: () => number;
}

export interface SessionServer {
  readonly url: string;
  readonly deps: SessionDeps;
  /** Every session, by id, as its socket connected. */
  readonly sessions: Map<string, Session>;
  close(): Promise<void>;
}

/** A `ws` server on a free port making one Session per socket, on `broker`. */
export async function serveSessions(broker: Broker, opts: ServeOptions = {}): Promise<SessionServer> {
  const auth = opts.auth ?? { mode: "none" };
  const limits = { ...edgeConfigFromEnv({}).limits, ...opts.limits };
  const log = pino({ level: "silent" });
  const metrics = new EdgeMetrics();
  const queueTimeoutMs = 600_000;
  const responses = new ResponseService(
    broker,
    { authOn: auth.mode !== "none", queueTimeoutMs, controlTimeoutMs: 1_000, limits, metrics },
    log,
  );
  const deps: SessionDeps = {
    broker,
    responses,
    limits,
    authenticate: authenticator(auth, 3_600_000),
    heartbeatMs: opts.heartbeatMs ?? 15_000,
    helloTimeoutMs: opts.helloTimeoutMs ?? 10_000,
    queueTimeoutMs,
    orphanTimeoutMs: 600_000,
    metrics,
    log,
    ...(opts.clock ? { clock: opts.clock } : {}),
  };
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  await once(wss, "listening");
  const sessions = new Map<string, Session>();
  let n = 0;
  wss.on("connection", (ws) => {
    const id = `session-${++n}`;
    sessions.set(id, new Session(ws, id, deps));
  });
  const { port } = wss.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}`,
    deps,
    sessions,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of wss.clients) ws.terminate();
        wss.close(() => resolve());
      }),
  };
}

// biome-ignore lint/suspicious/noExplicitAny: frames are whatever the server sent
export type Frame = Record<string, any>;

/** A bare socket client: every frame kept, awaited by predicate (with a deadline). */
export class Client {
  readonly frames: Frame[] = [];
  /** The text of each frame, as received. */
  readonly texts: string[] = [];
  private readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: Array<() => void> = [];
  private ids = 0;

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data) => {
      this.texts.push(data.toString());
      this.frames.push(JSON.parse(data.toString()) as Frame);
      this.wake();
    });
    this.closed = new Promise((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
    // Woken on close too, so a wait for a frame that will never come ends at once.
    void this.closed.then(() => this.wake());
  }

  /** A socket, open, that has said nothing yet. */
  static async open(url: string): Promise<Client> {
    const ws = new WebSocket(url);
    const c = new Client(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    return c;
  }

  /** A socket past hello and welcome. */
  static async connect(url: string, token?: string): Promise<Client> {
    const c = await Client.open(url);
    c.send(token === undefined ? { type: "hello" } : { type: "hello", token });
    const f = await c.next((f) => f.type === "welcome" || f.type === "error");
    if (f.type !== "welcome") throw new Error(`hello refused: ${JSON.stringify(f)}`);
    return c;
  }

  send(frame: Frame): void {
    this.ws.send(JSON.stringify(frame));
  }

  /** Sends `frame` with a fresh id; resolves with the reply that carries it. */
  request(frame: Frame): Promise<Frame> {
    const id = `r${++this.ids}`;
    this.send({ ...frame, id });
    return this.next((f) => f.id === id);
  }

  /** The first frame from index `from` on that matches. */
  async next(pred: (f: Frame) => boolean, from = 0, ms = 15_000): Promise<Frame> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.frames.slice(from).find(pred);
      if (found) return found;
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed; got ${JSON.stringify(this.frames)}`);
      if (Date.now() > deadline) throw new Error(`no such frame within ${ms} ms; got ${JSON.stringify(this.frames)}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }

  events(rid: string): Frame[] {
    return this.frames.filter((f) => f.type === "event" && f.rid === rid);
  }

  /** Waits until `count` events of rid have come. */
  async untilEvents(rid: string, count: number): Promise<Frame[]> {
    await this.next(() => this.events(rid).length >= count);
    return this.events(rid);
  }

  /** A ping answered: every frame the server sent this socket before it has come. */
  async roundTrip(): Promise<void> {
    const pong = await this.request({ type: "ping" });
    if (pong.type !== "pong") throw new Error(`ping answered with ${JSON.stringify(pong)}`);
  }

  /** The close code and reason, once the socket has closed (within `ms`). */
  async untilClosed(ms = 15_000): Promise<{ code: number; reason: string }> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the socket did not close within ${ms} ms; got ${JSON.stringify(this.frames)}`)), ms);
    });
    try {
      return await Promise.race([this.closed, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.ws.close(1000);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

/** The clients a test file opens, each terminated after its test (`afterEach(() => pool.closeAll())`). */
export class ClientPool {
  private readonly clients: Client[] = [];

  /** A socket that has said nothing yet. */
  async open(url: string): Promise<Client> {
    return this.keep(await Client.open(url));
  }

  /** A socket past its hello (with `token` when given). */
  async connect(url: string, token?: string): Promise<Client> {
    return this.keep(await Client.connect(url, token));
  }

  closeAll(): void {
    for (const c of this.clients.splice(0)) c.ws.terminate();
  }

  private keep(c: Client): Client {
    this.clients.push(c);
    return c;
  }
}
