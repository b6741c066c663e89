import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { newRid, type ResponseRecord } from "@unbroken/protocol";
import { startNatsServer, type NatsServerHandle } from "@unbroken/testing";
import { Broker } from "../src/broker.js";
import { silentLog } from "../src/log.js";

let server: NatsServerHandle;
let broker: Broker;
let broker2: Broker;

before(async () => {
  server = await startNatsServer();
  broker = await Broker.connect({ url: server.url, name: "test", retentionMs: 3600_000, log: silentLog });
  broker2 = await Broker.connect({ url: server.url, name: "test2", retentionMs: 3600_000, log: silentLog });
});

after(async () => {
  await broker2?.close();
  await broker?.close();
  await server?.stop();
});

function record(rid: string, owner = "alice"): ResponseRecord {
  return {
    v: 1,
    rid,
    owner,
    status: "queued",
    created_at: new Date().toISOString(),
    request: { prompt: "hello", params: { max_tokens: 5 } },
    steers: [],
    epoch: 0,
  };
}

describe("ResponseRecords", () => {
  test("create stores the record; get returns it with its revision", async () => {
    const rid = newRid();
    const rec = record(rid);
    const rev = await broker.records.create(rec);
    assert.equal(typeof rev, "number");
    assert.ok((rev as number) > 0);
    const got = await broker2.records.get(rid);
    assert.deepEqual(got, { record: rec, revision: rev });
  });

  test("get of an unknown rid is null", async () => {
    assert.equal(await broker.records.get(newRid()), null);
  });

  test("a record no reader can parse: get says null, read says unreadable (a worker then ends it rather than drop it)", async () => {
    const rid = newRid();
    const bad = { ...record(rid), request: { prompt: "hello", params: { stop: [""] } } };
    assert.ok(await broker.records.create(bad));
    assert.equal(await broker.records.get(rid), null);
    assert.equal(await broker.records.read(rid), "unreadable");
    assert.equal(await broker.records.read(newRid()), null);
    const good = record(newRid());
    await broker.records.create(good);
    assert.deepEqual((await broker.records.read(good.rid)) as object, {
      record: good,
      revision: (await broker.records.get(good.rid))?.revision,
    });
  });

  test("create returns null for an existing rid, and the first record wins", async () => {
    const rid = newRid();
    assert.notEqual(await broker.records.create(record(rid, "alice")), null);
    assert.equal(await broker2.records.create(record(rid, "mallory")), null);
    assert.equal(await broker.records.create(record(rid, "alice")), null);
    assert.equal((await broker.records.get(rid))?.record.owner, "alice");
  });

  test("concurrent creates of one rid: exactly one succeeds", async () => {
    const rid = newRid();
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? broker : broker2).records.create(record(rid, `owner${i}`))),
    );
    const winners = results.map((r, i) => (r === null ? -1 : i)).filter((i) => i >= 0);
    assert.equal(winners.length, 1, JSON.stringify(results));
    assert.equal((await broker.records.get(rid))?.record.owner, `owner${winners[0]}`);
  });

  test("mutate applies the change and bumps the revision", async () => {
    const rid = newRid();
    const rev = (await broker.records.create(record(rid))) as number;
    const res = await broker.records.mutate(rid, (r) => ({ ...r, status: "running", worker: "w1", epoch: r.epoch + 1 }));
    assert.ok(res);
    assert.ok(res.revision > rev);
    assert.equal(res.record.status, "running");
    const got = await broker.records.get(rid);
    assert.deepEqual(got, res);
  });

  test("mutate returning null leaves the record as it is", async () => {
    const rid = newRid();
    const rev = (await broker.records.create(record(rid))) as number;
    const res = await broker.records.mutate(rid, () => null);
    assert.equal(res?.revision, rev);
    assert.equal((await broker.records.get(rid))?.revision, rev);
  });

  test("mutate of an unknown rid is null and creates nothing", async () => {
    const rid = newRid();
    let called = false;
    assert.equal(
      await broker.records.mutate(rid, (r) => {
        called = true;
        return r;
      }),
      null,
    );
    assert.equal(called, false);
    assert.equal(await broker.records.get(rid), null);
  });

  test("mutate is compare-and-set: 20 concurrent steers all land", async () => {
    const rid = newRid();
    await broker.records.create(record(rid));
    const texts = Array.from({ length: 20 }, (_, i) => `steer-${i}`);
    const results = await Promise.all(
      texts.map((t, i) => (i % 2 ? broker : broker2).records.mutate(rid, (r) => ({ ...r, steers: [...r.steers, t] }))),
    );
    for (const r of results) assert.ok(r, "every mutate returns the record");
    const final = await broker.records.get(rid);
    assert.ok(final);
    assert.equal(final.record.steers.length, 20, JSON.stringify(final.record.steers));
    assert.deepEqual([...final.record.steers].sort(), [...texts].sort());
    // Each mutate saw its own steer land on top of the others that came before it.
    const lengths = results.map((r) => r?.record.steers.length).sort((a, b) => (a as number) - (b as number));
    assert.deepEqual(
      lengths,
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
  });

  test("a CAS race between a queued-cancel and a worker taking the response has one winner", async () => {
    const rid = newRid();
    await broker.records.create(record(rid));
    let cancelWon = false;
    let takeWon = false;
    await Promise.all([
      broker.records.mutate(rid, (r) => {
        cancelWon = r.status === "queued";
        return r.status === "queued" ? { ...r, status: "ended", reason: "cancelled" } : null;
      }),
      broker2.records.mutate(rid, (r) => {
        takeWon = r.status === "queued";
        return r.status === "queued" ? { ...r, status: "running", worker: "w", epoch: r.epoch + 1 } : null;
      }),
    ]);
    const final = (await broker.records.get(rid))?.record;
    assert.ok(final);
    // The last call of each change function tells what it saw last; exactly one saw "queued" last.
    assert.equal(Number(cancelWon) + Number(takeWon), 1);
    assert.equal(final.status, cancelWon ? "ended" : "running");
  });
});
