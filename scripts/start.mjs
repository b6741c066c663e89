// `npm start`: a local try of the whole stack — nats-server with JetStream (unless
// NATS_URL names one), one worker and one edge — until Ctrl-C, which drains them.
// Set UNBROKEN_LOGS=1 to see every component's JSON log lines.

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
if (process.env.UNBROKEN_LOGS) process.env.UNBROKEN_TEST_LOGS = '1';
const { startNatsServer, spawnService } = await import('@unbroken/testing');

const say = (msg) => process.stderr.write(`[start] ${msg}\n`);

let nats;
let natsUrl = process.env.NATS_URL;
if (natsUrl) {
  say(`using NATS at ${natsUrl}`);
} else {
  // The store lives in the checkout, so responses survive a restart of `npm start`.
  const storeDir = path.join(root, '.data', 'jetstream');
  mkdirSync(storeDir, { recursive: true });
  nats = await startNatsServer({ storeDir });
  natsUrl = nats.url;
  say(`nats-server with JetStream at ${natsUrl} (store ${path.relative(root, storeDir)})`);
}

const env = { NATS_URL: natsUrl, LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' };
const worker = await spawnService({
  name: 'worker',
  script: path.join(root, 'packages/worker/dist/src/main.js'),
  // Any free port unless METRICS_PORT says otherwise: another worker may hold 9464 here.
  env: { ...env, METRICS_PORT: process.env.METRICS_PORT ?? '0' },
  readyMsg: 'ready',
});
const { metricsPort } = await worker.waitForLine((o) => o.msg === 'ready');
const edge = await spawnService({
  name: 'edge',
  script: path.join(root, 'packages/edge/dist/src/main.js'),
  env: { PORT: '8787', ...env },
  readyMsg: 'listening',
  timeoutMs: 30_000,
});
const host = process.env.HOST ?? '127.0.0.1';
say(`worker ready (GENERATOR=${process.env.GENERATOR ?? 'scripted'})`);
say(`edge listening: ws://${host}:${edge.port}/v1/ws  (health: http://${host}:${edge.port}/healthz)`);
say(`demo page: http://${host}:${edge.port}/`);
say(`metrics: http://${host}:${edge.port}/metrics (edge)${metricsPort ? `, http://${process.env.METRICS_HOST ?? "127.0.0.1"}:${metricsPort}/metrics (worker)` : ''}`);
say(`try it:  npm run ask -- --url ws://${host}:${edge.port}/v1/ws "Tell me about rivers"`);
say('Ctrl-C stops everything');

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  say('stopping');
  await Promise.allSettled([edge.stop(), worker.stop()]);
  if (nats) await nats.kill('SIGTERM');
  process.exit(0);
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
for (const svc of [edge, worker]) {
  svc.exited.then((info) => {
    if (stopping) return;
    say(`${svc.name} exited (${info.signal ?? info.code}); stopping the rest`);
    stop();
  });
}
