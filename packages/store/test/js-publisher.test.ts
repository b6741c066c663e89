import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { EVENTS_STREAM, RID_OWNERS_BUCKET, eventSubject, newRid } from "@unbroken/protocol";
import { startNatsServer, type NatsServerHandle } from "@unbroken/testing";
import { Broker, handlesOf } from "../src/broker.js";
import { JsPublisher, PublishError } from "../src/js-publisher.js";
import { kvSubject } from "../src/layout.js";
import { silentLog } from "../src/log.js";

let server: NatsServerHandle;
let broker: Broker;
let nc: NatsConnection;

before(async () => {
  server = await startNatsServer();
  broker = await Broker.connect({ url: server.url, name: "test", retentionMs: 3600_000, log: silentLog });
  nc = await connect({ servers: server.url });
});

after(async () => {
  await nc?.close();
  await broker?.close();
  await server?.stop();
});

const opts = (msgId: string, expectLastSubjectSeq: number, timeoutMs = 5_000) => ({ msgId, expectLastSubjectSeq, timeoutMs });

function rejectsWith(code: PublishError["code"], errCode?: number) {
  return (err: unknown) => {
    assert.ok(err instanceof PublishError, `expected a PublishError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (errCode !== undefined) assert.equal(err.errCode, errCode);
    return true;
  };
}

describe("JsPublisher", () => {
  test("publishes of one loop turn are all acked, in order, at consecutive stream sequences", async () => {
    const pub = new JsPublisher(nc);
    try {
      const rids = Array.from({ length: 50 }, () => newRid());
      const acks = await Promise.all(rids.map((rid, i) => pub.publish(eventSubject(rid), `{"n":${i}}`, opts(`${rid}:1`, 0))));
      assert.equal(pub.inFlight, 0);
      for (let i = 1; i < acks.length; i++) assert.equal(acks[i]!.seq, acks[i - 1]!.seq + 1);
      assert.ok(acks.every((a) => !a.duplicate));
      const stored = await handlesOf(broker).jsm.streams.getMessage(EVENTS_STREAM, { last_by_subj: eventSubject(rids[7]!) });
      assert.equal(new TextDecoder().decode(stored?.data), '{"n":7}');
    } finally {
      pub.close();
    }
  });

  test("a repeated msg id is acked as a duplicate of the stored message", async () => {
    const pub = new JsPublisher(nc);
    try {
      const rid = newRid();
      const first = await pub.publish(eventSubject(rid), "a", opts(`${rid}:1`, 0));
      const again = await pub.publish(eventSubject(rid), "a", opts(`${rid}:1`, 0));
      assert.deepEqual(again, { seq: first.seq, duplicate: true });
    } finally {
      pub.close();
    }
  });

  test("a wrong expected last subject sequence is refused with JetStream's code 10071", async () => {
    const pub = new JsPublisher(nc);
    try {
      const rid = newRid();
      await pub.publish(eventSubject(rid), "a", opts(`${rid}:1`, 0));
      await assert.rejects(pub.publish(eventSubject(rid), "b", opts(`${rid}:2`, 0)), rejectsWith("api", 10071));
    } finally {
      pub.close();
    }
  });

  test("a subject no stream listens on answers no_responders; one that never answers times out", async () => {
    const pub = new JsPublisher(nc);
    const silent = nc.subscribe("unbroken.test.silent");
    try {
      await assert.rejects(pub.publish("unbroken.test.nobody", "x", opts("m1", 0)), rejectsWith("no_responders"));
      await assert.rejects(pub.publish("unbroken.test.silent", "x", opts("m2", 0, 150)), rejectsWith("timeout"));
      assert.equal(pub.inFlight, 0);
    } finally {
      silent.unsubscribe();
      pub.close();
    }
  });

  test("a bucket's writes: a plain put, a create that expects no key, an update on the key's revision", async () => {
    const pub = new JsPublisher(nc);
    try {
      const key = newRid();
      const subject = kvSubject(RID_OWNERS_BUCKET, key);
      const put = await pub.publish(subject, "alice", { timeoutMs: 5_000 });
      assert.ok(put.seq > 0 && !put.duplicate);
      // The bucket reads what the publisher wrote, at the revision its ack named.
      const entry = await handlesOf(broker).jsm.streams.getMessage(`KV_${RID_OWNERS_BUCKET}`, { last_by_subj: subject });
      assert.equal(entry?.seq, put.seq);
      assert.equal(new TextDecoder().decode(entry?.data), "alice");
      await assert.rejects(pub.publish(subject, "bob", { expectLastSubjectSeq: 0, timeoutMs: 5_000 }), rejectsWith("api", 10071));
      const updated = await pub.publish(subject, "bob", { expectLastSubjectSeq: put.seq, timeoutMs: 5_000 });
      assert.ok(updated.seq > put.seq);
    } finally {
      pub.close();
    }
  });

  test("close rejects what waits and refuses new publishes", async () => {
    const pub = new JsPublisher(nc);
    const silent = nc.subscribe("unbroken.test.silent2");
    try {
      const waiting = pub.publish("unbroken.test.silent2", "x", opts("m3", 0));
      await new Promise((r) => setTimeout(r, 20));
      pub.close();
      await assert.rejects(waiting, rejectsWith("closed"));
      await assert.rejects(pub.publish(eventSubject(newRid()), "x", opts("m4", 0)), rejectsWith("closed"));
    } finally {
      silent.unsubscribe();
    }
  });
});
