import { UnbrokenClient, isRid, newRid, type ResponseEventFrame, type ResponseHandle } from "@unbroken/client";
import { AnswerFold } from "./fold.js";
import { ConnectionIndicator } from "./status.js";
import { flushTurns, loadTurns, recentMessages, saveTurns, takeToken, type AnswerTurn, type ToolPart, type Turn } from "./store.js";
import { TOOLS, runTool } from "./tools.js";
import { Tunnel } from "./tunnel.js";
import { AnswerView, questionView, stickToBottom, type AnswerState } from "./view.js";

const TUNNEL_MS = 4000;
/** Tool rounds in a row after one question, before the page stops sending results back. */
const MAX_TOOL_ROUNDS = 4;
/** Codes after which the answer cannot come back: recorded, so a reload does not retry. */
const FINAL_CODES = new Set(["not_found", "forbidden", "gone", "bad_request"]);

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

interface Live {
  turn: AnswerTurn;
  view: AnswerView;
  handle: ResponseHandle;
  fold: AnswerFold;
}

let turns: Turn[] = loadTurns();
const live = new Map<string, Live>();
const views = new Map<string, AnswerView>();

function say(text: string): void {
  notice.textContent = text;
  notice.hidden = text === "";
}

/** The answer Stop and Steer act on: the last one on the page, while it runs. */
function active(): Live | undefined {
  const last = turns[turns.length - 1];
  return last?.role === "assistant" ? live.get(last.rid) : undefined;
}

function updateControls(): void {
  const a = active();
  steerForm.hidden = a === undefined;
  askForm.hidden = a !== undefined;
  stopButton.disabled = a?.view.el.dataset.state === "stopping";
  document.body.classList.toggle("empty", turns.length === 0);
}

function endState(reason: string): AnswerState {
  if (reason === "cancelled") return "stopped";
  if (reason === "length") return "length";
  if (reason === "tool_calls") return "called";
  return reason === "stop" ? "done" : "error";
}

function onEvent(l: Live, frame: ResponseEventFrame): void {
  indicator.event();
  const { turn, view } = l;
  const ev = frame.event;
  stickToBottom(log, () => {
    const changed = l.fold.apply(ev);
    for (const i of changed) view.show(i, turn.parts[i] as AnswerTurn["parts"][number]);
    if (changed.length > 0 && view.el.dataset.state === "waiting") view.state("streaming");
    if (ev.kind === "start") {
      view.state("streaming");
    } else if (ev.kind === "end") {
      const detail = ev.error ? `${ev.error.code}: ${ev.error.message}` : undefined;
      turn.end = detail === undefined ? { reason: ev.reason } : { reason: ev.reason, detail };
      view.state(endState(ev.reason), detail);
    }
    turn.seq = frame.seq;
    view.seq(frame.seq);
  });
  saveTurns(turns);
  if (ev.kind === "end" && ev.reason === "tool_calls") runTools(turn);
}

/**
 * The answer stopped to wait for its tool calls: the page runs them, shows each result on its
 * card, and sends the results back in a new generate, whose answer goes on below. Also run
 * after a reload that found such an answer last, without a follow-up yet.
 */
function runTools(turn: AnswerTurn): void {
  if (turns[turns.length - 1] !== turn || turn.shared) return;
  const view = views.get(turn.rid);
  turn.parts.forEach((p, i) => {
    if (p.kind !== "tool" || p.state !== "done" || p.result !== undefined) return;
    p.result = runTool(p.name, parseInput(p));
    view?.show(i, p);
  });
  if (toolRounds() > MAX_TOOL_ROUNDS) {
    say("The model keeps calling tools: stopped sending results back.");
    saveTurns(turns);
    return;
  }
  const next: AnswerTurn = { role: "assistant", rid: newRid(), parts: [], seq: 0, accepted: false, request: recentMessages(turns) };
  if (turn.effort !== undefined) next.effort = turn.effort;
  turns.push(next);
  saveTurns(turns);
  flushTurns(); // a reload right now re-sends it with the same rid
  show(next);
}

function parseInput(p: ToolPart): unknown {
  try {
    return JSON.parse(p.args) as unknown;
  } catch {
    return undefined;
  }
}

