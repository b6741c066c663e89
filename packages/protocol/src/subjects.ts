/**
 * Where edge and worker meet. Neither imports the other: these names are the whole contract,
 * together with the payload schemas in internal.ts.
 */
export const EVENTS_STREAM = "LLM_EVENTS";
export const REQUESTS_STREAM = "LLM_REQUESTS";
/** Every thread's turns, one subject per thread (`llm.th.<thread>`). */
export const THREADS_STREAM = "LLM_THREADS";
export const RESPONSES_BUCKET = "llm_responses";
export const WORKERS_CONSUMER = "workers";
/**
 * rid → owner, written by the edge when a response is created and kept twice as long as the
 * response (2 × RETENTION), so that an expired response answers `gone`, not `not_found`.
 */
export const RID_OWNERS_BUCKET = "llm_rid_owners";

/** Events of one response, stored in EVENTS_STREAM. */
export const eventSubject = (rid: string): string => `llm.ev.${rid}`;
/** The stream's RePublish of stored events: only messages JetStream accepted arrive here. */
export const liveSubject = (rid: string): string => `llm.live.${rid}`;
/** The turns of one thread, stored in THREADS_STREAM. */
export const threadSubject = (thread: string): string => `llm.th.${thread}`;
/** Generation requests, a work queue shared by all workers. */
export const requestSubject = (rid: string): string => `llm.req.${rid}`;
/** Cancel and steer for the worker that runs rid. */
export const controlSubject = (rid: string): string => `llm.ctl.${rid}`;
/** Asked on by an edge listing models (`GET /v1/models`): every running worker answers with its own. */
export const MODELS_SUBJECT = "llm.models";

export const EVENT_SUBJECTS = "llm.ev.*";
export const LIVE_SUBJECTS = "llm.live.*";
export const REQUEST_SUBJECTS = "llm.req.*";
export const THREAD_SUBJECTS = "llm.th.*";

/** The msg id of event `seq` of rid: a retried write inside the duplicate window is dropped. */
export const eventMsgId = (rid: string, seq: number): string => `${rid}:${seq}`;
