// `unbroken dev` (npm start): a local try of the whole stack — nats-server with JetStream
// (unless NATS_URL names one), one worker and one edge — until Ctrl-C, which drains them.
// UNBROKEN_LOGS=1 shows every component's JSON log lines.
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startComponent, type Component } from "./component.js";
import { startLocalNats, type LocalNats } from "./local-nats.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../../../..");
const say = (msg: string): void => void process.stderr.write(`[unbroken] ${msg}\n`);
const echo = Boolean(process.env.UNBROKEN_LOGS);

let nats: LocalNats | undefined;
let natsUrl = process.env.NATS_URL;
if (natsUrl) {
  say(`using NATS at ${natsUrl}`);
} else {
  // The store lives in the checkout, so responses survive a restart.
  const storeDir = path.join(root, ".data", "jetstream");
  mkdirSync(storeDir, { recursive: true });
  nats = await startLocalNats(storeDir);
  natsUrl = nats.url;
  say(`nats-server with JetStream at ${natsUrl} (store ${path.relative(process.cwd(), storeDir) || storeDir})`);
}

const env = { ...process.env, NATS_URL: natsUrl };
const started: Component[] = [];
let stopping = false;
async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    say("stopping");
    await Promise.allSettled(started.map((c) => c.stop()));
    await nats?.stop();
  }
  process.exit(code);
}
process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));

try {
  started.push(await startComponent("worker", path.join(here, "worker.js"), env, "ready", echo, 30 * 60_000));
  started.push(await startComponent("edge", path.join(here, "edge.js"), env, "listening", echo));
} catch (err) {
  say(String((err as Error).message));
  await stop(1);
}
const [worker, edge] = started as [Component, Component];
for (const c of started) {
  void c.exited.then((how) => {
    if (stopping) return;
    say(`${c.name} exited (${how}); stopping the rest`);
    void stop(1);
  });
}

const host = process.env.HOST ?? "127.0.0.1";
const port = String(edge.ready.port);
say(`worker ready (generator ${String(worker.ready.generator)})`);
say(`edge listening: ws://${host}:${port}/v1/ws  (health: http://${host}:${port}/healthz)`);
say(`demo page: http://${host}:${port}/`);
const metricsPort = worker.ready.metricsPort;
say(
  `metrics: http://${host}:${port}/metrics (edge)${metricsPort ? `, http://${process.env.METRICS_HOST ?? "127.0.0.1"}:${String(metricsPort)}/metrics (worker)` : ""}`,
);
say(`try it:  npm run ask -- --url ws://${host}:${port}/v1/ws "Tell me about rivers"`);
say("Ctrl-C stops everything");
