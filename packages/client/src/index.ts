export { UnbrokenClient, type UnbrokenClientOptions, type GenerateRequest, type SubscribeOptions } from "./client.js";
export { ResponseHandle, type Accepted } from "./response.js";
export { ThreadHandle, type ThreadTurn, type ThreadOptions } from "./thread.js";
export {
  UnbrokenChatTransport,
  uiMessagesToChatMessages,
  webStorageChatStore,
  threadMessages,
  type ThreadMessagesOptions,
  type UnbrokenChatTransportOptions,
  type ChatResponseStore,
  type ChatResponseRecord,
  type StorageLike,
} from "./ai-sdk.js";
export { UnbrokenError, isUnbrokenError, type UnbrokenErrorCode } from "./errors.js";
export type { ConnectionStatus, ConnectionState, TokenSource } from "./connection.js";
export { Backoff, backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff.js";
export type { WebSocketLike, WebSocketConstructor, SocketEventLike } from "./websocket.js";
export type { ResponseEventFrame } from "./frames.js";
export { newRid, isRid, AnswerParts, parseArguments, type PartChange } from "@unbroken/protocol";
export type {
  AnswerPart,
  AnswerToolCall,
  ChatMessage,
  ChatMessageInput,
  GenerationParams,
  ReasoningEffort,
  ReasoningPart,
  TextPart,
  Tool,
  ToolCallPart,
  ToolChoice,
  EndEvent,
  EventFrame,
  EndReason,
  ResponseEvent,
  StartEvent,
  TokenEvent,
  SteerEvent,
  Usage,
} from "@unbroken/protocol";
