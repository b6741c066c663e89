import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
// The client's own error classes that its main entry does not re-export.
import { JetStreamStatusError, jserrors } from "@nats-io/jetstream/internal";
import { ClosedConnectionError, DrainingConnectionError, NoRespondersError, RequestError, TimeoutError } from "@nats-io/transport-node";
import { PublishError } from "./js-publisher.js";

/**
 * How the store tells NATS failures apart: by nats.js's error classes and JetStream's API
 * codes, never by the text of a message (which a client or server release may reword).
 */

/** JetStream API codes a cluster answers while it cannot serve yet (leader elections, placement). */
const NOT_READY_CODES = new Set([
  10004, // cluster: incomplete results
  10005, // cluster: no suitable peers for placement
  10007, // cluster: not assigned to this server
  10008, // JetStream system temporarily unavailable
  10009, // cluster: cannot handle the request (not the leader)
]);

/** The API error behind `err`, when JetStream refused a request. */
export function apiError(err: unknown): JetStreamApiError | undefined {
  if (err instanceof JetStreamApiError) return err;
  if (err instanceof Error && err.cause instanceof JetStreamApiError) return err.cause;
  return undefined;
}

/** True for failures that mean "NATS (or JetStream) cannot be reached or cannot answer right now". */
export function isUnreachable(err: unknown): boolean {
  if (err instanceof PublishError) return err.code !== "api";
  if (
    err instanceof TimeoutError ||
    err instanceof NoRespondersError ||
    err instanceof ClosedConnectionError ||
    err instanceof DrainingConnectionError ||
    // JetStream's way of saying 503 (no responders) to an API call or a publish; on a cluster,
    // also what a stream answers while it elects a new leader: a moment to retry.
    err instanceof jserrors.JetStreamNotEnabled
  ) {
    return true;
  }
  // A request that failed on the way (disconnected, timed out, no responders).
  if (err instanceof RequestError) return true;
  if (err instanceof JetStreamStatusError) return err.code === 503 || err.code === 408;
  const api = apiError(err);
  return api !== undefined && (api.status === 503 || NOT_READY_CODES.has(api.code));
}

/** A request nobody listens to (no subscriber on the subject). */
export function isNoResponders(err: unknown): boolean {
  if (err instanceof NoRespondersError) return true;
  return err instanceof RequestError && (err.isNoResponders() || err.cause instanceof NoRespondersError);
}

/** A request that got no answer in time. */
export function isTimeout(err: unknown): boolean {
  return err instanceof TimeoutError || (err instanceof RequestError && err.cause instanceof TimeoutError);
}

/** A compare-and-set (expected last sequence) that lost: someone wrote first. */
export function isWrongLastSequence(err: unknown): boolean {
  if (err instanceof PublishError) return err.errCode === JetStreamApiCodes.StreamWrongLastSequence;
  const code = apiError(err)?.code;
  return code === JetStreamApiCodes.StreamWrongLastSequence || code === JetStreamApiCodes.StreamWrongLastSequenceUnknown;
}

export const isStreamNotFound = (err: unknown): boolean => apiError(err)?.code === JetStreamApiCodes.StreamNotFound;
export const isConsumerNotFound = (err: unknown): boolean => apiError(err)?.code === JetStreamApiCodes.ConsumerNotFound;
