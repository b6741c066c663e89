// ResponseService.authorize and authorizeRead, against a real nats-server and a real Broker:
// who may do what to a rid, what an unknown rid reveals with auth off and on, capability
// principals, and `gone` for a response past RETENTION (expiry simulated by purging its
// events, and by remembering an owner for a rid that has no record).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ProtocolError, newRid, type ErrorCode, type GenerateFrame, type ResponseEvent } from "@unbroken/protocol";
import { type Broker, ends } from "@unbroken/store";
import type { NatsTools } from "@unbroken/testing";
import { pino } from "pino";
import { type BrokerKit, startBrokerKit } from "./broker-kit.js";
import type { Principal, Scope } from "../src/auth.js";
import { edgeConfigFromEnv } from "../src/config.js";
import { ResponseService } from "../src/responses.js";

const log = pino({ level: "silent" });
const limits = edgeConfigFromEnv({}).limits;

let kit: BrokerKit;
let broker: Broker;
let tools: NatsTools;

before(async () => {
  kit = await startBrokerKit("responses-auth-test");
  ({ broker, tools } = kit);
});
after(() => kit?.stop());

const service = (authOn: boolean) => new ResponseService(broker, { authOn, queueTimeoutMs: 600_000, limits }, log);
const owner = (name: string): Principal => ({ kind: "owner", owner: name });
const ALICE = owner("alice");
const BOB = owner("bob");
/** `createdAt`: the whole seconds of the response's record it was made for. */
const capability = (rid: string, scope: Scope[], createdAt: number, expiresAt = Date.now() + 60_000): Principal => ({
  kind: "capability",
  rid,
  createdAt,
  scope: new Set(scope),
  expiresAt,
  sub: "someone",
});
const secondsOf = (record: { created_at: string }) => Math.floor(Date.parse(record.created_at) / 1000);
const prompt: GenerateFrame = { type: "generate", prompt: "hello" };

