import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { makeTempDir, spawnService } from "../src/index.js";

// A stand-in service that logs pino-style JSON lines.
const FIXTURE = `
const log = (o) => process.stdout.write(JSON.stringify({ level: 30, ...o }) + '\\n');
if (process.env.MODE === 'crash') { console.error('boom: bad config'); process.exit(3); }
log({ msg: 'starting' });
setTimeout(() => log({ msg: 'listening', port: 12345 }), 50);
setInterval(() => log({ msg: 'tick', n: Date.now() }), 20);
process.on('SIGTERM', () => { log({ msg: 'bye' }); process.exit(0); });
`;

test("spawnService waits for the ready line and can stop the service", async () => {
  await using dir = await makeTempDir();
  const script = path.join(dir.path, "svc.js");
  await writeFile(script, FIXTURE);
  const svc = await spawnService({ name: "fixture", script, env: { MODE: "ok" }, readyMsg: "listening" });
  assert.equal(svc.port, 12345);
  assert.ok(svc.pid > 0);
  assert.equal(JSON.parse(svc.lines[0]!).msg, "starting");
  const from = svc.lines.length;
  const tick = await svc.waitForLine((o) => o.msg === "tick", 5_000, from);
  assert.equal(tick.msg, "tick");
  await assert.rejects(
    svc.waitForLine((o) => o.msg === "never", 100),
    /no matching log line/,
  );
  const res = await svc.stop();
  assert.deepEqual(res, { code: 0, signal: null });
  assert.equal(JSON.parse(svc.lines.at(-1)!).msg, "bye");
  assert.deepEqual(await svc.exited, res);
});

test("spawnService rejects with stderr when the service dies before ready", async () => {
  await using dir = await makeTempDir();
  const script = path.join(dir.path, "svc.js");
  await writeFile(script, FIXTURE);
  await assert.rejects(spawnService({ name: "fixture", script, env: { MODE: "crash" }, readyMsg: "listening" }), /boom: bad config/);
});

test("kill() hard-kills", async () => {
  await using dir = await makeTempDir();
  const script = path.join(dir.path, "svc.js");
  await writeFile(script, FIXTURE);
  const svc = await spawnService({ name: "fixture", script, env: {}, readyMsg: "listening" });
  await svc.kill();
  assert.deepEqual(await svc.exited, { code: null, signal: "SIGKILL" });
});
