// Baseline 2: a raw `ws` server (same library and options as the edge: no compression).
// {"type":"generate",rid,prompt,params} streams one response as event frames;
// {"type":"cancel",id,rid} stops it: `end` (cancelled), then {"type":"ok",id}. A closed
// socket aborts its generations: there is no log to come back to.

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import { generate, parseRequest } from "./generate.js";
import { announce } from "./generate.js";

const server = createServer((_req, res) => res.writeHead(404).end());
const wss = new WebSocketServer({ noServer: true, maxPayload: 65536 });

server.on("upgrade", (req, socket, head) => {
  if (req.url !== "/v1/ws") return void socket.end("HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n");
  wss.handleUpgrade(req, socket, head, (ws) => serve(ws));
});

function serve(ws: WebSocket): void {
  const running = new Map<string, { abort: AbortController; done: Promise<void> }>();
  ws.on("message", (data) => {
    const text = data.toString();
    const cmd = JSON.parse(text) as { type?: string; id?: string; rid?: string };
    if (cmd.type === "cancel" && cmd.rid) {
      const run = running.get(cmd.rid);
      run?.abort.abort();
      void (run?.done ?? Promise.resolve()).then(() => ws.send(JSON.stringify({ type: "ok", id: cmd.id, rid: cmd.rid })));
      return;
    }
    const req = cmd.type === "generate" ? parseRequest(text) : undefined;
    if (!req) return void ws.send(JSON.stringify({ type: "error", code: "bad_request", message: "generate or cancel" }));
    const abort = new AbortController();
    const done = generate(req, abort.signal, (_seq, frame) => ws.send(frame)).finally(() => running.delete(req.rid));
    running.set(req.rid, { abort, done });
  });
  ws.on("close", () => {
    for (const run of running.values()) run.abort.abort();
  });
  ws.on("error", () => {});
}

server.listen(0, "127.0.0.1", () => {
  announce((server.address() as AddressInfo).port, () => {
    for (const ws of wss.clients) ws.terminate();
    server.closeAllConnections();
  });
});
