// A page that runs the AI SDK's own Chat (the logic under useChat, without React) with the
// transport, in Chromium: bundled at test time with esbuild from the installed `ai` and the
// built client, and served by the edge as its WEB_ROOT.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/**
 * The page's script. The chat keeps its messages in sessionStorage on every change (what an app
 * persists), and on load resumes the chat's running answer (`resume: true`). Every call the
 * model makes is run in the page (`onToolCall`), its output added with `addToolOutput`, and
 * `sendAutomaticallyWhen` sends the next request. `window.rendered` holds every assistant
 * message the chat rendered, in order; `window.rids` the rid of each answer this page started.
 */
const ENTRY = `
import { AbstractChat, lastAssistantMessageIsCompleteWithToolCalls } from "ai";
import { UnbrokenClient, UnbrokenChatTransport, webStorageChatStore } from "@unbroken/client";

const KEY = "test-chat-messages";
const fields = Array.from({ length: 16 }, (_, i) => "field_" + i);
const tools = [
  { type: "function", function: { name: "get_time", parameters: { type: "object", properties: { timezone: { type: "string" } }, required: ["timezone"] } } },
  { type: "function", function: { name: "file_report", parameters: { type: "object", properties: Object.fromEntries(fields.map((f) => [f, { type: "string" }])), required: fields } } },
];
const rendered = [];
const calls = [];

class State {
  status = "ready";
  error = undefined;
  #messages;
  constructor(messages) { this.#messages = messages; }
  get messages() { return this.#messages; }
  set messages(m) {
    this.#messages = m;
    sessionStorage.setItem(KEY, JSON.stringify(m));
  }
  pushMessage = (m) => { this.messages = this.messages.concat(structuredClone(m)); };
  popMessage = () => { this.messages = this.messages.slice(0, -1); };
  replaceMessage = (i, m) => {
    const copy = structuredClone(m);
    if (copy.role === "assistant") rendered.push(copy);
    this.messages = [...this.messages.slice(0, i), copy, ...this.messages.slice(i + 1)];
  };
  snapshot = (t) => structuredClone(t);
}

class BrowserChat extends AbstractChat {
  constructor(init) { super({ ...init, state: new State(init.messages ?? []) }); }
}

const client = new UnbrokenClient({ url: (location.protocol === "https:" ? "wss" : "ws") + "://" + location.host + "/v1/ws" });
const kept = webStorageChatStore(sessionStorage);
const rids = [];
// The store, recording each answer's rid (an agent loop's answers are responses of their own).
const store = {
  get: (id) => kept.get(id),
  set: (id, value) => {
    if (!rids.includes(value.rid)) rids.push(value.rid);
    kept.set(id, value);
  },
  delete: (id) => kept.delete(id),
};
const transport = new UnbrokenChatTransport({ client, store, tools });
const saved = JSON.parse(sessionStorage.getItem(KEY) ?? "[]");
const chat = new BrowserChat({
  id: "browser-chat",
  messages: saved,
  transport,
  sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithToolCalls,
  onToolCall: ({ toolCall }) => {
    calls.push({ rid: transport.activeRid("browser-chat"), toolCallId: toolCall.toolCallId, input: toolCall.input });
    void chat.addToolOutput({ tool: toolCall.toolName, toolCallId: toolCall.toolCallId, output: { time: "12:00" } });
  },
});
window.chat = chat;
window.rendered = rendered;
window.calls = calls;
window.rids = rids;
window.send = (text) => void chat.sendMessage({ text });
if (saved.length > 0) void chat.resumeStream();
document.body.dataset.ready = "1";
`;

/** Builds the page into a fresh directory (its WEB_ROOT); `remove` deletes it. */
export async function buildAiSdkPage(): Promise<{ dir: string; remove: () => void }> {
  const dir = mkdtempSync(path.join(tmpdir(), "unbroken-ai-sdk-page-"));
  await build({
    stdin: { contents: ENTRY, resolveDir: root, sourcefile: "ai-sdk-page.js" },
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["chrome100"],
    outfile: path.join(dir, "chat.js"),
    logLevel: "warning",
  });
  writeFileSync(
    path.join(dir, "index.html"),
    '<!doctype html>\n<meta charset="utf-8">\n<link rel="icon" href="data:,">\n<title>AI SDK Chat</title>\n<script type="module" src="chat.js"></script>\n',
  );
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
