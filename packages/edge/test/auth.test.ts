import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ProtocolError } from "@unbroken/protocol";
import { SignJWT } from "jose";
import { ANONYMOUS, authenticator } from "../src/auth.js";

const secret = "unit-secret-unit-secret-unit-secret";
const key = new TextEncoder().encode(secret);
const authenticate = authenticator({ mode: "jwt", secret }, 3_600_000);
const now = () => Math.floor(Date.now() / 1000);
const RID = "abcdefgh12345678";
/** The creation time (whole seconds) of the response a capability is made for. */
const AT = 1_700_000_000;

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
    // One exp for both sides: computed twice, a second boundary between them failed the test.
    const exp = now() + 600;
    const p = await authenticate(await sign({ sub: "ann" }, exp));
    assert.deepEqual(p, { kind: "owner", owner: "ann", expiresAt: exp * 1000 });
    const forever = await authenticate(await sign({ sub: "ann" }, null));
    assert.deepEqual(forever, { kind: "owner", owner: "ann", expiresAt: undefined }, "no exp: it never expires");
  });

  test("JWT_ISSUER and JWT_AUDIENCE: a token must carry them when set", async () => {
    const strict = authenticator({ mode: "jwt", secret, issuer: "https://app.example", audience: "unbroken" });
    const withClaims = (iss: string | undefined, aud: string | string[] | undefined) => {
      const jwt = new SignJWT({ sub: "ann" }).setProtectedHeader({ alg: "HS256" }).setIssuedAt().setExpirationTime("10m");
      if (iss !== undefined) jwt.setIssuer(iss);
      if (aud !== undefined) jwt.setAudience(aud);
      return jwt.sign(key);
    };
    assert.equal((await strict(await withClaims("https://app.example", "unbroken"))).kind, "owner");
    assert.equal((await strict(await withClaims("https://app.example", ["other", "unbroken"]))).kind, "owner");
    for (const [iss, aud] of [
      [undefined, "unbroken"],
      ["https://app.example", undefined],
      ["https://evil.example", "unbroken"],
      ["https://app.example", "other"],
    ] as const) {
      await assert.rejects(strict(await withClaims(iss, aud)), unauthorized, `iss=${iss} aud=${aud}`);
    }
    // Unset: iss and aud are not looked at.
    assert.equal((await authenticate(await withClaims("https://evil.example", "other"))).kind, "owner");
  });

  test("rid + scope make a capability: exactly those actions on exactly that rid, sub or not", async () => {
    const p = await authenticate(await sign({ rid: RID, created_at: AT, scope: "read steer", sub: "someone" }));
    assert.equal(p.kind, "capability");
    if (p.kind !== "capability") return;
    assert.equal(p.rid, RID);
    assert.equal(p.createdAt, AT);
    assert.deepEqual([...p.scope].sort(), ["read", "steer"]);
    assert.equal(p.sub, "someone");
    assert.ok(p.expiresAt > Date.now());
    const arr = await authenticate(await sign({ rid: RID, created_at: AT, scope: ["cancel"] }));
    assert.deepEqual(arr.kind === "capability" && [...arr.scope], ["cancel"]);
  });

  test("capabilities are refused without exp or created_at, past the maximum lifetime, or with a bad rid or scope", async () => {
    const at = { created_at: AT };
    const bad = [
      await sign({ rid: RID, ...at, scope: "read" }, null),
      await sign({ rid: RID, ...at, scope: "read" }, "2h"),
      await sign({ rid: RID, ...at, scope: "read" }, now() + 1800, now() - 7200), // exp − iat past the maximum
      await sign({ rid: RID, ...at, scope: "write" }),
      await sign({ rid: RID, ...at, scope: "" }),
      await sign({ rid: RID, ...at, scope: 7 }),
      await sign({ rid: "short", ...at, scope: "read" }),
      await sign({ scope: "read", ...at, sub: "ann" }),
      await sign({ rid: RID, ...at, sub: "ann" }),
      // Not bound to one creation of its rid: refused, so no token made before the binding opens a later response.
      await sign({ rid: RID, scope: "read" }),
      await sign({ rid: RID, created_at: "2026-01-01T00:00:00Z", scope: "read" }),
      await sign({ rid: RID, created_at: AT + 0.5, scope: "read" }),
      await sign({ rid: RID, created_at: -1, scope: "read" }),
    ];
    for (const [i, t] of bad.entries()) await assert.rejects(authenticate(t), unauthorized, `token ${i}`);
    const missing = await authenticate(await sign({ rid: RID, scope: "read" })).catch((e: Error) => e.message);
    assert.match(String(missing), /created_at/, "the refusal names the missing claim");
    await assert.doesNotReject(authenticate(await sign({ rid: RID, ...at, scope: "read" }, "59m")));
  });
});
