import { UnbrokenClient, isRid, newRid, type ChatMessage, type ReasoningEffort, type ResponseHandle } from "@unbroken/client";
import { Conversation, type ConversationHooks, type Exchange } from "./conversation.js";
import type { ToolPart } from "./model.js";
import { ConnectionIndicator } from "./status.js";
import { OwedRounds, takeToken } from "./store.js";
import { TOOLS, runTool } from "./tools.js";
import { Tunnel } from "./tunnel.js";

const TUNNEL_MS = 4000;
/** Tool rounds in a row after one question, before the page stops sending results back. */
const MAX_TOOL_ROUNDS = 4;

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;
const log = $("log");
const askForm = $<HTMLFormElement>("ask");
const prompt = $<HTMLTextAreaElement>("prompt");
const steerForm = $<HTMLFormElement>("steer");
const steerText = $<HTMLInputElement>("steer-text");
const stopButton = $<HTMLButtonElement>("stop");
const tunnelButton = $<HTMLButtonElement>("tunnel");
const thinkToggle = $<HTMLInputElement>("think");
const notice = $("notice");
const intro = log.querySelector(".intro") as HTMLElement;

const indicator = new ConnectionIndicator($("conn"));
const tunnel = new Tunnel();
const { token, refused: tokenRefused } = takeToken();
const client = new UnbrokenClient({
  url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/ws`,
  createSocket: tunnel.createSocket,
  ...(token !== undefined ? { token } : {}),
  reconnect: { maxDelayMs: 2000 },
  onStatus: (s) => indicator.status(s),
});
/** The answers this tab asked for and still owes tool results to (kept across a reload). */
const owed = new OwedRounds();

const hooks: ConversationHooks = {
  changed: () => updateControls(),
  ended: (c, ex) => ended(c, ex),
  event: () => indicator.event(),
  say,
};
let conversation = follow(threadFromAddress(true));

function say(text: string): void {
  notice.textContent = text;
  notice.hidden = text === "";
}

function updateControls(): void {
  const a = conversation.active();
  steerForm.hidden = a === undefined;
  askForm.hidden = a !== undefined;
  stopButton.disabled = a?.view.el.dataset.state === "stopping";
  document.body.classList.toggle("empty", conversation.exchanges.length === 0);
}

/** Sends `next` (a question, or tool results) as a new turn of the thread. */
function generate(next: ChatMessage[], rid: string, effort: ReasoningEffort | undefined): ResponseHandle | undefined {
  const c = conversation;
  const params = effort !== undefined ? { params: { reasoning_effort: effort } } : {};
  let handle: ResponseHandle;
  try {
    // The page's tools are offered in every generate.
    handle = client.generate({ rid, messages: c.history(next), thread: c.id, tools: TOOLS, ...params });
  } catch (err) {
    say(`Not sent: ${(err as Error).message}`);
    return undefined;
  }
  owed.add(rid, effort);
  c.addOwn(rid, next, handle);
  return handle;
}

function ask(question: string): void {
  generate([{ role: "user", content: question }], newRid(), thinkToggle.checked ? "low" : undefined);
}

/**
 * An answer ended: if this tab asked for it and it called tools, the tab answers the calls.
 * Either way the tab owes it nothing more once that follow-up is accepted.
 */
function ended(c: Conversation, ex: Exchange): void {
  if (c !== conversation || !owed.has(ex.rid)) return;
  const followUp = ex.answer.end?.reason === "tool_calls" ? answerCalls(ex) : undefined;
  if (followUp === undefined) owed.delete(ex.rid);
  else
    void followUp.accepted.then(
      () => owed.delete(ex.rid),
      () => undefined,
    );
}

/**
 * The rid of the generate that answers `rid`'s calls: the same in every try, so a reload (or
 * a second try) re-sends the same generate, which the edge takes once.
 */
function followUpRid(rid: string): string {
  const next = `${rid}-t`;
  return isRid(next) ? next : newRid();
}

/**
 * The answer stopped to wait for its tool calls: the page runs them, shows each result on its
 * card, and sends the results back in a new generate (a turn of tool messages), whose answer
 * goes on below. Only the tab that asked does this, also after a reload; another page of the
 * thread shows the results when their turn comes. Undefined when nothing was sent.
 */
function answerCalls(ex: Exchange): ResponseHandle | undefined {
  const c = conversation;
  const nextRid = followUpRid(ex.rid);
  // Already answered (its turn is here), or the thread went on without it.
  if (c.get(nextRid) !== undefined || c.exchanges.at(-1) !== ex) return undefined;
  if (c.toolRounds() > MAX_TOOL_ROUNDS) {
    say("The model keeps calling tools: stopped sending results back.");
    return undefined;
  }
  const results: ChatMessage[] = [];
  ex.answer.parts.forEach((p, i) => {
    if (p.kind !== "tool" || p.state !== "done") return;
    p.result ??= runTool(p.name, parseInput(p));
    ex.view.show(i, p);
    results.push({ role: "tool", tool_call_id: p.id, content: p.result });
  });
  return results.length === 0 ? undefined : generate(results, nextRid, owed.effort(ex.rid));
}

function parseInput(p: ToolPart): unknown {
  try {
    return JSON.parse(p.args) as unknown;
  } catch {
    return undefined;
  }
}

/** What the address names: `#t=<thread>`, and `r=<rid>` for a response shared by its link. */
function address(): { thread?: string; rid?: string } {
  const params = new URLSearchParams(location.hash.slice(1));
  const thread = params.get("t");
  const rid = params.get("r");
  return { ...(thread !== null && isRid(thread) ? { thread } : {}), ...(rid !== null && isRid(rid) ? { rid } : {}) };
}

function addressOf(thread: string, rid?: string): string {
  return `${location.pathname}${location.search}#t=${thread}${rid !== undefined ? `&r=${rid}` : ""}`;
}

/**
 * The address's thread; none given, the one shown (on hashchange) or a new one (on load), put
 * in the address so a reload or another device opens the same conversation.
 */
function threadFromAddress(load: boolean): string {
  const { thread, rid } = address();
  if (thread !== undefined) return thread;
  const id = load ? newRid() : conversation.id;
  history.replaceState(null, "", addressOf(id, rid));
  return id;
}

/** A conversation of `thread`, on an empty log, following it. */
function follow(thread: string): Conversation {
  log.replaceChildren(intro);
  say("");
  const c = new Conversation(client, thread, log, hooks);
  c.follow();
  return c;
}

/** Shows `thread`, leaving the one shown (its running answers go on in their logs). */
function open(thread: string): void {
  conversation.close();
  conversation = follow(thread);
  updateControls();
}

/** `#t=<thread>` switches the conversation; `r=<rid>` shows that response (its share link). */
function fromAddress(): void {
  const thread = threadFromAddress(false);
  if (conversation.id !== thread) open(thread);
  const { rid } = address();
  if (rid !== undefined) conversation.showShared(rid);
}

askForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const question = prompt.value.trim();
  if (question === "") return;
  prompt.value = "";
  say("");
  ask(question);
});
prompt.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    askForm.requestSubmit();
  }
});

