import type { AnswerTurn, Part } from "./store.js";

export type AnswerState = "waiting" | "streaming" | "stopping" | "done" | "stopped" | "length" | "error";

const LABELS: Record<AnswerState, string> = {
  waiting: "waiting for a worker…",
  streaming: "streaming",
  stopping: "stopping…",
  done: "done",
  stopped: "stopped",
  length: "cut at max_tokens",
  error: "failed",
};

function h<K extends keyof HTMLElementTagNameMap>(tag: K, cls: string, text?: string): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  el.className = cls;
  if (text !== undefined) el.textContent = text;
  return el;
}

/** Keeps the view at the bottom while new text comes, unless the reader scrolled up. */
export function stickToBottom(log: HTMLElement, update: () => void): void {
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
  update();
  if (atBottom) log.scrollTop = log.scrollHeight;
}

export function questionView(text: string): HTMLElement {
  const el = h("article", "turn question");
  el.append(h("div", "bubble", text));
  return el;
}

/** One answer on the page: text as it streams, steer markers inline, its state and share link. */
export class AnswerView {
  readonly el: HTMLElement;
  readonly #body: HTMLElement;
  readonly #caret: HTMLElement;
  readonly #label: HTMLElement;
  readonly #seq: HTMLElement;
  #last: HTMLElement | undefined;

  constructor(turn: AnswerTurn) {
    this.el = h("article", "turn answer");
    this.el.dataset.rid = turn.rid;
    const bubble = h("div", "bubble");
    if (turn.shared) bubble.append(h("div", "shared-note", `shared response ${turn.rid}`));
    this.#body = h("div", "answer-body");
    this.#caret = h("span", "caret");
    this.#body.append(this.#caret);
    bubble.append(this.#body);
    const meta = h("div", "meta");
    this.#label = h("span", "state-label");
    const share = h("a", "share", "share link");
    share.href = `#r=${turn.rid}`;
    share.target = "_blank";
    share.rel = "noopener";
    share.title = "Open this response in another tab: it replays and follows live";
    this.#seq = h("span", "seq");
    meta.append(this.#label, share, this.#seq);
    this.el.append(bubble, meta);
    for (const p of turn.parts) this.add(p);
    this.seq(turn.seq);
  }

  /** Appends a part: text joins the text before it, a steer gets its own marker. */
  add(part: Part): void {
    if (part.kind === "text") {
      if (this.#last === undefined) {
        this.#last = h("span", "seg");
        this.#body.insertBefore(this.#last, this.#caret);
      }
      this.#last.append(part.text);
    } else {
      const mark = h("span", "steer-mark", part.text);
      mark.title = "steered here: what follows was generated with this instruction";
      this.#body.insertBefore(mark, this.#caret);
      this.#last = undefined;
    }
  }

  seq(seq: number): void {
    this.el.dataset.seq = String(seq);
    this.#seq.textContent = seq > 0 ? `seq ${seq}` : "";
  }

  state(state: AnswerState, detail?: string): void {
    this.el.dataset.state = state;
    this.#label.textContent = detail ? `${LABELS[state]}: ${detail}` : LABELS[state];
    const over = state === "done" || state === "stopped" || state === "length" || state === "error";
    this.#caret.hidden = over;
    if (over && !this.#body.querySelector(".end-mark") && state !== "done") {
      this.#body.append(h("span", `end-mark end-${state}`, state === "stopped" ? "■ stopped" : LABELS[state]));
    }
  }
}
