import type { EventFrame } from "@unbroken/protocol";
import WebSocket from "ws";

/** Any frame the edge sends, loosely typed: tests look at what actually arrived. */
// biome-ignore lint/suspicious/noExplicitAny: a frame as it arrived; each test reads the fields it expects
export type Frame = Record<string, any>;

/**
 * A bare protocol client for tests that check the wire itself: every frame received is
 * kept, in order, and can be awaited by predicate.
 */
export class RawClient {
  readonly frames: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: Array<{ pred: (f: Frame) => boolean; from: number; resolve: (f: Frame) => void }> = [];
  private nextId = 0;

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data, isBinary) => {
      const frame = JSON.parse(isBinary ? "{}" : data.toString()) as Frame;
      this.frames.push(frame);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(frame)) return true;
        w.resolve(frame);
        return false;
      });
    });
    this.closed = new Promise((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static async open(url: string): Promise<RawClient> {
    const ws = new WebSocket(url);
    const client = new RawClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    return client;
  }

  /** Opens a socket and completes the handshake. */
  static async connect(url: string, token?: string): Promise<RawClient> {
    const c = await RawClient.open(url);
    c.send(token === undefined ? { type: "hello" } : { type: "hello", token });
    const welcome = await c.next((f) => f.type === "welcome" || f.type === "error");
    if (welcome.type !== "welcome") throw new Error(`hello refused: ${JSON.stringify(welcome)}`);
    return c;
  }

  send(frame: Frame): void {
    this.ws.send(JSON.stringify(frame));
  }

  sendText(text: string | Buffer, binary = false): void {
    this.ws.send(text, { binary });
  }

  /** The first frame matching `pred` received at or after index `from` (default: any). */
  next(pred: (f: Frame) => boolean, timeoutMs = 15_000, from = 0): Promise<Frame> {
    const seen = this.frames.slice(from).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        pred,
        from,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
      });
    });
  }

  /** Sends `frame` with a fresh id and returns the reply carrying that id. */
  async request(frame: Frame, timeoutMs = 15_000): Promise<Frame> {
    const id = `r${++this.nextId}`;
    this.send({ ...frame, id });
    return this.next((f) => f.id === id, timeoutMs);
  }

  events(rid: string): EventFrame[] {
    return this.frames.filter((f) => f.type === "event" && f.rid === rid) as EventFrame[];
  }

  async untilEnd(rid: string, timeoutMs = 30_000): Promise<EventFrame[]> {
    await this.next((f) => f.type === "event" && f.rid === rid && f.event.kind === "end", timeoutMs);
    return this.events(rid);
  }

  close(): void {
    this.ws.close();
  }

  terminate(): void {
    this.ws.terminate();
  }
}

export function textOf(events: EventFrame[]): string {
  return events.map((e) => (e.event.kind === "token" ? e.event.text : "")).join("");
}

/**
 * Tokens the scripted generator wrote in these events: one word each. Counted by words, not
 * events, because a worker coalesces tokens into one event while a write is in flight.
 */
export function tokenCount(events: EventFrame[]): number {
  return textOf(events).split(/\s+/).filter(Boolean).length;
}

/** Asserts-friendly summary: the seqs seen, to compare with 1..n. */
export function seqs(events: EventFrame[]): number[] {
  return events.map((e) => e.seq);
}

export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
