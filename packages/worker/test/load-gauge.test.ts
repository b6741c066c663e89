import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { LoadGauge } from "../src/load-gauge.js";

function spin(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

test("the gauge turns busy when the event loop works through its interval, and idle when it rests", async () => {
  const gauge = new LoadGauge(0.5, 20, 100);
  try {
    await sleep(60);
    assert.equal(gauge.busy, false, "an idle loop");
    // Blocking the loop across several whole intervals: the overdue sample, which runs
    // before any timer set after it, sees an interval spent working.
    spin(300);
    await sleep(1);
    assert.equal(gauge.busy, true, "a loop that did nothing but work");
    assert.equal(gauge.load, "saturated");
    await sleep(150);
    assert.equal(gauge.busy, false, "idle again");
    assert.equal(gauge.load, "idle");
  } finally {
    gauge.stop();
  }
});

test("one slow interval makes the worker busy, not saturated; work sustained over sustainMs does", async () => {
  const gauge = new LoadGauge(0.5, 20, 500);
  try {
    await sleep(60);
    // A long turn (a garbage collection, a burst of acks): its interval was over 90 % work,
    // but its weight in the average over 500 ms is about a third, far from 85 %.
    spin(200);
    await sleep(1);
    assert.equal(gauge.load, "busy", "a blip");
    spin(1500);
    await sleep(1);
    assert.equal(gauge.load, "saturated", "work through three times sustainMs");
  } finally {
    gauge.stop();
  }
});
