// ResponseService driven directly, against a real nats-server and a real Broker: generate
// (idempotent per owner, enqueued for the workers), the limits it enforces, cancel and steer
// of a response nobody runs yet, and `unavailable` without the broker. No worker runs, so
// every response stays queued for as long as a test needs it; authorization is in
// responses-auth.test.ts.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ProtocolError, newRid, type ErrorCode, type GenerateFrame, type ResponseRecord, type WorkRequest } from "@unbroken/protocol";
import { Broker, silentLog } from "@unbroken/store";
import { startNatsServer, type NatsServerHandle } from "@unbroken/testing";
import { pino } from "pino";
import { type BrokerKit, startBrokerKit } from "./broker-kit.js";
import type { Principal } from "../src/auth.js";
import { edgeConfigFromEnv, type EdgeLimits } from "../src/config.js";
import { ResponseService, type ResponseServiceOptions } from "../src/responses.js";

const log = pino({ level: "silent" });
const defaults = edgeConfigFromEnv({}).limits;

let kit: BrokerKit;
let nats: NatsServerHandle;
let broker: Broker;

before(async () => {
  kit = await startBrokerKit("responses-test");
  ({ nats, broker } = kit);
});
after(() => kit?.stop());

function service(
  opts: Partial<Omit<ResponseServiceOptions, "limits">> & { limits?: Partial<EdgeLimits> } = {},
  on = broker,
): ResponseService {
  return new ResponseService(on, { authOn: false, queueTimeoutMs: 600_000, ...opts, limits: { ...defaults, ...opts.limits } }, log);
}

const owner = (name: string): Principal => ({ kind: "owner", owner: name });
const ALICE = owner("alice");
const prompt = (f: Partial<GenerateFrame> = {}): GenerateFrame => ({ type: "generate", prompt: "hello", ...f });