stopButton.addEventListener("click", () => {
  const a = conversation.active();
  if (a?.handle === undefined) return;
  a.view.state("stopping");
  updateControls();
  a.handle.cancel().catch((err: Error) => say(`Stop failed: ${err.message}`));
});

steerForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const a = conversation.active();
  const text = steerText.value.trim();
  if (a?.handle === undefined || text === "") return;
  steerText.value = "";
  say("");
  // The marker shows when the steer event comes back in the log, at the spot it took effect.
  a.handle.steer(text).catch((err: Error) => say(`Steer failed: ${err.message}`));
});

tunnelButton.addEventListener("click", () => tunnel.enter(TUNNEL_MS));
tunnel.onChange = (until) => {
  tunnelButton.disabled = until > 0;
  const tick = (): void => {
    const left = Math.ceil((until - Date.now()) / 1000);
    if (!tunnel.inside || left <= 0) {
      tunnelButton.textContent = "Tunnel";
      indicator.note = "";
      return;
    }
    tunnelButton.textContent = `In a tunnel… ${left}s`;
    indicator.note = "no network";
    setTimeout(tick, 250);
  };
  tick();
};

// A new thread, in a new history entry: Back returns to the conversation before.
$("new").addEventListener("click", () => {
  const thread = newRid();
  history.pushState(null, "", addressOf(thread));
  open(thread);
});

window.addEventListener("hashchange", fromAddress);

const shared = address().rid;
if (shared !== undefined) conversation.showShared(shared);
updateControls();
if (tokenRefused) say("The link's token was not used: this tab keeps its own identity. Open the link in a new tab to use it.");
