// Baseline 1: a plain SSE server on node:http. POST /v1/generate streams one response as
// `id: <seq>` + `data: <event frame>` per event; GET /v1/idle holds an event stream open
// with nothing in it (the idle-connection baseline). Closing the request aborts the
// generation: there is no log to come back to.

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { announce, generate, parseRequest } from "./generate.js";

const server = createServer((req, res) => {
  if (req.method === "GET" && req.url === "/v1/idle") {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    res.write(": idle\n\n");
    return;
  }
  if (req.method !== "POST" || req.url !== "/v1/generate") {
    res.writeHead(404).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const body = parseRequest(Buffer.concat(chunks).toString("utf8"));
    if (!body) {
      res.writeHead(400).end();
      return;
    }
    const abort = new AbortController();
    res.on("close", () => abort.abort());
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    generate(body, abort.signal, (seq, frame) => res.write(`id: ${seq}\ndata: ${frame}\n\n`)).then(
      () => res.end(),
      () => res.destroy(),
    );
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  announce((server.address() as AddressInfo).port, () => server.closeAllConnections());
});
