import type { ReasoningEffort } from "@unbroken/client";

const OWED_KEY = "unbroken.owed.v1";
const TOKEN_KEY = "unbroken.token";

/**
 * The tab's cache, in sessionStorage (a reload keeps it, another tab has its own). The thread
 * is the truth of the conversation; the tab keeps only the answers it asked for and still
 * owes tool results to: the page that asked runs the page's tools, and after a reload it must
 * know it did. Each with the reasoning effort it was asked with, for the follow-up generate.
 */
export class OwedRounds {
  readonly #owed: Map<string, ReasoningEffort | null>;

  constructor(readonly storage: Storage = sessionStorage) {
    this.#owed = new Map(load(storage));
  }

  has(rid: string): boolean {
    return this.#owed.has(rid);
  }

  effort(rid: string): ReasoningEffort | undefined {
    return this.#owed.get(rid) ?? undefined;
  }

  add(rid: string, effort: ReasoningEffort | undefined): void {
    this.#owed.set(rid, effort ?? null);
    this.#save();
  }

  delete(rid: string): void {
    if (this.#owed.delete(rid)) this.#save();
  }

  #save(): void {
    // The newest few: an entry is dropped once its answer ended, so this stays small anyway.
    const entries = [...this.#owed].slice(-64);
    try {
      this.storage.setItem(OWED_KEY, JSON.stringify(entries));
    } catch {
      // storage full or disabled: a reload mid tool call then leaves the call unanswered
    }
  }
}

function load(storage: Storage): Array<[string, ReasoningEffort | null]> {
  try {
    const value: unknown = JSON.parse(storage.getItem(OWED_KEY) ?? "[]");
    return Array.isArray(value) ? (value as Array<[string, ReasoningEffort | null]>).filter((e) => typeof e?.[0] === "string") : [];
  } catch {
    return [];
  }
}

/** What `takeToken` found: the token to use, and whether a link's token was turned down. */
export interface TakenToken {
  token: string | undefined;
  /** A link carried another identity than the tab's, and the user kept the tab's. */
  refused: boolean;
}

export const REPLACE_IDENTITY =
  "This link asks this tab to use another identity (its ?token=). Whoever made the link could then read what you ask " +
  "here, and the answers you have would no longer open. Use the link's identity instead of this tab's?";

/**
 * `?token=` (kept for this tab, then removed from the address bar) or the one kept earlier. A
 * link never silently replaces an identity the tab already has: a link made by someone else
 * would make the tab talk as them, and they would read it. The user is asked (`ask`, confirm()
 * on the page); declined, the tab keeps its own. An empty `?token=` asks to drop it, likewise.
 */
export function takeToken(ask: (question: string) => boolean = (q) => confirm(q)): TakenToken {
  const url = new URL(location.href);
  const given = url.searchParams.get("token");
  const kept = sessionStorage.getItem(TOKEN_KEY) ?? undefined;
  let refused = false;
  if (given !== null) {
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
    const asked = given === "" ? undefined : given;
    if (asked !== kept) {
      if (kept === undefined || ask(REPLACE_IDENTITY)) {
        if (asked === undefined) sessionStorage.removeItem(TOKEN_KEY);
        else sessionStorage.setItem(TOKEN_KEY, asked);
      } else refused = true;
    }
  }
  return { token: sessionStorage.getItem(TOKEN_KEY) ?? undefined, refused };
}