/** An assert.rejects matcher: a ProtocolError with `code` (and a message matching `message`). */
function protocolError(code: ErrorCode, message?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof ProtocolError, `not a ProtocolError: ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  };
}

async function stored(rid: string): Promise<ResponseRecord> {
  const s = await broker.records.get(rid);
  assert.ok(s, `no record for ${rid}`);
  return s.record;
}

/**
 * Every request waiting in the work queue, pulled as a worker would (and acked, so the next
 * test starts from an empty queue). One pull: all of them are there already, so it ends at
 * its expiry with everything the queue holds (well under its 1000).
 */
async function pullQueue(): Promise<WorkRequest[]> {
  const queue = await broker.workQueue(5_000);
  const got: WorkRequest[] = [];
  await queue.pull(1000, 1_000, (d) => {
    got.push(d.request);
    d.ack();
  });
  return got;
}

describe("generate", () => {
  test("creates a queued record of the owner and enqueues a request carrying it", async () => {
    await pullQueue();
    const svc = service();
    const { rid, existing, record } = await svc.generate(ALICE, prompt({ params: { seed: 7 } }));
    assert.equal(existing, false);
    const r = await stored(rid);
    assert.deepEqual(r, record);
    assert.equal(r.status, "queued");
    assert.equal(r.owner, "alice");
    assert.deepEqual(r.request, { prompt: "hello", params: { seed: 7 } });
    assert.deepEqual(r.steers, []);
    assert.equal(svc.generations.count("o:alice"), 1);

    const requests = await pullQueue();
    assert.deepEqual(
      requests.map((w) => w.rid),
      [rid],
    );
    assert.deepEqual(requests[0]?.record, r);
    assert.equal(requests[0]?.revision, (await broker.records.get(rid))?.revision);
  });

  test("a request whose record would not read back is refused, naming the field, and nothing is stored or queued", async () => {
    await pullQueue();
    const svc = service();
    const rid = newRid();
    // Past every front door's schema (as a bug there would let it through): the store's own check refuses it.
    const unreadable = prompt({ rid, params: { stop: [""] } as GenerateFrame["params"] });
    await assert.rejects(svc.generate(ALICE, unreadable), protocolError("bad_request", /^params\.stop\.0: /));
    assert.equal(await broker.records.read(rid), null, "no record");
    assert.deepEqual(await pullQueue(), [], "no request");
    assert.equal(svc.generations.count("o:alice"), 0, "no slot kept");
  });

  test("the same owner generating the same rid again gets it back (existing) and starts nothing", async () => {
    await pullQueue();
    const svc = service();
    const rid = newRid();
    const first = await svc.generate(ALICE, prompt({ rid }));
    const revision = (await broker.records.get(rid))?.revision;
    const again = await svc.generate(ALICE, prompt({ rid, prompt: "something else" }));
    assert.equal(first.existing, false);
    assert.equal(again.existing, true);
    assert.equal(again.rid, rid);
    assert.deepEqual(again.record, first.record, "the first request stands");
    assert.equal((await broker.records.get(rid))?.revision, revision, "the record is untouched");
    assert.equal(svc.generations.count("o:alice"), 1, "one generation, counted once");
    assert.deepEqual(
      (await pullQueue()).map((w) => w.rid),
      [rid],
      "one request in the queue",
    );
  });

  test("another owner generating a taken rid is forbidden and changes nothing", async () => {
    const svc = service();
    const { rid } = await svc.generate(ALICE, prompt());
    const revision = (await broker.records.get(rid))?.revision;
    await assert.rejects(svc.generate(owner("bob"), prompt({ rid })), protocolError("forbidden", /taken/));
    assert.equal((await broker.records.get(rid))?.revision, revision);
    assert.equal(svc.generations.count("o:bob"), 0, "the refused generate holds no slot");
  });

  test("a capability principal cannot generate", async () => {
    const cap: Principal = {
      kind: "capability",
      rid: newRid(),
      createdAt: 0,
      scope: new Set(["read", "steer", "cancel"]),
      expiresAt: Date.now() + 60_000,
      sub: "x",
    };
    await assert.rejects(service().generate(cap, prompt()), protocolError("forbidden"));
  });

  test("MAX_GENERATIONS_PER_OWNER: the owner's next generation is rate_limited; re-sent ones and other owners pass", async () => {
    const svc = service({ limits: { generationsPerOwner: 2 } });
    const rid = newRid();
    await svc.generate(ALICE, prompt({ rid }));
    await svc.generate(ALICE, prompt());
    const refused = newRid();
    await assert.rejects(svc.generate(ALICE, prompt({ rid: refused })), protocolError("rate_limited", /MAX_GENERATIONS_PER_OWNER/));
    assert.equal(await broker.records.get(refused), null, "nothing was created");
    assert.equal((await svc.generate(ALICE, prompt({ rid }))).existing, true, "the same rid again starts nothing, so it passes");
    // One this edge never counted (started through another edge) passes too: the store says whose it is.
    const elsewhere = newRid();
    await service().generate(ALICE, prompt({ rid: elsewhere }));
    assert.equal((await svc.generate(ALICE, prompt({ rid: elsewhere }))).existing, true);
    assert.equal((await svc.generate(owner("bob"), prompt())).existing, false, "bob has slots of his own");
  });

  test("MAX_GENERATIONS_PER_SOCKET: counted per session; another session of the owner has its own", async () => {
    const svc = service({ limits: { generationsPerSocket: 1 } });
    await svc.generate(ALICE, prompt(), { session: "s1" });
    await assert.rejects(svc.generate(ALICE, prompt(), { session: "s1" }), protocolError("rate_limited", /MAX_GENERATIONS_PER_SOCKET/));
    await svc.generate(ALICE, prompt(), { session: "s2" });
    assert.equal(svc.generations.count("o:alice"), 2);
  });

  test("a prompt past MAX_PROMPT_BYTES is too_large and creates nothing", async () => {
    const rid = newRid();
    await assert.rejects(
      service({ limits: { maxPromptBytes: 4 } }).generate(ALICE, prompt({ rid, prompt: "12345" })),
      protocolError("too_large"),
    );
    assert.equal(await broker.records.get(rid), null);
  });
});

describe("cancel and steer of a queued response", () => {
  test("cancel writes the lone `end` (cancelled) and marks the record ended; a second cancel is a no-op", async () => {
    const svc = service({ controlTimeoutMs: 500 });
    const { rid } = await svc.generate(ALICE, prompt());
    await svc.cancel(ALICE, rid);
    const log1 = await broker.logs.readAll(rid);
    assert.deepEqual(
      log1.map((e) => [e.seq, e.frame.event]),
      [[1, { kind: "end", reason: "cancelled", usage: { prompt_tokens: 0, completion_tokens: 0 } }]],
    );
    const r = await stored(rid);
    assert.equal(r.status, "ended");
    assert.equal(r.reason, "cancelled");
    await svc.cancel(ALICE, rid);
    assert.equal((await broker.logs.readAll(rid)).length, 1, "still one end");
  });

  test("another owner's cancel is forbidden and ends nothing", async () => {
    const svc = service();
    const { rid } = await svc.generate(ALICE, prompt());
    await assert.rejects(svc.cancel(owner("bob"), rid), protocolError("forbidden"));
    assert.equal((await stored(rid)).status, "queued");
    assert.deepEqual(await broker.logs.readAll(rid), []);
  });

  test("steer appends to the record's steers, in order", async () => {
    const svc = service();
    const { rid } = await svc.generate(ALICE, prompt());
    await svc.steer(ALICE, rid, "be brief");
    await svc.steer(ALICE, rid, "in French");
    assert.deepEqual((await stored(rid)).steers, ["be brief", "in French"]);
    await assert.rejects(svc.steer(owner("bob"), rid, "no"), protocolError("forbidden"));
    assert.deepEqual((await stored(rid)).steers, ["be brief", "in French"]);
  });

  test("steer of an ended response is `finished`", async () => {
    const svc = service();
    const { rid } = await svc.generate(ALICE, prompt());
    await svc.cancel(ALICE, rid);
    await assert.rejects(svc.steer(ALICE, rid, "too late"), protocolError("finished"));
    assert.deepEqual((await stored(rid)).steers, []);
  });

  test("steers past STEER_BURST within STEER_RATE are rate_limited, per response", async () => {
    // One steer per 1000 s: the bucket does not refill while the test runs.
    const svc = service({ limits: { steerRate: 0.001, steerBurst: 2 } });
    const { rid } = await svc.generate(ALICE, prompt());
    await svc.steer(ALICE, rid, "one");
    await svc.steer(ALICE, rid, "two");
    await assert.rejects(svc.steer(ALICE, rid, "three"), protocolError("rate_limited", /STEER_RATE/));
    assert.deepEqual((await stored(rid)).steers, ["one", "two"]);
    const other = await svc.generate(ALICE, prompt());
    await svc.steer(ALICE, other.rid, "one");
    assert.deepEqual((await stored(other.rid)).steers, ["one"], "another response has a bucket of its own");
  });
});

describe("a running response: cancel and steer go to its worker", () => {
  test("the worker answering on the control subject settles them; nothing is written by the edge", async (t) => {
    const svc = service();
    const { rid } = await svc.generate(ALICE, prompt());
    await broker.records.mutate(rid, (r) => ({ ...r, status: "running", epoch: 1, worker: "w-test" }));
    const calls: unknown[] = [];
    const listener = broker.control.listen(rid, (call) => {
      calls.push(call.request);
      call.respond({ ok: true });
    });
    t.after(() => listener.close());
    await svc.steer(ALICE, rid, "be brief");
    await svc.cancel(ALICE, rid);
    assert.deepEqual(calls, [{ op: "steer", text: "be brief" }, { op: "cancel" }]);
    assert.deepEqual(await broker.logs.readAll(rid), [], "the worker writes the end, not the edge");
    assert.deepEqual((await stored(rid)).steers, [], "a running response's steers are the worker's");
  });

  test("a worker answering `finished` to a steer is `finished`", async (t) => {
    const svc = service();
    const { rid } = await svc.generate(ALICE, prompt());
    await broker.records.mutate(rid, (r) => ({ ...r, status: "running", epoch: 1 }));
    const listener = broker.control.listen(rid, (call) => call.respond({ ok: false, code: "finished", message: "done" }));
    t.after(() => listener.close());
    await assert.rejects(svc.steer(ALICE, rid, "late"), protocolError("finished"));
  });
});

describe("without the broker", () => {
  test("a closed broker: generate, authorize, cancel and steer are `unavailable`", async () => {
    const closed = await Broker.connect({ url: nats.url, name: "responses-test-closed", retentionMs: 3_600_000, log: silentLog });
    const svc = service({}, closed);
    const { rid } = await svc.generate(ALICE, prompt());
    await closed.close();
    assert.equal(closed.connected, false);
    const unavailable = protocolError("unavailable");
    await assert.rejects(svc.generate(ALICE, prompt()), unavailable);
    await assert.rejects(svc.authorize(ALICE, rid, "read"), unavailable);
    await assert.rejects(svc.authorizeRead(ALICE, rid, 0), unavailable);
    await assert.rejects(svc.cancel(ALICE, rid), unavailable);
    await assert.rejects(svc.steer(ALICE, rid, "x"), unavailable);
    assert.equal((await stored(rid)).status, "queued", "nothing was done to the response");
  });

  test("a disconnected broker: refused at once as `unavailable`, not held until NATS is back", async () => {
    const own = await startNatsServer();
    let b: Broker | undefined;
    try {
      b = await Broker.connect({ url: own.url, name: "responses-test-disconnect", retentionMs: 3_600_000, log: silentLog });
      const connected = b;
      const svc = service({}, connected);
      const { rid } = await svc.generate(ALICE, prompt());
      await own.kill();
      await until(() => !connected.connected, "the broker noticing the disconnect");
      // Refused by the service itself, before any NATS call: answered while still
      // disconnected (a call that went out waits for its timeout, past the reconnect below).
      const refused = newRid();
      const asked = [svc.generate(ALICE, prompt({ rid: refused })), svc.authorize(ALICE, rid, "read"), svc.steer(ALICE, rid, "x")];
      let answered = 0;
      for (const p of asked) {
        p.then(
          () => answered++,
          () => answered++,
        );
      }
      await new Promise((r) => setImmediate(r));
      assert.equal(answered, 3, "all three answered while disconnected");
      for (const p of asked) await assert.rejects(p, protocolError("unavailable"));
      await own.restart();
      await until(() => connected.connected, "the broker reconnecting");
      assert.equal(await connected.records.get(refused), null, "the refused generate created nothing");
      assert.deepEqual((await svc.authorize(ALICE, rid, "read")).steers, [], "served again, and the steer was not recorded");
    } finally {
      await b?.close();
      await own.stop();
    }
  });
});

async function until(cond: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
