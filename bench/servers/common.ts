// What every baseline server shares: the request body the load client POSTs or sends, and
// the ready line the bench waits for. Kept apart from generate.ts so that the lean SSE server
// does not load the scripted generator it does not use.

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
