import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { SignJWT } from "jose";
import { UnbrokenClient, type EventFrame } from "@unbroken/client";
import { freePort, HAPROXY_INSTALL_HINT, findHaproxy, startHaproxy, type HaproxyHandle } from "@unbroken/testing";
import { WebSocket } from "ws";
import { RawClient, range, seqs, textOf, tokenCount } from "../helpers/raw-client.js";
import { Topology, eventually, replay } from "../helpers/topology.js";
import { eachWithin, within } from "../helpers/within.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const HAPROXY_CFG = path.join(root, "deploy/haproxy.cfg");
// As in docker-compose.yml, the edges authenticate their clients, with a secret of the test's own.
const JWT_SECRET = randomBytes(32).toString("base64url");
const token = (sub: string): Promise<string> =>
  new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(sub).setExpirationTime("1h").sign(new TextEncoder().encode(JWT_SECRET));

/** `docker compose` (the CLI plugin) or the standalone `docker-compose`, whichever runs. */
function composeCommand(): string[] | undefined {
  for (const cmd of [["docker", "compose"], ["docker-compose"]]) {
    const r = spawnSync(cmd[0]!, [...cmd.slice(1), "version"], { encoding: "utf8" });
    if (r.status === 0) return cmd;
  }
  return undefined;
}

