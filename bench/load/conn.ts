// The load client's side of the three wire formats, kept as thin as the formats allow so
// that the client costs the same for every target: `ws` for both WebSocket targets (our
// protocol adds only hello/welcome), node:http for SSE. Every frame is JSON.parse'd once.

import { request } from "node:http";
import { WebSocket } from "ws";

export interface Frame {
  type: string;
  id?: string;
  rid?: string;
  seq?: number;
  event?: { kind: string; text?: string; reason?: string; usage?: { completion_tokens: number } };
  code?: string;
  message?: string;
}

/** Epoch milliseconds with sub-millisecond resolution (same clock as the stamps). */
export const now = (): number => performance.timeOrigin + performance.now();

export interface Handlers {
  frame(f: Frame, at: number): void;
  /** The connection ended or failed (not called after our own close()). */
  closed(why: string): void;
}

export interface Conn {
  send(frame: object): void;
  /** Drops the connection at once (no close handshake): what a lost network looks like. */
  close(): void;
}

/** Opens a WebSocket; with `hello`, says hello and resolves once welcomed. */
export function openWs(url: string, hello: boolean, h: Handlers): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    let open = false;
    let mine = false;
    const conn: Conn = {
      send: (f) => ws.send(JSON.stringify(f)),
      close: () => {
        mine = true;
        ws.terminate();
      },
    };
    ws.on("open", () => {
      if (!hello) {
        open = true;
        return resolve(conn);
      }
      ws.send('{"type":"hello"}');
    });
    ws.on("message", (data) => {
      const at = now();
      const f = JSON.parse(data.toString()) as Frame;
      if (!open) {
        if (f.type === "welcome") {
          open = true;
          resolve(conn);
        } else reject(new Error(`expected welcome, got ${data.toString().slice(0, 200)}`));
        return;
      }
      h.frame(f, at);
    });
    ws.on("error", (err) => {
      if (!open) reject(err);
    });
    ws.on("close", (code) => {
      if (!open) reject(new Error(`closed ${code} before open`));
      else if (!mine) h.closed(`closed ${code}`);
    });
  });
}

/** POSTs a generate to an SSE server; `sent` gets the time the request went out. */
export function postSse(base: string, body: object, h: Handlers, sent: (at: number) => void): Conn {
  const payload = JSON.stringify(body);
  let mine = false;
  const req = request(`${base}/v1/generate`, {
    method: "POST",
    agent: false,
    headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload) },
  });
  req.on("socket", (s) => s.once("connect", () => sent(now())));
  req.on("response", (res) => {
    if (res.statusCode !== 200) return void h.closed(`HTTP ${res.statusCode}`);
    res.setEncoding("utf8");
    let buf = "";
    res.on("data", (chunk: string) => {
      const at = now();
      buf += chunk;
      for (let cut = buf.indexOf("\n\n"); cut >= 0; cut = buf.indexOf("\n\n")) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const d = block.indexOf("data: ");
        if (d >= 0) h.frame(JSON.parse(block.slice(d + 6)) as Frame, at);
      }
    });
    res.on("close", () => {
      if (!mine) h.closed("stream closed");
    });
  });
  req.on("error", (err) => {
    if (!mine) h.closed(err.message);
  });
  req.end(payload);
  return {
    send: () => {
      throw new Error("SSE has no upstream channel");
    },
    close: () => {
      mine = true;
      req.destroy();
    },
  };
}

/** An SSE connection with nothing in it (the idle-socket baseline); resolves on headers. */
export function openSseIdle(base: string): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}/v1/idle`, { agent: false });
    req.on("response", (res) => {
      res.on("data", () => {});
      resolve({ send: () => {}, close: () => req.destroy() });
    });
    req.on("error", reject);
    req.end();
  });
}
