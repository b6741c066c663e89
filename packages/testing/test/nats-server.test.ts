import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import net from "node:net";
import { test } from "node:test";
import { startNatsServer } from "../src/index.js";

/** Connect with a raw socket and parse the INFO line the server greets every client with. */
function readInfo(url: string): Promise<Record<string, unknown>> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(port), hostname);
    let buf = "";
    sock.setEncoding("utf8");
    sock.setTimeout(5_000, () => sock.destroy(new Error("timed out waiting for INFO")));
    sock.on("data", (chunk: string) => {
      buf += chunk;
      const eol = buf.indexOf("\r\n");
      if (eol < 0) return;
      sock.destroy();
      const line = buf.slice(0, eol);
      if (!line.startsWith("INFO ")) return reject(new Error(`unexpected greeting: ${line}`));
      resolve(JSON.parse(line.slice(5)) as Record<string, unknown>);
    });
    sock.on("error", reject);
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test("two servers run side by side on random ports with JetStream", async () => {
  await using a = await startNatsServer();
  await using b = await startNatsServer();
  assert.notEqual(a.port, b.port);
  for (const s of [a, b]) {
    assert.notEqual(s.port, 4222);
    assert.equal(s.url, `nats://127.0.0.1:${s.port}`);
    const info = await readInfo(s.url);
    assert.equal(info.jetstream, true);
    assert.equal(info.port, s.port);
  }
});

test("jetstream can be disabled", async () => {
  await using s = await startNatsServer({ jetstream: false });
  const info = await readInfo(s.url);
  assert.notEqual(info.jetstream, true);
});

test("restart after a hard kill keeps port and store dir", async () => {
  await using s = await startNatsServer();
  const { port, pid } = s;
  await s.kill();
  assert.equal(alive(pid), false);
  assert.equal(existsSync(s.storeDir), true);
  await s.restart();
  assert.equal(s.port, port);
  assert.notEqual(s.pid, pid);
  assert.equal((await readInfo(s.url)).jetstream, true);
  // Restarting a running server bounces it, still on the same port.
  await s.restart();
  assert.equal(s.port, port);
});

test("stop kills the process and removes the store dir", async () => {
  const s = await startNatsServer();
  const { pid, storeDir } = s;
  assert.equal(existsSync(storeDir), true);
  await s.stop();
  assert.equal(alive(pid), false);
  assert.throws(() => process.kill(pid, 0));
  assert.equal(existsSync(storeDir), false);
  await s.stop(); // idempotent
  await assert.rejects(s.restart());
});

test("a bad config fails fast with the server output in the error", async () => {
  await assert.rejects(startNatsServer({ configExtra: "this is { not valid" }), /nats-server exited/);
});
