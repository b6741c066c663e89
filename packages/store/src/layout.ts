import {
  AckPolicy,
  RetentionPolicy,
  StorageType,
  jetstreamManager,
  type ConsumerConfig,
  type ConsumerInfo,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  EVENTS_STREAM,
  EVENT_SUBJECTS,
  REQUESTS_STREAM,
  REQUEST_SUBJECTS,
  RESPONSES_BUCKET,
  RID_OWNERS_BUCKET,
  THREADS_STREAM,
  THREAD_SUBJECTS,
  WORKERS_CONSUMER,
  formatDuration,
} from "@unbroken/protocol";
import type { Log } from "./log.js";
import { apiError, isConsumerNotFound, isStreamNotFound, isUnreachable } from "./nats-errors.js";

/**
 * The whole JetStream layout, declared here and nowhere else:
 *
 * | name | kind | holds | kept |
 * |---|---|---|---|
 * | `LLM_EVENTS` (`llm.ev.<rid>`) | stream, file | every event of every response, one subject per response; RePublish to `llm.live.<rid>` | RETENTION |
 * | `LLM_REQUESTS` (`llm.req.<rid>`) | work-queue stream, file | generation requests waiting for (or held by) a worker | RETENTION |
 * | `workers` on `LLM_REQUESTS` | durable pull consumer | shared by all workers; ack wait = TAKEOVER_TIMEOUT | — |
 * | `llm_responses` | KV bucket | the response record: owner, status, request, queued steers, epoch | RETENTION |
 * | `llm_rid_owners` | KV bucket | rid → owner, so an expired response answers `gone` | 2 × RETENTION |
 * | `LLM_THREADS` (`llm.th.<thread>`) | stream, file | every thread's turns, one subject per thread | RETENTION |
 *
 * Control messages (`llm.ctl.<rid>`) and the live tail (`llm.live.<rid>`) are core NATS
 * subjects: nothing is stored for them.
 */
