import { RetentionPolicy, StorageType, jetstreamManager, type JetStreamManager, type StreamConfig } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  EVENTS_STREAM,
  EVENT_SUBJECTS,
  REQUESTS_STREAM,
  REQUEST_SUBJECTS,
  RESPONSES_BUCKET,
  formatDuration,
} from "@unbroken/protocol";
import type { Log } from "./log.js";

export interface LayoutOptions {
  /** How long a response stays replayable (events and record). */
  retentionMs: number;
  /** Replicas of streams and bucket: 1 on one server, 3 on a cluster. */
  replicas?: number;
  /**
   * How long to keep trying while JetStream cannot answer yet (a cluster electing its
   * leaders, a server still recovering its store); default 60 s.
   */
  readyTimeoutMs?: number;
}

type StreamSettings = Partial<StreamConfig> & { name: string };

const NS = 1_000_000;
/** Long enough to cover any retried write; JetStream requires it to be at most max_age. */
const duplicateWindowMs = (retentionMs: number): number => Math.min(120_000, retentionMs);

function eventsConfig(opts: LayoutOptions): StreamSettings {
  return {
    name: EVENTS_STREAM,
    subjects: [EVENT_SUBJECTS],
    storage: StorageType.File,
    max_age: opts.retentionMs * NS,
    duplicate_window: duplicateWindowMs(opts.retentionMs) * NS,
    num_replicas: opts.replicas ?? 1,
    allow_direct: true,
    // Only messages JetStream stored are republished, so the live tail never sees a
    // write that a fencing check or the duplicate window refused.
    republish: { src: "llm.ev.>", dest: "llm.live.>" },
  };
}

function requestsConfig(opts: LayoutOptions): StreamSettings {
  return {
    name: REQUESTS_STREAM,
    subjects: [REQUEST_SUBJECTS],
    storage: StorageType.File,
    retention: RetentionPolicy.Workqueue,
    max_age: opts.retentionMs * NS,
    duplicate_window: duplicateWindowMs(opts.retentionMs) * NS,
    num_replicas: opts.replicas ?? 1,
  };
}

/** Creates the stream, or brings an existing one's max age to the configured retention. */
async function ensureStream(jsm: JetStreamManager, config: StreamSettings, log: Log): Promise<void> {
  const name = config.name as string;
  let info;
  try {
    info = await jsm.streams.info(name);
  } catch (err) {
    if (!/stream not found/i.test(String((err as Error).message))) throw err;
    await jsm.streams.add(config);
    log.info({ stream: name, retention: formatDuration((config.max_age ?? 0) / NS) }, "created stream");
    return;
  }
  const current = info.config;
  if (current.max_age !== config.max_age || current.duplicate_window !== config.duplicate_window) {
    await jsm.streams.update(name, { ...current, max_age: config.max_age, duplicate_window: config.duplicate_window });
    log.info(
      { stream: name, from: formatDuration(current.max_age / NS), to: formatDuration((config.max_age ?? 0) / NS) },
      "updated stream retention",
    );
  }
  await ensureReplicas(jsm, name, config.num_replicas ?? 1, log);
}

/**
 * Brings a stream (or a bucket's stream) to `replicas` (REPLICAS), e.g. after a single server
 * grew into a cluster. A change JetStream refuses (more replicas than servers) is logged, not
 * fatal: the layout still works with the replicas it has.
 */
async function ensureReplicas(jsm: JetStreamManager, name: string, replicas: number, log: Log): Promise<void> {
  const { config: current } = await jsm.streams.info(name);
  if ((current.num_replicas || 1) === replicas) return;
  try {
    await jsm.streams.update(name, { ...current, num_replicas: replicas });
    log.info({ stream: name, from: current.num_replicas, to: replicas }, "updated stream replicas");
  } catch (err) {
    log.warn({ stream: name, replicas, err: String(err) }, "could not change stream replicas; keeping the current ones");
  }
}

export interface Layout {
  jsm: JetStreamManager;
  kv: KV;
}

/** What JetStream says while it cannot answer yet: worth waiting for, unlike a refusal. */
const NOT_READY = /timeout|no responders|not enabled|not ready|no suitable peers|leader|temporarily unavailable/i;

/**
 * `ensureLayout`, tried again while JetStream is not ready (each try is idempotent): a
 * component started together with its NATS cluster waits for it rather than exiting.
 */
export async function ensureLayoutWhenReady(nc: NatsConnection, opts: LayoutOptions, log: Log): Promise<Layout> {
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  for (let attempt = 0; ; attempt++) {
    try {
      return await ensureLayout(nc, opts, log);
    } catch (err) {
      if (!NOT_READY.test(String(err)) || Date.now() >= deadline || nc.isClosed()) throw err;
      log.warn({ err: String(err), attempt }, "JetStream is not ready; trying again");
      await new Promise((r) => setTimeout(r, Math.min(2_000, 250 * 2 ** attempt)));
    }
  }
}

/** Whichever component starts first creates the layout; every start applies RETENTION. */
export async function ensureLayout(nc: NatsConnection, opts: LayoutOptions, log: Log): Promise<Layout> {
  const jsm = await jetstreamManager(nc);
  await ensureStream(jsm, eventsConfig(opts), log);
  await ensureStream(jsm, requestsConfig(opts), log);
  const kv = await new Kvm(nc).create(RESPONSES_BUCKET, {
    history: 1,
    ttl: opts.retentionMs,
    storage: StorageType.File,
    replicas: opts.replicas ?? 1,
  });
  const kvStream = `KV_${RESPONSES_BUCKET}`;
  const kvInfo = await jsm.streams.info(kvStream);
  if (kvInfo.config.max_age !== opts.retentionMs * NS) {
    await jsm.streams.update(kvStream, { ...kvInfo.config, max_age: opts.retentionMs * NS });
    log.info({ stream: kvStream, to: formatDuration(opts.retentionMs) }, "updated bucket retention");
  }
  await ensureReplicas(jsm, kvStream, opts.replicas ?? 1, log);
  return { jsm, kv };
}
