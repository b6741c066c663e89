import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { test } from "node:test";
import { edgeConfigFromEnv } from "../src/config.js";
import { OriginPolicy, allowedOriginsSchema, isLoopbackHost, normalizeOrigin } from "../src/origin.js";

const request = (headers: Record<string, string>): IncomingMessage => ({ headers }) as unknown as IncomingMessage;
const none = allowedOriginsSchema.parse(undefined);

test("normalizeOrigin: browsers' serialization; anything with a path, query or credentials is none", () => {
  assert.equal(normalizeOrigin("HTTP://Example.COM:80"), "http://example.com");
  assert.equal(normalizeOrigin("https://example.com:443/"), "https://example.com");
  assert.equal(normalizeOrigin("https://example.com:8443"), "https://example.com:8443");
  assert.equal(normalizeOrigin("http://[::1]:8787"), "http://[::1]:8787");
  assert.equal(normalizeOrigin("chrome-extension://abcdef"), "chrome-extension://abcdef");
  for (const bad of ["null", "", "example.com", "http://example.com/app", "http://a@example.com", "http://example.com?x=1"])
    assert.equal(normalizeOrigin(bad), undefined, bad);
});

test("ALLOWED_ORIGINS: a list of origins, or *; a typo fails at start naming the entry", () => {
  assert.deepEqual(none, { any: false, list: new Set() });
  assert.deepEqual(allowedOriginsSchema.parse("https://app.example.com, http://localhost:3000/"), {
    any: false,
    list: new Set(["https://app.example.com", "http://localhost:3000"]),
  });
  assert.deepEqual(allowedOriginsSchema.parse("*"), { any: true });
  assert.throws(
    () => edgeConfigFromEnv({ ALLOWED_ORIGINS: "https://ok.example, app.example.com/x" }),
    /ALLOWED_ORIGINS: "app\.example\.com\/x" is not an origin/,
  );
});

test("isLoopbackHost: 127/8, ::1 in any spelling, localhost; nothing else", () => {
  for (const h of [
    "127.0.0.1",
    "127.1.2.3",
    "::1",
    "[::1]",
    "0:0:0:0:0:0:0:1",
    "::ffff:127.0.0.1",
    "localhost",
    "LOCALHOST",
    "app.localhost",
  ])
    assert.ok(isLoopbackHost(h), h);
  for (const h of ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "::ffff:10.0.0.1", "example.com", "localhost.example.com", "128.0.0.1"])
    assert.ok(!isLoopbackHost(h), h);
});

test("the edge's own origin and origin-less clients pass; a foreign origin is refused without CORS", () => {
  const policy = new OriginPolicy(none, false);
  assert.deepEqual(policy.check(request({ host: "edge.example:8787" })), { allowed: true, cors: undefined });
  const own = { origin: "http://edge.example:8787", host: "edge.example:8787" };
  assert.deepEqual(policy.check(request(own)), { allowed: true, cors: undefined });
  // Behind a proxy that terminates TLS: the page is https, the Host header is passed through.
  assert.deepEqual(policy.check(request({ origin: "https://chat.example", host: "chat.example" })), { allowed: true, cors: undefined });
  assert.deepEqual(policy.check(request({ origin: "https://chat.example", host: "chat.example:443" })), { allowed: true, cors: undefined });
  for (const origin of ["http://evil.example", "http://edge.example:9999", "null", "file://", "ftp://edge.example:8787"])
    assert.deepEqual(policy.check(request({ origin, host: "edge.example:8787" })), { allowed: false, origin }, origin);
  assert.deepEqual(policy.check(request({ origin: "http://edge.example:8787" })), { allowed: false, origin: "http://edge.example:8787" });
});

test("ALLOWED_ORIGINS admits the listed origins (with CORS), or any with *", () => {
  const listed = new OriginPolicy(allowedOriginsSchema.parse("https://app.example"), false);
  assert.deepEqual(listed.check(request({ origin: "https://app.example", host: "edge:8787" })), {
    allowed: true,
    cors: "https://app.example",
  });
  assert.equal(listed.check(request({ origin: "https://other.example", host: "edge:8787" })).allowed, false);
  const any = new OriginPolicy(allowedOriginsSchema.parse("*"), false);
  assert.deepEqual(any.check(request({ origin: "null", host: "edge:8787" })), { allowed: true, cors: "null" });
});

test("an anonymous edge on loopback takes only loopback names as its own origin (DNS rebinding)", () => {
  const policy = new OriginPolicy(none, true);
  assert.equal(policy.check(request({ origin: "http://127.0.0.1:8787", host: "127.0.0.1:8787" })).allowed, true);
  assert.equal(policy.check(request({ origin: "http://localhost:8787", host: "localhost:8787" })).allowed, true);
  assert.equal(policy.check(request({ origin: "http://[::1]:8787", host: "[::1]:8787" })).allowed, true);
  // A page at evil.example:8787 whose name now resolves to 127.0.0.1: same Host, but not loopback.
  assert.equal(policy.check(request({ origin: "http://evil.example:8787", host: "evil.example:8787" })).allowed, false);
  const listed = new OriginPolicy(allowedOriginsSchema.parse("http://dev.example:8787"), true);
  assert.equal(listed.check(request({ origin: "http://dev.example:8787", host: "dev.example:8787" })).allowed, true);
});

test("AUTH=none off loopback refuses to start, saying why and how, unless ALLOW_ANONYMOUS=true", () => {
  for (const HOST of ["0.0.0.0", "::", "192.168.1.20", "edge.internal"]) {
    assert.throws(
      () => edgeConfigFromEnv({ HOST }),
      /AUTH: AUTH=none on a HOST that is not loopback.*AUTH=jwt with JWT_SECRET.*ALLOW_ANONYMOUS=true/,
      HOST,
    );
    assert.equal(edgeConfigFromEnv({ HOST, ALLOW_ANONYMOUS: "true" }).host, HOST);
  }
  for (const HOST of ["127.0.0.1", "::1", "localhost"]) assert.equal(edgeConfigFromEnv({ HOST }).auth.mode, "none");
  assert.equal(edgeConfigFromEnv({}).host, "127.0.0.1");
  assert.equal(edgeConfigFromEnv({ HOST: "0.0.0.0", AUTH: "jwt", JWT_SECRET: "s".repeat(32) }).auth.mode, "jwt");
  assert.throws(() => edgeConfigFromEnv({ ALLOW_ANONYMOUS: "yes" }), /ALLOW_ANONYMOUS: must be true or false/);
});
