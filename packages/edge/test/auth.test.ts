import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ProtocolError } from "@unbroken/protocol";
import { SignJWT } from "jose";
import { ANONYMOUS, authenticator } from "../src/auth.js";

const secret = "unit-secret";
const key = new TextEncoder().encode(secret);
const authenticate = authenticator({ mode: "jwt", secret }, 3_600_000);
const now = () => Math.floor(Date.now() / 1000);
const RID = "abcdefgh12345678";

function sign(claims: Record<string, unknown>, exp: number | string | null = "10m", iat?: number): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuedAt(iat);
  if (exp !== null) jwt.setExpirationTime(exp);
  return jwt.sign(key);
}
const unauthorized = (e: unknown) => e instanceof ProtocolError && e.code === "unauthorized";

describe("authenticator", () => {
  test("auth off: every token acts as the one anonymous owner", async () => {
    assert.deepEqual(await authenticator({ mode: "none" })(undefined), { kind: "owner", owner: ANONYMOUS });
  });

  test("a token with sub and neither rid nor scope is an owner token", async () => {
    assert.deepEqual(await authenticate(await sign({ sub: "ann" })), { kind: "owner", owner: "ann" });
  });

  test("rid + scope make a capability: exactly those actions on exactly that rid, sub or not", async () => {
    const p = await authenticate(await sign({ rid: RID, scope: "read steer", sub: "someone" }));
    assert.equal(p.kind, "capability");
    if (p.kind !== "capability") return;
    assert.equal(p.rid, RID);
    assert.deepEqual([...p.scope].sort(), ["read", "steer"]);
    assert.equal(p.sub, "someone");
    assert.ok(p.expiresAt > Date.now());
    const arr = await authenticate(await sign({ rid: RID, scope: ["cancel"] }));
    assert.deepEqual(arr.kind === "capability" && [...arr.scope], ["cancel"]);
  });

  test("capabilities are refused without exp, past the maximum lifetime, or with a bad rid or scope", async () => {
    const bad = [
      await sign({ rid: RID, scope: "read" }, null),
      await sign({ rid: RID, scope: "read" }, "2h"),
      await sign({ rid: RID, scope: "read" }, now() + 1800, now() - 7200), // exp − iat past the maximum
      await sign({ rid: RID, scope: "write" }),
      await sign({ rid: RID, scope: "" }),
      await sign({ rid: RID, scope: 7 }),
      await sign({ rid: "short", scope: "read" }),
      await sign({ scope: "read", sub: "ann" }),
      await sign({ rid: RID, sub: "ann" }),
    ];
    for (const [i, t] of bad.entries()) await assert.rejects(authenticate(t), unauthorized, `token ${i}`);
    await assert.doesNotReject(authenticate(await sign({ rid: RID, scope: "read" }, "59m")));
  });
});
