import assert from "node:assert/strict";
import { newRid, type GenerationBody, type ResponseRecord } from "@unbroken/protocol";
import type { Broker } from "@unbroken/store";

/**
 * Creates a queued record and queues its request, as an edge's generate does: with the record
 * and its revision carried (the worker claims on that revision), or with the rid alone (the
 * worker reads the record first). Returns the rid.
 */
export async function submit(broker: Broker, prompt: string, maxTokens: number, carry = true): Promise<string> {
  return submitRequest(broker, { prompt, params: { max_tokens: maxTokens } }, carry);
}

/** `submit` with any generation body (tools, reasoning_effort, ...). */
export async function submitRequest(broker: Broker, request: GenerationBody, carry = true): Promise<string> {
  const rid = newRid();
  const record = queuedRecord(rid, request);
  const revision = await broker.records.create(record);
  assert.ok(revision, "the record is created");
  await broker.enqueue(carry ? { rid, record, revision } : { rid });
  return rid;
}

/** A queued record of rid, as an edge creates it (its request not checked here). */
export function queuedRecord(rid: string, request: GenerationBody): ResponseRecord {
  return { v: 1, rid, owner: "", status: "queued", created_at: new Date().toISOString(), request, steers: [], epoch: 0 };
}
