import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { newRid } from "@unbroken/protocol";
import { Broker, silentLog } from "@unbroken/store";
import { startNatsServer, type NatsServerHandle } from "@unbroken/testing";
import { pino } from "pino";
import { RunControl, type ControlTarget } from "../src/run-control.js";

// A run's control subject against a real nats-server: how steers taken before the generation
// began are answered.

let nats: NatsServerHandle;
let broker: Broker;

before(async () => {
  nats = await startNatsServer();
  broker = await Broker.connect({ url: nats.url, name: "run-control-test", retentionMs: 3_600_000, log: silentLog });
});
after(async () => {
  await broker?.close();
  await nats?.stop();
});

const notStarted: ControlTarget = { started: () => false, cancel: () => undefined, steer: () => true, fenced: () => undefined };

test("an early steer gets ok once logged, or finished when the generation refused it (a call was open)", async () => {
  const rid = newRid();
  const control = new RunControl(broker.control, rid, notStarted, pino({ level: "silent" }));
  control.listen();
  const logged = broker.control.request(rid, { op: "steer", text: "shorter" }, 5_000);
  const refused = broker.control.request(rid, { op: "steer", text: "in French" }, 5_000);
  let early: string[] = [];
  for (let i = 0; i < 100 && early.length < 2; i++) {
    early = [...early, ...control.takeEarly()];
    if (early.length < 2) await new Promise((r) => setTimeout(r, 10));
  }
  assert.deepEqual(early.sort(), ["in French", "shorter"]);
  control.logged("shorter");
  control.refused("in French");
  assert.deepEqual(await logged, { ok: true });
  assert.deepEqual(await refused, { ok: false, code: "finished", message: "the response has ended" });
  control.part("ended");
});
