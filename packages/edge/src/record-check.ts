import { ProtocolError, responseRecordSchema, type ResponseRecord } from "@unbroken/protocol";
import { describeIssues } from "./http-util.js";

/**
 * The record as it will be stored, read back with the schema every reader (worker, edge)
 * parses it with. A record that would not read back is never stored: the worker could not
 * run it and the client would wait for an answer that never comes. Whatever a front door let
 * through, this refuses with `bad_request` naming the field (as the generate frame names it).
 */
export function storableRecord(record: ResponseRecord): ResponseRecord {
  const parsed = responseRecordSchema.safeParse(JSON.parse(JSON.stringify(record)));
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => ({ ...i, path: i.path[0] === "request" ? i.path.slice(1) : i.path }));
  throw new ProtocolError("bad_request", describeIssues(issues));
}
