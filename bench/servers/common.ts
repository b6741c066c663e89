// What every baseline server shares: the request body the load client POSTs or sends, and
// the ready line the bench waits for. Kept apart from generate.ts so that the lean SSE server
// does not load the scripted generator it does not use.

import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { GenerationBody } from "@unbroken/protocol";

export interface GenerateRequest {
  rid: string;
  prompt: string;
  params?: GenerationBody["params"];
}

/** Parses a request body; undefined when it is not one. */
export function parseRequest(text: string): GenerateRequest | undefined {
  try {
    const v = JSON.parse(text) as Partial<GenerateRequest>;
    return typeof v.rid === "string" && typeof v.prompt === "string" ? (v as GenerateRequest) : undefined;
  } catch {
    return undefined;
  }
}

/** The line spawnService waits for, then a clean exit on SIGTERM/SIGINT. */
export function announce(port: number, close: () => void): void {
  process.stdout.write(`${JSON.stringify({ msg: "listening", port })}\n`);
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    process.once(sig, () => {
      close();
      process.exit(0);
    });
  }
}

/**
 * The HTTP side both SSE baselines share: `GET /v1/idle` holds an event stream open with
 * nothing in it (the idle-connection baseline), `POST /v1/generate` reads its body and hands a
 * valid one to `generate` (400 otherwise), anything else is 404. Listens on a free port and
 * announces it.
 */
export function serveSse(generate: (body: GenerateRequest, res: ServerResponse) => void): void {
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
      if (body) generate(body, res);
      else res.writeHead(400).end();
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, "127.0.0.1", () => {
    announce((server.address() as AddressInfo).port, () => server.closeAllConnections());
  });
}
