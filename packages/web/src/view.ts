import type { Answer, Part, ToolPart } from "./model.js";

export type AnswerState = "waiting" | "streaming" | "stopping" | "done" | "called" | "stopped" | "length" | "error" | "expired";

const LABELS: Record<AnswerState, string> = {
  waiting: "waiting for a worker…",
  streaming: "streaming",
  stopping: "stopping…",
  done: "done",
  called: "called a tool",
  stopped: "stopped",
  length: "cut at max_tokens",
  error: "failed",
  expired: "expired: its events are past retention",
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

/**
 * One answer on the page: its parts as they stream (text, a collapsible "thinking" part, steer
 * markers, tool-call cards), its state and share link. Model output is always set as text.
 */
export class AnswerView {
  readonly el: HTMLElement;
  readonly #body: HTMLElement;
  readonly #caret: HTMLElement;
  readonly #label: HTMLElement;
  readonly #seq: HTMLElement;
  /** The element of each of the turn's parts, by index. */
  readonly #els: HTMLElement[] = [];

  constructor(turn: Answer) {
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
    for (const [i, p] of turn.parts.entries()) this.show(i, p);
    this.seq(turn.seq);
  }

  /** Shows part `index` as it is now: creates its element the first time, then updates it. */
  show(index: number, part: Part): void {
    let el = this.#els[index];
    if (el === undefined) {
      el = create(part);
      this.#els[index] = el;
      this.#body.insertBefore(el, this.#caret);
    }
    if (part.kind === "tool") fillCard(el, part);
    else if (part.kind === "reasoning") (el.querySelector(".thinking-text") as HTMLElement).textContent = part.text;
    else el.textContent = part.text;
  }

  seq(seq: number): void {
    this.el.dataset.seq = String(seq);
    this.#seq.textContent = seq > 0 ? `seq ${seq}` : "";
  }

  state(state: AnswerState, detail?: string): void {
    this.el.dataset.state = state;
    this.#label.textContent = detail ? `${LABELS[state]}: ${detail}` : LABELS[state];
    const over = state !== "waiting" && state !== "streaming" && state !== "stopping";
    this.#caret.hidden = over;
    if (over && !this.#body.querySelector(".end-mark") && state !== "done" && state !== "called") {
      this.#body.append(
        h("span", `end-mark end-${state}`, state === "stopped" ? "■ stopped" : state === "expired" ? "expired" : LABELS[state]),
      );
    }
  }
}

function create(part: Part): HTMLElement {
  switch (part.kind) {
    case "text":
      return h("span", "seg");
    case "steer": {
      const mark = h("span", "steer-mark");
      mark.title = "steered here: what follows was generated with this instruction";
      return mark;
    }
    case "reasoning": {
      const details = h("details", "thinking");
      details.append(h("summary", "", "thinking"), h("div", "thinking-text"));
      return details;
    }
    case "tool": {
      const card = h("div", "tool-card");
      const head = h("div", "tool-head");
      head.append(h("span", "tool-icon", "⚙"), h("span", "tool-name"), h("span", "tool-state"));
      card.append(head, h("pre", "tool-args"), h("pre", "tool-result"));
      return card;
    }
  }
}

const TOOL_STATES: Record<string, string> = {
  streaming: "calling…",
  done: "called",
  dropped: "dropped",
  result: "result",
};

/** A tool call's card: the function's name, its arguments as they stream, then the page's result. */
function fillCard(card: HTMLElement, part: ToolPart): void {
  const state = part.result !== undefined ? "result" : part.state;
  card.dataset.state = state;
  card.dataset.id = part.id;
  (card.querySelector(".tool-name") as HTMLElement).textContent = part.name;
  (card.querySelector(".tool-state") as HTMLElement).textContent = TOOL_STATES[state] ?? state;
  (card.querySelector(".tool-args") as HTMLElement).textContent = part.args;
  const result = card.querySelector(".tool-result") as HTMLElement;
  result.textContent = part.result ?? "";
  result.hidden = part.result === undefined;
}
