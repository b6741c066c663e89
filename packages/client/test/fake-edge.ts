/**
 * A scriptable stand-in for the edge, speaking protocol v1 over a real WebSocket server on port 0.
 * Default behaviour: welcome, accepted/ok, replay of each response's log from `after`, then live
 * events; tests override single frames with `handle`, and break sockets with `terminateAll`.
 */
import { WebSocketServer, WebSocket } from "ws";
import type { AddressInfo } from "node:net";

export type Frame = Record<string, unknown> & { type: string };
export interface Received {
  conn: number;
  frame: Frame;
}

export class Peer {
  readonly subs = new Map<string, number>();
  constructor(
    readonly ws: WebSocket,
    readonly conn: number,
  ) {}
  send(frame: object): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }
  terminate(): void {
    this.ws.terminate();
  }
}

/** Return true when the frame was handled, so the default behaviour is skipped. */
export type FrameHook = (frame: Frame, peer: Peer, edge: FakeEdge) => boolean | undefined;

export class FakeEdge {
  readonly received: Received[] = [];
  readonly peers: Peer[] = [];
  readonly logs = new Map<string, Record<string, unknown>[]>();
  heartbeatMs = 30_000;
  /** Replays start this many seqs before `after` (clamped at 1): overlaps the client must drop. */
  overlap = 0;
  hook: FrameHook | undefined;
  #wss: WebSocketServer;
  #watchers = new Set<() => void>();

  private constructor(wss: WebSocketServer) {
    this.#wss = wss;
    wss.on("connection", (ws, req) => {
      // A probe (see probe()) is accepted and closed, and counted nowhere.
      if (req.url?.endsWith("?probe")) return void ws.close();
      const peer = new Peer(ws, this.peers.length + 1);
      this.peers.push(peer);
      ws.on("message", (data) => this.#onMessage(peer, String(data)));
      ws.on("close", () => this.#notify());
      this.#notify();
    });
  }

  static async start(): Promise<FakeEdge> {
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
    return new FakeEdge(wss);
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.#wss.address() as AddressInfo).port}/v1/ws`;
  }

  framesOf(type: string): Received[] {
    return this.received.filter((r) => r.frame.type === type);
  }

  /** Resolves once `check` holds, re-checked after every frame and connection change. */
  until<T>(check: () => T | undefined | false, label: string, timeoutMs = 10_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const watcher = (): void => {
        const v = check();
        if (v === undefined || v === false) return;
        this.#watchers.delete(watcher);
        clearTimeout(timer);
        resolve(v);
      };
      const timer = setTimeout(() => {
        this.#watchers.delete(watcher);
        reject(new Error(`timed out waiting for ${label}`));
      }, timeoutMs);
      this.#watchers.add(watcher);
      watcher();
    });
  }

  /** Waits for the n-th (1-based) received frame of a type. */
  nth(type: string, n = 1): Promise<Received> {
    return this.until(() => this.framesOf(type)[n - 1], `${type} frame #${n}`);
  }

  /** Appends an event to rid's log and sends it to every socket subscribed to rid. */
  append(rid: string, event: Record<string, unknown>): number {
    const log = this.#log(rid);
    log.push(event);
    const seq = log.length;
    for (const peer of this.peers) if (peer.subs.has(rid)) this.#sendUpTo(peer, rid);
    return seq;
  }

  tokens(rid: string, ...texts: string[]): void {
    for (const text of texts) this.append(rid, { kind: "token", text });
  }

  end(rid: string, reason = "stop"): void {
    this.append(rid, { kind: "end", reason, usage: { prompt_tokens: 1, completion_tokens: 2 } });
  }

  /** Subscribes a peer to rid from `after` and replays what the log holds (minus the overlap). */
  subscribePeer(peer: Peer, rid: string, after: number): void {
    peer.subs.set(rid, Math.max(0, after - this.overlap));
    this.#sendUpTo(peer, rid);
  }

  /**
   * Opens a socket and waits until this edge has accepted it: any connection started before
   * then has been accepted too, and shows in `peers`. The probe itself is not a peer.
   */
  async probe(): Promise<void> {
    const ws = new WebSocket(`${this.url}?probe`);
    await new Promise<void>((resolve, reject) => {
      ws.once("close", () => resolve());
      ws.once("error", reject);
    });
  }

  terminateAll(): void {
    for (const p of this.peers) p.terminate();
  }

  get openPeers(): Peer[] {
    return this.peers.filter((p) => p.ws.readyState === WebSocket.OPEN);
  }

  async close(): Promise<void> {
    this.terminateAll();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }

  #log(rid: string): Record<string, unknown>[] {
    let log = this.logs.get(rid);
    if (!log) {
      log = [];
      this.logs.set(rid, log);
    }
    return log;
  }

  #sendUpTo(peer: Peer, rid: string): void {
    const log = this.#log(rid);
    let sent = peer.subs.get(rid) ?? 0;
    while (sent < log.length) {
      sent++;
      peer.send({ type: "event", rid, seq: sent, event: log[sent - 1] });
      if (log[sent - 1]?.kind === "end") {
        peer.subs.delete(rid);
        return;
      }
    }
    peer.subs.set(rid, sent);
  }

  #notify(): void {
    for (const w of [...this.#watchers]) w();
  }

  #onMessage(peer: Peer, text: string): void {
    const frame = JSON.parse(text) as Frame;
    this.received.push({ conn: peer.conn, frame });
    try {
      if (!this.hook?.(frame, peer, this)) this.#default(frame, peer);
    } finally {
      this.#notify();
    }
  }

  #default(f: Frame, peer: Peer): void {
    const id = f.id as string | undefined;
    const rid = f.rid as string;
    const after = typeof f.after === "number" ? f.after : 0;
    switch (f.type) {
      case "hello":
        peer.send({ type: "welcome", protocol: 1, session: `s${peer.conn}`, heartbeat_ms: this.heartbeatMs });
        return;
      case "ping":
        peer.send({ type: "pong", id });
        return;
      case "generate": {
        const existing = this.logs.has(rid);
        this.#log(rid);
        peer.send({ type: "accepted", id, rid, existing });
        this.subscribePeer(peer, rid, after);
        return;
      }
      case "subscribe":
        if (!this.logs.has(rid)) {
          peer.send({ type: "error", id, rid, code: "not_found", message: "no such response" });
          return;
        }
        peer.send({ type: "ok", id, rid, ended: this.#ended(rid) });
        this.subscribePeer(peer, rid, after);
        return;
      case "unsubscribe":
        peer.subs.delete(rid);
        peer.send({ type: "ok", id, rid });
        return;
      case "cancel":
        peer.send({ type: "ok", id, rid });
        if (!this.#ended(rid)) this.end(rid, "cancelled");
        return;
      case "steer":
        if (this.#ended(rid)) peer.send({ type: "error", id, rid, code: "finished", message: "response has ended" });
        else peer.send({ type: "ok", id, rid });
        return;
      default:
        peer.send({ type: "error", id, code: "bad_request", message: `unknown type ${f.type}` });
    }
  }

  #ended(rid: string): boolean {
    return this.#log(rid).some((e) => e.kind === "end");
  }
}