describe("deployment files", () => {
  it("docker-compose.yml passes `docker compose config`", () => {
    const cmd = composeCommand();
    // `npm test` installs Debian's docker-compose when it runs as root (scripts/setup.mjs).
    assert.ok(cmd, "neither `docker compose` nor `docker-compose` runs: install one (Debian/Ubuntu: apt-get install docker-compose)");
    const config = (env: NodeJS.ProcessEnv) =>
      spawnSync(cmd[0]!, [...cmd.slice(1), "-f", path.join(root, "docker-compose.yml"), "config", "-q"], {
        cwd: root,
        env,
        encoding: "utf8",
      });
    const bare = { ...process.env };
    delete bare.JWT_SECRET;
    const r = config({ ...bare, JWT_SECRET });
    assert.equal(r.status, 0, `${cmd.join(" ")} config -q failed:\n${r.stderr}${r.stdout}`);
    // The edges' secret comes from the environment: there is no default to forget to change.
    const unset = config(bare);
    assert.notEqual(unset.status, 0, "docker-compose.yml has a JWT_SECRET without the environment");
    assert.match(unset.stderr, /set JWT_SECRET/);
    // The shape docs/deploy.md ("Docker compose") promises, in the file itself.
    const text = readFileSync(path.join(root, "docker-compose.yml"), "utf8");
    for (const service of ["nats-1", "nats-2", "nats-3", "edge-1", "edge-2", "worker-1", "worker-2", "lb"]) {
      assert.match(text, new RegExp(`^  ${service}:`, "m"), `service ${service}`);
    }
    assert.match(text, /REPLICAS: "3"/);
    assert.match(text, /AUTH: jwt/);
    assert.match(text, /haproxy\.cfg/);
  });

  it("deploy/haproxy.cfg passes `haproxy -c`", () => {
    const bin = findHaproxy();
    assert.ok(bin, `haproxy not found: ${HAPROXY_INSTALL_HINT}`);
    const env = { ...process.env, LB_BIND: "127.0.0.1:1", EDGE1_ADDR: "127.0.0.1:2", EDGE2_ADDR: "127.0.0.1:3" };
    const r = spawnSync(bin, ["-c", "-f", HAPROXY_CFG], { env, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr + r.stdout);
  });

  it("deploy/haproxy.cfg logs each request's method and path, never its query (a demo link's ?token=)", async () => {
    // Any HTTP server that answers /readyz will do as both edges: the log is HAProxy's.
    const edge = createServer((_req, res) => res.end("ok"));
    await new Promise<void>((resolve) => edge.listen(0, "127.0.0.1", resolve));
    const edgeAddr = `127.0.0.1:${(edge.address() as AddressInfo).port}`;
    const lbPort = await freePort();
    const lb = await startHaproxy({
      config: HAPROXY_CFG,
      env: { LB_BIND: `127.0.0.1:${lbPort}`, EDGE1_ADDR: edgeAddr, EDGE2_ADDR: edgeAddr },
      port: lbPort,
    });
    try {
      const secret = "eyJhbGciOiJIUzI1NiJ9.secret-marker.sig";
      await eventually(async () => {
        const res = await fetch(`http://127.0.0.1:${lbPort}/chat/page?token=${secret}&x=1`);
        assert.equal(res.status, 200, "the edges are up behind it");
        await res.text();
      }, 30_000);
      await eventually(async () => assert.match(lb.output(), /"GET \/chat\/page HTTP\/1\.1"/), 10_000);
      assert.ok(!lb.output().includes("secret-marker"), `the token was logged:\n${lb.output()}`);
      assert.doesNotMatch(lb.output(), /token=/);
    } finally {
      await lb.stop();
      edge.close();
    }
  });
});

// docker-compose.yml's topology with local processes: a 3-node JetStream cluster (REPLICAS=3),
// two workers, two edges, and HAProxy running deploy/haproxy.cfg itself in front of the edges.
describe("the compose topology, as local processes behind HAProxy", () => {
  let top: Topology;
  let lb: HaproxyHandle;
  let lbPort: number;
  const url = (p = "/v1/ws"): string => `ws://127.0.0.1:${lbPort}${p}`;

  before(async () => {
    top = await Topology.start({
      natsNodes: 3,
      edges: 2,
      workers: 2,
      balancer: false,
      edgeEnv: { AUTH: "jwt", JWT_SECRET },
      workerEnv: { SCRIPTED_TPS: "30" },
    });
    lbPort = await freePort();
    const env = {
      LB_BIND: `127.0.0.1:${lbPort}`,
      EDGE1_ADDR: `127.0.0.1:${top.edges[0]!.handle.port}`,
      EDGE2_ADDR: `127.0.0.1:${top.edges[1]!.handle.port}`,
    };
    lb = await startHaproxy({ config: HAPROXY_CFG, env, port: lbPort });
  });
  after(async () => {
    await lb?.stop();
    await top?.stop();
  });

  it("spreads sockets over both edges and streams every answer whole", async () => {
    const clients = await Promise.all(Array.from({ length: 6 }, async (_, i) => RawClient.connect(url(), await token(`user-${i}`))));
    const rids = await Promise.all(
      clients.map(async (c, i) => {
        const reply = await c.request({ type: "generate", prompt: `through haproxy ${i}`, params: { max_tokens: 30 } }, 60_000);
        assert.equal(reply.type, "accepted", JSON.stringify(reply));
        return reply.rid as string;
      }),
    );
    for (const [i, c] of clients.entries()) {
      const events = await c.untilEnd(rids[i]!, 60_000);
      assert.deepEqual(seqs(events), range(1, events.length));
      assert.equal(tokenCount(events), 30);
      c.close();
    }
    const queuedOn = top.edges.map(
      (e) => rids.filter((rid) => e.handle.lines.some((l) => l.includes(rid) && l.includes("response queued"))).length,
    );
    assert.ok(
      queuedOn.every((n) => n > 0),
      `both edges took sockets: ${queuedOn}`,
    );
  });

  it("streams Server-Sent Events through it unbuffered", async () => {
    const http = `http://127.0.0.1:${lbPort}`;
    const authorization = `Bearer ${await token("sse-user")}`;
    const res = await fetch(`${http}/v1/generate`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization },
      body: JSON.stringify({ prompt: "sse through haproxy", params: { max_tokens: 90 } }),
    });
    assert.equal(res.status, 202);
    const { rid } = (await res.json()) as { rid: string };
    const events = await fetch(`${http}/v1/responses/${rid}/events`, { headers: { authorization } });
    assert.equal(events.status, 200);
    assert.match(events.headers.get("content-type") ?? "", /text\/event-stream/);
    const reader = events.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    // Three seconds of tokens: a buffering proxy would hold them until the end.
    assert.match(first, /^id: 1$/m);
    assert.doesNotMatch(first, /"kind":"end"/);
    const rest = (async () => {
      let text = "";
      for (let r = await reader.read(); !r.done; r = await reader.read()) text += new TextDecoder().decode(r.value);
      return text;
    })();
    const all = first + (await within(rest, "the SSE stream's end through HAProxy", 60_000));
    assert.match(all, /"kind":"end"/);
  });

  it("moves a client to the other edge when its edge is killed; it resumes exactly, and the edge rejoins", async () => {
    const owner = await token("failover-user");
    const client = new UnbrokenClient({ url: url(), token: owner, WebSocket, reconnect: { minDelayMs: 50, maxDelayMs: 500 } });
    try {
      const answer = client.generate({ prompt: "write 150 words through a dying edge", params: { max_tokens: 150 } });
      const got: EventFrame[] = [];
      let killed: Promise<void> | undefined;
      const each = (ev: EventFrame): void => {
        got.push(ev);
        if (ev.seq === 20) {
          const rid = answer.rid;
          const index = top.edges.findIndex((e) => e.handle.lines.some((l) => l.includes(rid) && l.includes("response queued")));
          assert.ok(index >= 0, "an edge took the generate");
          killed = (async () => {
            await top.edges[index]!.handle.kill();
            await eventually(async () => assert.match(lb.output(), new RegExp(`edges/edge${index + 1} is DOWN`)), 30_000);
            await top.restart(top.edges[index]!, "listening");
            await eventually(async () => assert.match(lb.output(), new RegExp(`edges/edge${index + 1} is UP`)), 30_000);
          })();
        }
      };
      await eachWithin(answer, (ev) => each(ev as EventFrame), "the answer's end across the killed edge", 120_000);
      await killed;
      const reference = await replay(url(), answer.rid, 60_000, owner);
      assert.deepEqual(seqs(got), range(1, reference.length));
      assert.equal(textOf(got), textOf(reference));
      const end = got.at(-1)!.event;
      assert.equal(end.kind === "end" && end.reason, "length");
    } finally {
      await client.close();
    }
  });
});
