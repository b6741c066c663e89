/**
 * The part of the WebSocket API the client uses. Browsers' `WebSocket` and the `ws` package's
 * `WebSocket` both fit it, so nothing here imports `ws` or a Node builtin.
 */
export interface SocketEventLike {
  readonly type: string;
  /** `message`: the frame (a string for text frames). */
  readonly data?: unknown;
  /** `close`: the close code and reason. */
  readonly code?: number;
  readonly reason?: string;
  /** `error`: a description, where the implementation gives one. */
  readonly message?: string;
}

export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "open" | "message" | "close" | "error", listener: (event: SocketEventLike) => void): void;
  /** Only the `ws` package has it: drops the TCP connection at once, without a closing handshake. */
  terminate?(): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** `readyState` values, the same everywhere; the constructors' static constants are not relied on. */
export const CONNECTING = 0;
export const OPEN = 1;

export function resolveWebSocket(given: WebSocketConstructor | undefined): WebSocketConstructor {
  if (given !== undefined) return given;
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (typeof global === "function") return global;
  throw new TypeError(
    "UnbrokenClient: no WebSocket implementation found (globalThis.WebSocket is undefined); " +
      'pass { WebSocket } from the ws package on Node 20: import { WebSocket } from "ws"',
  );
}
