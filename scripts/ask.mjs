// `npm run ask -- [--url ws://…/v1/ws] [--token JWT] [--max-tokens N] "prompt"`:
// streams one answer into the terminal through the client library. Ctrl-C once cancels
// the generation (it ends with reason "cancelled"); a second Ctrl-C just leaves.

import { parseArgs } from "node:util";
import { UnbrokenClient } from "@unbroken/client";
import { WebSocket } from "ws";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: "string", default: process.env.UNBROKEN_URL ?? "ws://127.0.0.1:8787/v1/ws" },
    token: { type: "string", default: process.env.UNBROKEN_TOKEN },
    "max-tokens": { type: "string" },
    rid: { type: "string" },
    after: { type: "string" },
  },
});

const client = new UnbrokenClient({
  url: values.url,
  token: values.token,
  WebSocket,
  onStatus: (s) => {
    if (s.state === "reconnecting") process.stderr.write(`\n[reconnecting, attempt ${s.attempt}]\n`);
  },
});
const prompt = positionals.join(" ") || "Tell me something about rivers.";
const params = values["max-tokens"] ? { max_tokens: Number(values["max-tokens"]) } : undefined;
// With --rid and no prompt, follow an existing response instead (from --after).
const r =
  values.rid && positionals.length === 0
    ? client.subscribe(values.rid, { after: Number(values.after ?? 0) })
    : client.generate({ prompt, params, rid: values.rid });

let interrupts = 0;
process.on("SIGINT", () => {
  if (interrupts++ > 0) process.exit(130);
  process.stderr.write("\n[cancelling]\n");
  r.cancel().catch((err) => process.stderr.write(`[cancel failed: ${err.message}]\n`));
});

try {
  for await (const ev of r) {
    if (ev.event.kind === "token") process.stdout.write(ev.event.text);
    else if (ev.event.kind === "steer") process.stdout.write(` [steer: ${ev.event.text}] `);
    else if (ev.event.kind === "end") {
      const e = ev.event;
      process.stderr.write(`\n[end: ${e.reason}${e.error ? ` ${e.error.code}` : ""}; ${e.usage.completion_tokens} tokens; rid ${r.rid}]\n`);
    }
  }
} catch (err) {
  process.stderr.write(`\n[error ${err.code ?? ""}: ${err.message}]\n`);
  process.exitCode = 1;
}
await client.close();
