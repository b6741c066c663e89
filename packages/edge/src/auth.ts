import { ProtocolError, isRid, wholeSeconds } from "@unbroken/protocol";
import { jwtVerify, type JWTPayload } from "jose";
import type { EdgeConfig } from "./config.js";

/** With auth off every socket acts as this one owner: anyone who knows a rid may read it. */
export const ANONYMOUS = "anonymous";

/** What a response-scoped (capability) token may do to its one response. */
export const SCOPES = ["read", "steer", "cancel"] as const;
export type Scope = (typeof SCOPES)[number];

/**
 * Who a socket or an HTTP request acts as. An owner token (or auth off) acts on the responses
 * of its owner and may generate, until its `expiresAt` (none: no `exp`, or auth off); a
 * capability token grants exactly `scope` on exactly the response `rid` created at `createdAt`
 * (whole seconds), whoever owns it, and nothing else, until `expiresAt`.
 */
export type Principal =
  | { kind: "owner"; owner: string; expiresAt?: number | undefined }
  | { kind: "capability"; rid: string; createdAt: number; scope: ReadonlySet<Scope>; expiresAt: number; sub: string | undefined }
  | ThreadReader;

/**
 * A thread-scoped token (claims `thread`, `scope: "read"`, `created_at`, `exp`): reads exactly
 * that thread's turns and the responses they started, nothing else, until `expiresAt`.
 * `createdAt` is the thread's creation time in whole seconds (its first turn's).
 */
export interface ThreadReader {
  kind: "thread";
  thread: string;
  createdAt: number;
  expiresAt: number;
  sub: string | undefined;
}

/** The claim that binds a response-scoped token to one response: its creation time in seconds. */
export const CREATED_AT_CLAIM = "created_at";

export type Authenticate = (token: string | undefined) => Promise<Principal>;

const unauthorized = (message: string, cause?: unknown) => new ProtocolError("unauthorized", message, { cause });

/** Returns a function from a hello (or Bearer) token to the principal it proves, or an `unauthorized` error. */
export function authenticator(auth: EdgeConfig["auth"], capabilityMaxTtlMs = 24 * 3_600_000): Authenticate {
  if (auth.mode === "none") return async () => ({ kind: "owner", owner: ANONYMOUS });
  const key = new TextEncoder().encode(auth.secret);
  // JWT_ISSUER / JWT_AUDIENCE: a token minted for another service (same secret) is refused.
  const claimChecks = {
    ...(auth.issuer ? { issuer: auth.issuer } : {}),
    ...(auth.audience ? { audience: auth.audience } : {}),
  };
  return async (token) => {
    if (token === undefined || token.length === 0) throw unauthorized("a token is required");
    let payload: JWTPayload;
    try {
      // Only HS256: `none` and every other algorithm are refused by the allow-list.
      ({ payload } = await jwtVerify(token, key, { algorithms: ["HS256"], ...claimChecks }));
    } catch (err) {
      throw unauthorized("invalid or expired token", err);
    }
    if (payload.thread !== undefined) return threadReader(payload, capabilityMaxTtlMs);
    if (payload.rid !== undefined || payload.scope !== undefined) return capability(payload, capabilityMaxTtlMs);
    if (typeof payload.sub !== "string" || payload.sub.length === 0) throw unauthorized("the token has no subject");
    return { kind: "owner", owner: payload.sub, expiresAt: typeof payload.exp === "number" ? payload.exp * 1000 : undefined };
  };
}

/** A token with `rid` and `scope`: checked strictly, since it is meant to be handed around. */
function capability(payload: JWTPayload, maxTtlMs: number): Principal {
  const { rid, scope } = payload as JWTPayload & { rid?: unknown; scope?: unknown };
  if (!isRid(rid)) throw unauthorized("a response-scoped token needs a valid rid claim");
  const words = typeof scope === "string" ? scope.split(" ").filter((w) => w.length > 0) : Array.isArray(scope) ? scope : undefined;
  if (words === undefined || words.length === 0 || !words.every((w): w is Scope => (SCOPES as readonly unknown[]).includes(w))) {
    throw unauthorized(`a response-scoped token needs a scope of ${SCOPES.join(", ")} (space-separated)`);
  }
  const { createdAt, expiresAt, sub } = scopedClaims(
    payload,
    maxTtlMs,
    "response-scoped",
    "its response's creation time in whole seconds (the response object's created_at)",
  );
  return { kind: "capability", rid, createdAt, scope: new Set(words), expiresAt, sub };
}

/** A token with `thread`: read only, checked as strictly as a response-scoped one. */
function threadReader(payload: JWTPayload, maxTtlMs: number): Principal {
  const { thread, scope } = payload as JWTPayload & { thread?: unknown; scope?: unknown };
  if (!isRid(thread)) throw unauthorized("a thread-scoped token needs a valid thread claim");
  if (scope !== "read" && !(Array.isArray(scope) && scope.length === 1 && scope[0] === "read")) {
    throw unauthorized("a thread-scoped token needs the scope read: it reads a thread, nothing more");
  }
  const { createdAt, expiresAt, sub } = scopedClaims(
    payload,
    maxTtlMs,
    "thread-scoped",
    "its thread's creation time in whole seconds (created_at of GET /v1/threads/{thread}/turns)",
  );
  return { kind: "thread", thread, createdAt, expiresAt, sub };
}

/** The claims every scoped token needs: `exp` within the longest lifetime, and `created_at`. */
function scopedClaims(
  payload: JWTPayload,
  maxTtlMs: number,
  what: string,
  createdAtMeans: string,
): { createdAt: number; expiresAt: number; sub: string | undefined } {
  const { exp, iat } = payload;
  if (typeof exp !== "number") throw unauthorized(`a ${what} token needs an exp claim`);
  // Without it a rid (or thread) created again after RETENTION (by anyone) would open to an old token.
  const createdAt = (payload as Record<string, unknown>)[CREATED_AT_CLAIM];
  if (typeof createdAt !== "number" || !Number.isInteger(createdAt) || createdAt < 0) {
    throw unauthorized(`a ${what} token needs a ${CREATED_AT_CLAIM} claim: ${createdAtMeans}`);
  }
  const maxSeconds = maxTtlMs / 1000;
  const now = Date.now() / 1000;
  if (exp - now > maxSeconds || (typeof iat === "number" && exp - iat > maxSeconds)) {
    throw unauthorized(`a ${what} token may live at most ${maxSeconds} s (exp - iat)`);
  }
  const sub = typeof payload.sub === "string" ? payload.sub : undefined;
  return { createdAt, expiresAt: exp * 1000, sub };
}

/** Whether `record` (its `created_at`, an ISO time) is the response a capability token was made for. */
export function madeFor(p: Extract<Principal, { kind: "capability" }>, record: { created_at: string }): boolean {
  return wholeSeconds(record.created_at) === p.createdAt;
}

/** The owner a principal generates as; a capability token starts nothing. */
export function generatingOwner(p: Principal): string {
  if (p.kind === "owner") return p.owner;
  throw new ProtocolError("forbidden", `a ${p.kind === "thread" ? "thread" : "response"}-scoped token cannot start generations`);
}

/** For logs: who acted. */
export function describePrincipal(p: Principal): string {
  if (p.kind === "owner") return p.owner;
  const sub = p.sub ? `:${p.sub}` : "";
  if (p.kind === "thread") return `thread:${p.thread}:read${sub}`;
  return `capability:${p.rid}:${[...p.scope].join("+")}${sub}`;
}
