import assert from "node:assert/strict";
import { test } from "node:test";
import { Pacer } from "../src/pacer.js";

test("waits are released in order of their due times, none before it (beyond the timer's millisecond)", async () => {
  const pacer = new Pacer();
  const t0 = performance.now();
  const dues = [40, 5, 25, 5, 60, 15, 0, 33];
  const released: Array<{ due: number; at: number }> = [];
  await Promise.all(
    dues.map(
      (d) =>
        new Promise<void>((resolve) =>
          pacer.until(t0 + d, () => {
            released.push({ due: d, at: performance.now() - t0 });
            resolve();
          }),
        ),
    ),
  );
  assert.deepEqual(
    released.map((r) => r.due),
    [...dues].sort((a, b) => a - b),
  );
  for (const r of released) assert.ok(r.at >= r.due - 1, `due ${r.due} released at ${r.at.toFixed(2)}`);
  pacer.close();
});

test("close releases whatever still waits", async () => {
  const pacer = new Pacer();
  let released = 0;
  for (let i = 0; i < 3; i++) pacer.until(performance.now() + 60_000, () => released++);
  pacer.close();
  assert.equal(released, 3);
});
