import { WebSocket } from "ws";
import { UnbrokenClient, type UnbrokenClientOptions, type ResponseHandle, type ResponseEventFrame } from "../src/index.js";
import type { FakeEdge } from "./fake-edge.js";

/** Polls `check` until it holds (generous timeout; no assertion on how long it took). */
export async function eventually<T>(check: () => T | undefined | false, label: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}`);
    await sleep(5);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The reconnect backoff of `clientFor`'s clients: tiny delays. */
export const TEST_BACKOFF = { minDelayMs: 5, maxDelayMs: 40, factor: 2, jitter: 0.5 };

/** A client for the fake edge: the `ws` WebSocket, tiny backoff delays. */
export function clientFor(edge: FakeEdge, extra: Partial<UnbrokenClientOptions> = {}): UnbrokenClient {
  return new UnbrokenClient({
    url: edge.url,
    WebSocket,
    reconnect: TEST_BACKOFF,
    ...extra,
  });
}

/**
 * The bound for "no (re)connect happened": a `clientFor` client waits at most the backoff's cap
 * (TEST_BACKOFF.maxDelayMs) before any reconnect, and opens its socket then; a probe opened after
 * that cap and accepted by the edge means such a socket would have been accepted and counted in
 * `edge.peers` by now.
 */
export async function pastReconnectWindow(edge: FakeEdge): Promise<void> {
  await sleep(TEST_BACKOFF.maxDelayMs);
  await edge.probe();
}

/** Iterates a handle to its end, collecting every frame. */
export async function collect(handle: ResponseHandle): Promise<ResponseEventFrame[]> {
  const out: ResponseEventFrame[] = [];
  for await (const ev of handle) out.push(ev);
  return out;
}

export function seqs(frames: ResponseEventFrame[]): number[] {
  return frames.map((f) => f.seq);
}

export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

import type { TestContext } from "node:test";
import { FakeEdge as Edge } from "./fake-edge.js";

/** A fake edge and a client on it, both closed when the test ends. */
export async function setup(
  t: TestContext,
  extra: Partial<UnbrokenClientOptions> = {},
  configure?: (edge: Edge) => void,
): Promise<{ edge: Edge; client: UnbrokenClient }> {
  const edge = await Edge.start();
  configure?.(edge);
  const client = clientFor(edge, extra);
  t.after(async () => {
    await client.close();
    await edge.close();
  });
  return { edge, client };
}

export const START = { kind: "start", model: "fake", created_at: "2025-01-01T00:00:00Z" };
