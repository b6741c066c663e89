import type { GenerationParams, ReasoningEffort, Tool, ToolChoice } from "@unbroken/protocol";

/** What a request adds to its messages; the client's generate validates it. */
export interface RequestOptions {
  params?: GenerationParams;
  tools?: Tool[];
  tool_choice?: ToolChoice;
}

/** The request options of the constructor's options or of a request's body (its other keys are ignored). */
export function requestOptions(source: object, where: string): RequestOptions {
  const o = source as Partial<RequestOptions & { reasoning_effort: ReasoningEffort }> & Record<string, unknown>;
  if (o.params !== undefined && (typeof o.params !== "object" || o.params === null)) {
    throw new TypeError(`UnbrokenChatTransport: ${where}.params must be an object`);
  }
  const params = o.reasoning_effort === undefined ? o.params : { ...o.params, reasoning_effort: o.reasoning_effort };
  return {
    ...(params !== undefined ? { params } : {}),
    ...(o.tools !== undefined ? { tools: o.tools } : {}),
    ...(o.tool_choice !== undefined ? { tool_choice: o.tool_choice } : {}),
  };
}

export function mergeOptions(base: RequestOptions, over: RequestOptions): RequestOptions {
  const merged: RequestOptions = { ...base, ...over };
  if (base.params !== undefined && over.params !== undefined) merged.params = { ...base.params, ...over.params };
  return merged;
}
