// A real local HTTP server speaking the OpenAI chat completions streaming format, with a
// scripted behaviour per request, for testing the openai generator end to end over sockets.
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type Step =
  /** A content delta chunk. */
  | { text: string }
  /** A chunk with this finish_reason and an empty delta. */
  | { finish: string }
  /** The final usage chunk (`choices: []`), as sent for `stream_options.include_usage`. */
  | { usage: { prompt_tokens: number; completion_tokens: number } }
  /** `data: [DONE]`. */
  | { done: true }
  /** Any JSON object as a `data:` event. */
  | { chunk: unknown }
  /** Bytes written as they are (for malformed events). */
  | { raw: string }
  | { sleep: number }
  /** Sends nothing more until the client closes the connection. */
  | { hang: true }
  /** Destroys the socket at once: the stream is cut mid-answer. */
  | { destroy: true };

export interface Script {
  /** A non-200 status answered with `body` (default a JSON error) and no stream. */
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  /** Never answers, not even headers, until the client gives up. */
  silent?: boolean;
  /** The SSE steps of a 200 answer; the response ends after the last one. */
  steps?: Step[];
}

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  // biome-ignore lint/suspicious/noExplicitAny: whatever JSON the client sent; tests read the fields they expect
  body: any;
  /** Resolves when the client closed the connection before the server ended the response. */
  closedByClient: Promise<void>;
  clientClosed: boolean;
}

/** Text and finish chunks of a typical answer, ended with usage and [DONE]. */
export function answer(tokens: string[], opts: { finish?: string; usage?: [number, number] | null } = {}): Step[] {
  const steps: Step[] = [{ chunk: chunk({ role: "assistant", content: "" }) }, ...tokens.map((text) => ({ text }))];
  steps.push({ finish: opts.finish ?? "stop" });
  if (opts.usage !== null) {
    const [p, c] = opts.usage ?? [5, tokens.length];
    steps.push({ usage: { prompt_tokens: p, completion_tokens: c } });
  }
  steps.push({ done: true });
  return steps;
}

export function chunk(delta: Record<string, unknown>, finish: string | null = null): unknown {
  return {
    id: "chatcmpl-fake",
    object: "chat.completion.chunk",
    created: 1_700_000_000,
    model: "fake-model",
    choices: [{ index: 0, delta, finish_reason: finish }],
  };
}

export class FakeOpenAI {
  readonly requests: ReceivedRequest[] = [];
  private server: Server | undefined;
  private readonly waiters: Array<() => void> = [];

  /** `scripts[i]` answers request i; requests past the end get the last script. */
  constructor(private readonly scripts: Script[]) {}

  async start(): Promise<string> {
    const server = createServer((req, res) => {
      let raw = "";
      req.setEncoding("utf8");
      req.on("data", (d: string) => (raw += d));
      req.on("end", () => {
        let body: unknown;
        try {
          body = JSON.parse(raw);
        } catch {
          body = raw;
        }
        let markClosed!: () => void;
        const rec: ReceivedRequest = {
          method: req.method ?? "",
          url: req.url ?? "",
          headers: req.headers,
          body,
          closedByClient: new Promise<void>((resolve) => (markClosed = resolve)),
          clientClosed: false,
        };
        res.on("close", () => {
          if (!res.writableFinished) {
            rec.clientClosed = true;
            markClosed();
          }
        });
        const index = this.requests.length;
        this.requests.push(rec);
        for (const w of this.waiters.splice(0)) w();
        const script = this.scripts[Math.min(index, this.scripts.length - 1)] ?? {};
        void this.answer(script, res, rec);
      });
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  }

  /** Resolves once at least `n` requests have arrived. */
  async waitForRequests(n: number): Promise<void> {
    while (this.requests.length < n) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async answer(script: Script, res: ServerResponse, rec: ReceivedRequest): Promise<void> {
    if (script.silent) return; // the client's idle timeout must end it
    if (script.status !== undefined && script.status !== 200) {
      res.writeHead(script.status, { "content-type": "application/json", ...script.headers });
      res.end(script.body ?? JSON.stringify({ error: { message: `scripted ${script.status}`, type: "fake" } }));
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", ...script.headers });
    res.flushHeaders();
    // Each write is awaited until handed to the socket, so a `destroy` cuts after what came before.
    const write = (data: string): Promise<void> => new Promise((resolve) => res.write(data, () => resolve()));
    for (const step of script.steps ?? []) {
      if (rec.clientClosed) return;
      if ("text" in step) await write(event(chunk({ content: step.text })));
      else if ("finish" in step) await write(event(chunk({}, step.finish)));
      else if ("usage" in step) {
        const usage = { ...step.usage, total_tokens: step.usage.prompt_tokens + step.usage.completion_tokens };
        await write(event({ id: "chatcmpl-fake", object: "chat.completion.chunk", choices: [], usage }));
      } else if ("done" in step) await write("data: [DONE]\n\n");
      else if ("chunk" in step) await write(event(step.chunk));
      else if ("raw" in step) await write(step.raw);
      else if ("sleep" in step) await new Promise((r) => setTimeout(r, step.sleep));
      else if ("hang" in step) return void (await rec.closedByClient);
      else if ("destroy" in step) return void res.socket?.destroy();
    }
    res.end();
  }
}

function event(data: unknown): string {
  return `data: ${JSON.stringify(data)}\n\n`;
}

/** A port nothing listens on: bound once, then closed. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
