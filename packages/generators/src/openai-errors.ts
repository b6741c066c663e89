import type { EndErrorCode } from "@unbroken/protocol";
import { GeneratorError } from "./generator.js";

/**
 * A failure of one upstream request. `retryable` says whether sending the same request again
 * may succeed; the session only does so while the request has written nothing (see openai.ts).
 * `retryAfterMs` is the delay the server asked for (429 Retry-After), when it gave one.
 */
export class UpstreamError extends GeneratorError {
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  constructor(
    code: EndErrorCode,
    message: string,
    opts: { retryable?: boolean; retryAfterMs?: number; cause?: unknown; detail?: string } = {},
  ) {
    super(code, message, opts.cause, opts.detail || undefined);
    this.name = "UpstreamError";
    this.retryable = opts.retryable ?? false;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

/** The longest Retry-After honoured; a server asking for more ends the response at once. */
export const MAX_RETRY_AFTER_MS = 60_000;

const MAX_DETAIL = 300;

/**
 * The error for a non-2xx answer. `body` is the (possibly truncated) response text: it goes to
 * the detail (the worker's log), never to the client, since an upstream's error body may echo
 * the request, a key, an internal host.
 */
export function httpError(status: number, headers: Headers, body: string): UpstreamError {
  const detail = errorDetail(body);
  const what = `the upstream answered HTTP ${status}`;
  if (status === 401 || status === 403) {
    // The body of an auth failure can echo part of the key: never pass it on.
    return new UpstreamError("upstream_unauthorized", `${what}: the API key was refused`);
  }
  if (status === 429) {
    const retryAfterMs = retryAfter(headers);
    return new UpstreamError("upstream_rate_limited", `${what} (rate limited)`, {
      detail,
      retryable: retryAfterMs === undefined || retryAfterMs <= MAX_RETRY_AFTER_MS,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
  }
  if (status >= 500 || status === 408 || status === 409) {
    return new UpstreamError("upstream_error", what, { retryable: true, detail });
  }
  // Other 4xx: the server will not accept this request as it is (unknown model, context too
  // long, bad parameter); sending it again cannot help.
  return new UpstreamError("upstream_rejected", what, { detail });
}

/** The error for a fetch that failed before any response arrived; the URL is only logged. */
export function connectError(url: string, err: unknown): UpstreamError {
  const code = causeCode(err);
  return new UpstreamError("upstream_unreachable", `cannot reach the upstream${code ? ` (${code})` : ""}`, {
    retryable: true,
    cause: err,
    detail: `${url}: ${String(err)}`,
  });
}

/** The error for a response body that failed while streaming (socket reset, premature close). */
export function interruptedError(err: unknown): UpstreamError {
  const code = causeCode(err);
  return new UpstreamError("upstream_interrupted", `the upstream stream was cut before the answer finished${code ? ` (${code})` : ""}`, {
    retryable: true,
    cause: err,
  });
}

export function timeoutError(idleMs: number): UpstreamError {
  return new UpstreamError("upstream_timeout", `the upstream sent nothing for ${idleMs} ms`);
}

/** `detail`: what the upstream sent (an excerpt), for the log only. */
export function badResponse(message: string, cause?: unknown, detail?: string): UpstreamError {
  return new UpstreamError("upstream_bad_response", message, { cause, ...(detail ? { detail } : {}) });
}

/** An `error` object sent inside the stream (vLLM and OpenAI do this for mid-stream failures). */
export function streamedError(payload: unknown): UpstreamError {
  return new UpstreamError("upstream_error", "the upstream reported an error mid-stream", {
    retryable: true,
    detail: errorDetail(payload),
  });
}

/** Delay from `retry-after-ms` (OpenAI) or `Retry-After` (seconds or an HTTP date). */
export function retryAfter(headers: Headers): number | undefined {
  const ms = Number(headers.get("retry-after-ms") ?? NaN);
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const value = headers.get("retry-after");
  if (value === null || value.trim() === "") return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds * 1000 : undefined;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** The human part of an error body: OpenAI, vLLM, llama.cpp and Ollama shapes, else the text. */
function errorDetail(body: unknown): string {
  let value: unknown = body;
  if (typeof body === "string") {
    try {
      value = JSON.parse(body);
    } catch {
      return clip(body);
    }
  }
  if (typeof value === "object" && value !== null) {
    const o = value as Record<string, unknown>;
    const err = o.error;
    if (typeof err === "string") return clip(err);
    if (typeof err === "object" && err !== null && typeof (err as Record<string, unknown>).message === "string") {
      return clip((err as Record<string, string>).message ?? "");
    }
    for (const key of ["message", "detail"]) if (typeof o[key] === "string") return clip(o[key] as string);
  }
  return typeof value === "string" ? clip(value) : "";
}

function clip(s: string): string {
  const t = s.trim().replace(/\s+/g, " ");
  return t.length > MAX_DETAIL ? `${t.slice(0, MAX_DETAIL)}…` : t;
}

/** ECONNREFUSED and the like, from undici's `fetch failed` (the code sits on a cause). */
function causeCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
    const inner = (e as { errors?: unknown[] }).errors?.[0];
    e = (e as { cause?: unknown }).cause ?? inner;
  }
  return undefined;
}

const MAX_BACKOFF_MS = 10_000;

export function closedError(): GeneratorError {
  return new GeneratorError("generator_closed", "the openai generator was closed before this response finished");
}

/** Exponential backoff with ±20 % jitter. */
export function backoff(base: number, attempt: number): number {
  return Math.min(MAX_BACKOFF_MS, base * 2 ** (attempt - 1)) * (0.8 + 0.4 * Math.random());
}

/** Waits `ms`, or less when either signal aborts. */
export function sleep(ms: number, ...signals: AbortSignal[]): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      for (const s of signals) s.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    for (const s of signals) s.addEventListener("abort", done, { once: true });
    if (signals.some((s) => s.aborted)) done();
  });
}
