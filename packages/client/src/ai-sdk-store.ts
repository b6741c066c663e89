/** Where the AI SDK transport remembers each chat's answer. */

/** What the transport remembers about a chat's latest answer. */
export interface ChatResponseRecord {
  /** The response id of the answer. */
  rid: string;
  /** The last seq the consumer has read; written only with `resume: "continue"`. */
  seq?: number;
  /** The UI message the answer streams into, when it is not `rid` (an agent loop's next answer). */
  messageId?: string;
}

/**
 * Where the transport remembers the answer each chat is streaming, so `reconnectToStream` finds
 * it. The default is an in-memory Map (reconnect works while the page lives); in a browser pass
 * `webStorageChatStore(localStorage)` so it also works after a reload. Synchronous on purpose:
 * `localStorage` is, and the transport needs the answer before its first await.
 */
export interface ChatResponseStore {
  get(chatId: string): ChatResponseRecord | undefined;
  set(chatId: string, value: ChatResponseRecord): void;
  delete(chatId: string): void;
}

/** The part of the Web Storage API (`localStorage`, `sessionStorage`) the store uses. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** A store in `localStorage` or `sessionStorage`: one key per chat, `prefix` + chatId. */
export function webStorageChatStore(storage: StorageLike, prefix = "unbroken:chat:"): ChatResponseStore {
  return {
    get(chatId) {
      const raw = storage.getItem(prefix + chatId);
      if (raw === null) return undefined;
      try {
        const value = JSON.parse(raw) as Partial<ChatResponseRecord> | null;
        if (typeof value?.rid !== "string") return undefined;
        return {
          rid: value.rid,
          ...(typeof value.seq === "number" ? { seq: value.seq } : {}),
          ...(typeof value.messageId === "string" ? { messageId: value.messageId } : {}),
        };
      } catch {
        return undefined;
      }
    },
    set(chatId, value) {
      storage.setItem(prefix + chatId, JSON.stringify(value));
    },
    delete(chatId) {
      storage.removeItem(prefix + chatId);
    },
  };
}

export function memoryChatStore(): ChatResponseStore {
  const map = new Map<string, ChatResponseRecord>();
  return {
    get: (chatId) => map.get(chatId),
    set: (chatId, value) => void map.set(chatId, value),
    delete: (chatId) => void map.delete(chatId),
  };
}