/** How many answers in a row, since the last question, ended calling tools. */
function toolRounds(): number {
  let n = 0;
  for (let i = turns.length - 1; i >= 0; i--) {
    const t = turns[i] as Turn;
    if (t.role === "user") break;
    if (t.end?.reason === "tool_calls") n++;
  }
  return n;
}

/** Streams an answer into its view: a new generate, or a resume/replay of one the log holds. */
function follow(turn: AnswerTurn, view: AnswerView): void {
  // Same rid: never a second inference. The page's tools are offered in every generate.
  const params = turn.effort !== undefined ? { params: { reasoning_effort: turn.effort } } : {};
  const handle =
    !turn.accepted && turn.request !== undefined
      ? client.generate({ rid: turn.rid, messages: turn.request, tools: TOOLS, ...params })
      : client.subscribe(turn.rid, { after: turn.seq });
  const l: Live = { turn, view, handle, fold: new AnswerFold(turn.parts) };
  live.set(turn.rid, l);
  view.state(turn.seq > 0 ? "streaming" : "waiting");
  handle.onEvent((frame) => onEvent(l, frame));
  void handle.accepted.then(
    () => {
      turn.accepted = true;
      delete turn.request;
      saveTurns(turns);
    },
    () => undefined,
  );
  handle.done
    .catch((err: { code?: string; message?: string }) => {
      if (err.code === "closed") return;
      view.state("error", `${err.code ?? "error"}: ${err.message ?? String(err)}`);
      if (FINAL_CODES.has(err.code ?? "")) turn.end = { reason: "error", detail: err.message ?? "" };
      saveTurns(turns);
    })
    .finally(() => {
      if (live.get(turn.rid) === l) live.delete(turn.rid);
      updateControls();
    });
  updateControls();
}

function show(turn: Turn): void {
  stickToBottom(log, () => {
    if (turn.role === "user") return void log.append(questionView(turn.text));
    const view = new AnswerView(turn);
    views.set(turn.rid, view);
    log.append(view.el);
    if (turn.end) view.state(endState(turn.end.reason), turn.end.detail);
    else follow(turn, view);
    if (turn.end?.reason === "tool_calls") runTools(turn);
  });
}

function ask(question: string): void {
  const messages = recentMessages(turns, question);
  const answer: AnswerTurn = { role: "assistant", rid: newRid(), parts: [], seq: 0, accepted: false, request: messages };
  if (thinkToggle.checked) answer.effort = "low";
  turns.push({ role: "user", text: question }, answer);
  saveTurns(turns);
  flushTurns(); // a reload right now re-sends it with the same rid
  show(turns[turns.length - 2] as Turn);
  show(answer);
}

/** `#r=<rid>`: replay that response and follow it live (a link from another tab). */
function openLink(): void {
  const rid = new URLSearchParams(location.hash.slice(1)).get("r");
  if (rid === null || !isRid(rid)) return;
  const known = views.get(rid);
  if (known) {
    known.el.scrollIntoView({ block: "nearest" });
    return;
  }
  const turn: AnswerTurn = { role: "assistant", rid, parts: [], seq: 0, accepted: true, shared: true };
  turns.push(turn);
  saveTurns(turns);
  show(turn);
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
  const a = active();
  if (a === undefined) return;
  a.view.state("stopping");
  updateControls();
  a.handle.cancel().catch((err: Error) => say(`Stop failed: ${err.message}`));
});

steerForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const a = active();
  const text = steerText.value.trim();
  if (a === undefined || text === "") return;
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

$("new").addEventListener("click", () => {
  for (const l of live.values()) void l.handle.unsubscribe(); // leaves; the answers go on in the log
  live.clear();
  views.clear();
  turns = [];
  saveTurns(turns);
  flushTurns();
  log.replaceChildren(intro);
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  say("");
  updateControls();
});

window.addEventListener("hashchange", openLink);
window.addEventListener("pagehide", flushTurns);

for (const t of [...turns]) show(t); // a copy: showing an answer that called tools may add its follow-up
openLink();
updateControls();
if (tokenRefused) say("The link's token was not used: this tab keeps its own identity. Open the link in a new tab to use it.");