export interface LayoutOptions {
  /** How long a response stays replayable (events and record). */
  retentionMs: number;
  /** Replicas of streams and buckets: 1 on one server, 3 on a cluster. */
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
const duplicateWindowMs = (maxAgeMs: number): number => Math.min(120_000, maxAgeMs);

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

/** A thread's turns live as long as the responses they started (each turn expires on its own). */
function threadsConfig(opts: LayoutOptions): StreamSettings {
  return {
    name: THREADS_STREAM,
    subjects: [THREAD_SUBJECTS],
    storage: StorageType.File,
    max_age: opts.retentionMs * NS,
    duplicate_window: duplicateWindowMs(opts.retentionMs) * NS,
    num_replicas: opts.replicas ?? 1,
  };
}

/** Records live as long as their events; rid owners twice as long, so an expired rid answers `gone`. */
const ownersMaxAgeMs = (retentionMs: number): number => 2 * retentionMs;

/** The workers consumer: one durable pull consumer all workers share; `ackWaitMs` is TAKEOVER_TIMEOUT. */
function workersConsumerConfig(ackWaitMs: number): Partial<ConsumerConfig> & { durable_name: string } {
  return {
    durable_name: WORKERS_CONSUMER,
    ack_policy: AckPolicy.Explicit,
    ack_wait: ackWaitMs * NS,
    filter_subject: REQUEST_SUBJECTS,
    max_ack_pending: -1,
  };
}

/** Creates the workers consumer (a worker does, with its TAKEOVER_TIMEOUT: edges never pull). */
export async function createWorkersConsumer(jsm: JetStreamManager, ackWaitMs: number): Promise<void> {
  await jsm.consumers.add(REQUESTS_STREAM, workersConsumerConfig(ackWaitMs));
}

/**
 * The workers consumer's info, or undefined when the server did not know it and it was created
 * now; an existing one is brought to `ackWaitMs` (logged).
 */
export async function ensureWorkersConsumer(jsm: JetStreamManager, ackWaitMs: number, log: Log): Promise<ConsumerInfo | undefined> {
  let info: ConsumerInfo;
  try {
    info = await jsm.consumers.info(REQUESTS_STREAM, WORKERS_CONSUMER);
  } catch (err) {
    if (!isConsumerNotFound(err)) throw err;
    await createWorkersConsumer(jsm, ackWaitMs);
    return undefined;
  }
  if (info.config.ack_wait !== ackWaitMs * NS) {
    info = await jsm.consumers.update(REQUESTS_STREAM, WORKERS_CONSUMER, { ack_wait: ackWaitMs * NS });
    log.info({ ack_wait_ms: ackWaitMs }, "updated workers consumer");
  }
  return info;
}

/** Creates the stream, or brings an existing one's max age to the configured retention. */
async function ensureStream(jsm: JetStreamManager, config: StreamSettings, log: Log): Promise<void> {
  const name = config.name;
  let info: StreamInfo;
  try {
    info = await jsm.streams.info(name);
  } catch (err) {
    if (!isStreamNotFound(err)) throw err;
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

/** The subject a bucket stores `key` on: its writes are publishes there (see records.ts). */
export const kvSubject = (bucket: string, key: string): string => `$KV.${bucket}.${key}`;

/** Creates a bucket, or brings its stream's max age (and duplicate window) to `maxAgeMs`. */
async function ensureBucket(
  nc: NatsConnection,
  jsm: JetStreamManager,
  name: string,
  maxAgeMs: number,
  replicas: number,
  log: Log,
): Promise<KV> {
  const kv = await new Kvm(nc).create(name, { history: 1, ttl: maxAgeMs, storage: StorageType.File, replicas });
  const stream = `KV_${name}`;
  const { config } = await jsm.streams.info(stream);
  if (config.max_age !== maxAgeMs * NS) {
    const duplicate_window = Math.min(config.duplicate_window, maxAgeMs * NS);
    await jsm.streams.update(stream, { ...config, max_age: maxAgeMs * NS, duplicate_window });
    log.info({ stream, to: formatDuration(maxAgeMs) }, "updated bucket retention");
  }
  await ensureReplicas(jsm, stream, replicas, log);
  return kv;
}

export interface Layout {
  jsm: JetStreamManager;
  records: KV;
  owners: KV;
}

/**
 * What JetStream says while it cannot answer yet: worth waiting for, unlike a refusal. At
 * start any server-side failure (5xx) counts: a component started with its cluster waits.
 */
function notReady(err: unknown): boolean {
  if (isUnreachable(err)) return true;
  const status = apiError(err)?.status;
  return status !== undefined && status >= 500;
}

/**
 * `fn`, tried again while JetStream is not ready (each try must be idempotent): a component
 * started together with its NATS cluster waits for it rather than exiting. Gives up after
 * `timeoutMs` (LayoutOptions.readyTimeoutMs), on a refusal, or once the connection is closed.
 */
export async function whenReady<T>(nc: NatsConnection, fn: () => Promise<T>, timeoutMs: number, log: Log): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!notReady(err) || Date.now() >= deadline || nc.isClosed()) throw err;
      log.warn({ err: String(err), attempt }, "JetStream is not ready; trying again");
      await new Promise((r) => setTimeout(r, Math.min(2_000, 250 * 2 ** attempt)));
    }
  }
}

/** How long a component waits for JetStream at start unless told otherwise. */
export const READY_TIMEOUT_MS = 60_000;

/** `ensureLayout`, tried again while JetStream is not ready. */
export function ensureLayoutWhenReady(nc: NatsConnection, opts: LayoutOptions, log: Log): Promise<Layout> {
  return whenReady(nc, () => ensureLayout(nc, opts, log), opts.readyTimeoutMs ?? READY_TIMEOUT_MS, log);
}

/** Whichever component starts first creates the layout; every start applies RETENTION and REPLICAS. */
export async function ensureLayout(nc: NatsConnection, opts: LayoutOptions, log: Log): Promise<Layout> {
  const jsm = await jetstreamManager(nc);
  const replicas = opts.replicas ?? 1;
  await ensureStream(jsm, eventsConfig(opts), log);
  await ensureStream(jsm, requestsConfig(opts), log);
  await ensureStream(jsm, threadsConfig(opts), log);
  const records = await ensureBucket(nc, jsm, RESPONSES_BUCKET, opts.retentionMs, replicas, log);
  const owners = await ensureBucket(nc, jsm, RID_OWNERS_BUCKET, ownersMaxAgeMs(opts.retentionMs), replicas, log);
  return { jsm, records, owners };
}