/** What `p` rejects with, as a ProtocolError (it must reject). */
async function refusal(p: Promise<unknown>): Promise<ProtocolError> {
  const err = await p.then(
    (v) => assert.fail(`resolved with ${JSON.stringify(v)}`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ProtocolError, `not a ProtocolError: ${String(err)}`);
  return err;
}

async function refusedWith(p: Promise<unknown>, code: ErrorCode, what?: string): Promise<ProtocolError> {
  const err = await refusal(p);
  assert.equal(err.code, code, `${what ?? ""} ${err.message}`);
  return err;
}

const START: ResponseEvent = { kind: "start", model: "test", created_at: new Date(0).toISOString() };
const token = (text: string): ResponseEvent => ({ kind: "token", text });

/** A response of alice's that ran to its end: start, two tokens, end (seq 1..4). */
async function finished(svc: ResponseService): Promise<string> {
  const { rid } = await svc.generate(ALICE, prompt);
  const w = broker.logs.writer(rid);
  for (const e of [START, token("a"), token("b")]) await w.append(e);
  await broker.lifecycle.finish(w, ends.done("stop", { prompt_tokens: 1, completion_tokens: 2 }));
  return rid;
}

describe("authorize: owners", () => {
  test("an owner may do everything to its own rid; another owner's is forbidden", async () => {
    const svc = service(false);
    const { rid } = await svc.generate(ALICE, prompt);
    for (const action of ["read", "steer", "cancel"] as const) {
      const r = await svc.authorize(ALICE, rid, action);
      assert.equal(r.rid, rid);
      assert.equal(r.owner, "alice");
      const err = await refusedWith(svc.authorize(BOB, rid, action), "forbidden", action);
      assert.equal(err.rid, rid);
    }
  });

  test("auth off: an unknown rid is not_found", async () => {
    const rid = newRid();
    const err = await refusedWith(service(false).authorize(ALICE, rid, "read"), "not_found");
    assert.equal(err.rid, rid);
  });

  test("auth on: an unknown rid is forbidden, with the very message another owner's rid gets", async () => {
    const svc = service(true);
    const { rid } = await svc.generate(ALICE, prompt);
    const others = await refusedWith(svc.authorize(BOB, rid, "read"), "forbidden");
    const unknown = await refusedWith(svc.authorize(BOB, newRid(), "read"), "forbidden");
    assert.equal(unknown.message, others.message);
  });
});

describe("authorize: capability principals", () => {
  test("exactly its scope, on exactly its rid, whoever owns it", async () => {
    const svc = service(true);
    const { rid, record } = await svc.generate(ALICE, prompt);
    const at = secondsOf(record);
    const { rid: other } = await svc.generate(ALICE, prompt);
    const reader = capability(rid, ["read"], at);
    assert.equal((await svc.authorize(reader, rid, "read")).owner, "alice");
    const steer = await refusedWith(svc.authorize(reader, rid, "steer"), "forbidden");
    assert.match(steer.message, /does not allow steer/);
    await refusedWith(svc.authorize(reader, rid, "cancel"), "forbidden");
    const elsewhere = await refusedWith(svc.authorize(reader, other, "read"), "forbidden");
    const unknown = await refusedWith(svc.authorize(ALICE, newRid(), "read"), "forbidden");
    assert.equal(elsewhere.message, unknown.message, "another rid looks like a missing one");
    const canceller = capability(rid, ["read", "cancel"], at);
    assert.equal((await svc.authorize(canceller, rid, "cancel")).rid, rid);
  });

  test("an expired capability is unauthorized; steer and cancel through one act on its rid only", async () => {
    const svc = service(true);
    const { rid, record } = await svc.generate(ALICE, prompt);
    const at = secondsOf(record);
    await refusedWith(svc.authorize(capability(rid, ["read"], at, Date.now() - 1), rid, "read"), "unauthorized");
    await refusedWith(svc.steer(capability(rid, ["read"], at), rid, "no"), "forbidden");
    await svc.steer(capability(rid, ["steer"], at), rid, "yes");
    assert.deepEqual((await broker.records.get(rid))?.record.steers, ["yes"]);
    await refusedWith(svc.cancel(capability(rid, ["read", "steer"], at), rid), "forbidden");
    assert.equal((await broker.records.get(rid))?.record.status, "queued");
    await svc.cancel(capability(rid, ["cancel"], at), rid);
    assert.equal((await broker.records.get(rid))?.record.status, "ended");
  });

  test("a capability made for another creation of its rid opens nothing: the answer of an unknown rid", async () => {
    const svc = service(true);
    const { rid, record } = await svc.generate(ALICE, prompt);
    const at = secondsOf(record);
    for (const stale of [at - 1, at + 1, 0]) {
      for (const action of ["read", "steer", "cancel"] as const) {
        const err = await refusedWith(svc.authorize(capability(rid, [action], stale), rid, action), "forbidden", `${action}@${stale}`);
        const unknown = await refusedWith(svc.authorize(capability(rid, [action], at), newRid(), action), "forbidden");
        assert.equal(err.message, unknown.message, "nothing tells it from an unknown rid");
      }
    }
    await refusedWith(svc.cancel(capability(rid, ["cancel"], at - 1), rid), "forbidden");
    assert.equal((await broker.records.get(rid))?.record.status, "queued", "the stale token cancelled nothing");
  });
});

describe("gone: past RETENTION", () => {
  test("a rid whose record is gone but whose owner is remembered is gone for that owner (and its capabilities) only", async () => {
    const rid = newRid();
    await broker.owners.remember(rid, "alice");
    for (const authOn of [false, true]) {
      const svc = service(authOn);
      const err = await refusedWith(svc.authorize(ALICE, rid, "read"), "gone", `authOn=${authOn}`);
      assert.equal(err.rid, rid);
      await refusedWith(svc.authorize(capability(rid, ["cancel"], 0), rid, "cancel"), "gone");
      await refusedWith(svc.authorize(BOB, rid, "read"), authOn ? "forbidden" : "not_found", `bob, authOn=${authOn}`);
    }
  });

  test("authorizeRead: an ended response whose events were purged is gone; authorize alone still passes", async () => {
    const svc = service(false);
    const rid = await finished(svc);
    assert.equal((await svc.authorizeRead(ALICE, rid, 0)).status, "ended");
    await tools.purgeEvents(rid);
    await refusedWith(svc.authorizeRead(ALICE, rid, 0), "gone");
    await refusedWith(svc.authorizeRead(ALICE, rid, 4), "gone", "nothing of it is left to read");
    assert.equal((await svc.authorize(ALICE, rid, "cancel")).status, "ended");
    await refusedWith(svc.authorizeRead(BOB, rid, 0), "forbidden", "never gone for whoever could not read it");
  });

  test("authorizeRead: a log whose head expired is gone before its first stored event, readable from there", async () => {
    const svc = service(false);
    const rid = await finished(svc);
    await tools.purgeEvents(rid, 2);
    await refusedWith(svc.authorizeRead(ALICE, rid, 0), "gone");
    await refusedWith(svc.authorizeRead(ALICE, rid, 1), "gone");
    assert.equal((await svc.authorizeRead(ALICE, rid, 2)).rid, rid);
    assert.equal((await svc.authorizeRead(ALICE, rid, 4)).rid, rid, "after the end: nothing more to miss");
  });

  test("authorizeRead: a queued response has no events yet, and is not gone", async () => {
    const svc = service(false);
    const { rid } = await svc.generate(ALICE, prompt);
    assert.equal((await svc.authorizeRead(ALICE, rid, 0)).status, "queued");
    assert.equal((await svc.authorizeRead(ALICE, rid, 5)).status, "queued");
  });
});
