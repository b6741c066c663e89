// The messages between the bench (parent) and its load process (child).

import type { Protocol } from "../targets/target.js";

export interface StreamSpec {
  rid: string;
  prompt: string;
  maxTokens: number;
  /** When to connect, in ms after the job starts. */
  startAt: number;
  /** A W0 probe running beside the main load. */
  probe?: boolean;
}

interface StreamsBase {
  protocol: Protocol;
  url: string;
  streams: StreamSpec[];
  /** Streams still running then are cut and reported with error "timeout". */
  timeoutMs: number;
  /** At most this many connection attempts in flight (a listen backlog is finite). */
  connectConcurrency: number;
}

export type Job =
  | (StreamsBase & { kind: "streams" })
  | (StreamsBase & { kind: "resume"; drops: number; offlineMs: number })
  | (StreamsBase & { kind: "cancel"; cancelAfter: number })
  /** W6: every connection opened first (SSE: none, the POST is its connection), then all generates at one instant. */
  | (StreamsBase & { kind: "burst" })
  | { kind: "idle"; protocol: Protocol; url: string; count: number; connectConcurrency: number };

export interface CancelResult {
  sentAt: number;
  endAt: number;
  okAt: number;
  tokensAtCancel: number;
  tokensAtEnd: number;
  /** Tokens that arrived after the cancel's `ok` (the protocol says none may). */
  tokensAfterOk: number;
}

export interface StreamResult {
  rid: string;
  probe: boolean;
  /** Epoch ms the generate frame (or the POST, once connected) was sent. */
  sentAt: number;
  /** Connect (+ hello/welcome) time before the generate. */
  connectMs: number;
  /** recv[k] = epoch ms token k arrived (NaN: never). */
  recv: Float64Array;
  tokens: number;
  events: number;
  endReason?: string;
  completionTokens?: number;
  lost: number;
  dup: number;
  error?: string;
  /** W3: per reconnect, ms from opening the new socket to the first event it had missed. */
  resumeMs?: number[];
  /** W3: the part of each resume from sending `subscribe` to that first missed event. */
  resumeSubscribeMs?: number[];
  cancel?: CancelResult;
  /** Epoch ms our protocol's `accepted` arrived (the edge has stored and queued the request). */
  acceptedAt?: number;
  /** Epoch ms the first event of the response arrived (W6 times the burst to it). */
  firstEventAt?: number;
}

export interface StreamsResult {
  kind: "streams";
  startedAt: number;
  endedAt: number;
  /** W6: the instant every generate was sent. */
  burstAt?: number;
  streams: StreamResult[];
}

export interface IdleResult {
  kind: "idle";
  opened: number;
  failed: number;
  firstError?: string;
}

/** Child → parent. */
export type LoadMessage =
  | { type: "result"; result: StreamsResult | IdleResult }
  | { type: "idle-ready"; opened: number; failed: number }
  | { type: "failed"; error: string };
