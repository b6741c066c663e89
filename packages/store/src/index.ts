// The only package that speaks NATS. Edge and worker call these operations and never hold a
// NATS handle; the layout they run on is declared in layout.ts.
export * from "./log.js";
export * from "./errors.js";
export { Broker, type BrokerOptions } from "./broker.js";
export type { LayoutOptions } from "./layout.js";
export type { ResponseRecords, StoredRecord } from "./records.js";
export type { RidOwners } from "./owners.js";
export type { WorkQueue, WorkDelivery, PullResult } from "./work-queue.js";
export type { ControlChannel, ControlCall, ControlListener, ControlOutcome } from "./control.js";
export type { EventLogs } from "./event-log.js";
export type { ModelDirectory, ServedModel } from "./models.js";
export type { ThreadLogs, ThreadTurn, TurnDraft, TurnFollower, TurnFollowOptions } from "./threads.js";
export type { EventLogWriter, WriterOptions, WriterPosition } from "./log-writer.js";
export type { LogFollower, FollowOptions } from "./log-follower.js";
export type { ReadOptions, StoredRead } from "./log-reader.js";
export { StoredEvent, decodeEvent } from "./stored-event.js";
export { ResponseLifecycle, ends, goneError, isGone, isStale, usageOf, zeroUsage } from "./lifecycle.js";
export { sharedEnv } from "./config.js";
