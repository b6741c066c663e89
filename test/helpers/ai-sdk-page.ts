// A page that renders the AI SDK's `useChat` (@ai-sdk/react, React 19) with the transport, in
// Chromium: bundled at test time with esbuild from the installed packages and the built client,
// and served by the edge as its WEB_ROOT.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { UIMessage } from "ai";
import { build } from "esbuild";
import type { Page } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/**
 * The page's script: a React app whose one component renders `useChat`, in StrictMode (so its
 * effects mount twice, as in an app's development build). It keeps the chat's messages in
 * sessionStorage after every render (what an app persists) and passes them back as the initial
 * messages, and `resume: true` reattaches to the chat's running answer after a reload. Every call
 * the model makes is run in the page (`onToolCall`), its output added with `addToolOutput`, and
 * `sendAutomaticallyWhen` sends the next request. `window.chat` holds the status and messages
 * React last rendered; `window.rendered` every assistant message React rendered since the page
 * loaded (the saved one it starts with aside), in order;
 * `window.rids` the rid of each answer this page started. With `#t=<thread>` the chat is that
 * thread and the page starts from `transport.threadMessages` (`window.loaded`).
 */
const ENTRY = `
import { StrictMode, useEffect } from "react";
import { createRoot } from "react-dom/client";
import { useChat } from "@ai-sdk/react";
import { lastAssistantMessageIsCompleteWithToolCalls } from "ai";
import { UnbrokenClient, UnbrokenChatTransport, webStorageChatStore } from "@unbroken/client";

const KEY = "test-chat-messages";
// "#t=<thread>": the chat is that thread, its conversation loaded from the edge (a device that
// never saw it); otherwise the one chat of the page, its messages kept in sessionStorage.
const THREAD = new URLSearchParams(location.hash.slice(1)).get("t");
const CHAT_ID = THREAD ?? "browser-chat";
const fields = Array.from({ length: 16 }, (_, i) => "field_" + i);
const tools = [
  { type: "function", function: { name: "get_time", parameters: { type: "object", properties: { timezone: { type: "string" } }, required: ["timezone"] } } },
  { type: "function", function: { name: "file_report", parameters: { type: "object", properties: Object.fromEntries(fields.map((f) => [f, { type: "string" }])), required: fields } } },
];
const rendered = [];
const calls = [];

// Once per page, not per render (the client's docs say so): the store and the rids outlive renders.
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
const saved = THREAD ? await transport.threadMessages(THREAD) : JSON.parse(sessionStorage.getItem(KEY) ?? "[]");

function Part({ part }) {
  if (part.type === "text") return <p className="text">{part.text}</p>;
  if (part.type.startsWith("tool-")) return <pre className="tool" data-state={part.state}>{part.type.slice(5)}({JSON.stringify(part.input ?? null)})</pre>;
  return null;
}

function App() {
  const chat = useChat({
    id: CHAT_ID,
    messages: saved,
    transport,
    resume: true,
    sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithToolCalls,
    onToolCall: ({ toolCall }) => {
      calls.push({ rid: transport.activeRid(CHAT_ID), toolCallId: toolCall.toolCallId, input: toolCall.input });
      void chat.addToolOutput({ tool: toolCall.toolName, toolCallId: toolCall.toolCallId, output: { time: "12:00" } });
    },
  });
  const { messages, status, sendMessage } = chat;
  // After each commit: what React rendered is what the test reads, and what the app persists.
  useEffect(() => {
    sessionStorage.setItem(KEY, JSON.stringify(messages));
    if (messages === saved) return; // what the page loaded with, not what this chat streamed
    const last = messages.at(-1);
    if (last?.role === "assistant") rendered.push(structuredClone(last));
  }, [messages]);
  useEffect(() => {
    window.chat = { status, messages };
  }, [status, messages]);
  useEffect(() => {
    window.send = (text) => void sendMessage({ text });
    document.body.dataset.ready = "1";
  }, [sendMessage]);
  return (
    <main data-status={status}>
      {messages.map((m) => (
        <section key={m.id} className={m.role}>
          {m.parts.map((part, i) => <Part key={i} part={part} />)}
        </section>
      ))}
    </main>
  );
}

window.loaded = structuredClone(saved);
window.rendered = rendered;
window.calls = calls;
window.rids = rids;
createRoot(document.getElementById("root")).render(<StrictMode><App /></StrictMode>);
`;

/** Builds the page into a fresh directory (its WEB_ROOT); `remove` deletes it. */
export async function buildAiSdkPage(): Promise<{ dir: string; remove: () => void }> {
  const dir = mkdtempSync(path.join(tmpdir(), "unbroken-ai-sdk-page-"));
  await build({
    stdin: { contents: ENTRY, resolveDir: root, sourcefile: "ai-sdk-page.jsx", loader: "jsx" },
    jsx: "automatic",
    // React's development build: StrictMode mounts effects twice, and its warnings are console
    // errors, which the test counts.
    define: { "process.env.NODE_ENV": '"development"' },
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["chrome100"],
    outfile: path.join(dir, "chat.js"),
    logLevel: "warning",
  });
  writeFileSync(
    path.join(dir, "index.html"),
    '<!doctype html>\n<meta charset="utf-8">\n<link rel="icon" href="data:,">\n<title>AI SDK useChat</title>\n<div id="root"></div>\n<script type="module" src="chat.js"></script>\n',
  );
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** What the page exposes on `window` (see the page's script above), as last rendered. */
export interface AiSdkPageState {
  status: string;
  messages: UIMessage[];
  /** The messages the page started from (`transport.threadMessages` with `#t=`). */
  loaded: UIMessage[];
  rendered: UIMessage[];
  calls: { rid: string; toolCallId: string; input: unknown }[];
  rids: string[];
}

export function pageState(page: Page): Promise<AiSdkPageState> {
  return page.evaluate(() => {
    const w = window as unknown as { chat: { status: string; messages: unknown[] } } & Record<
      "loaded" | "rendered" | "calls" | "rids",
      unknown
    >;
    return JSON.parse(
      JSON.stringify({
        status: w.chat.status,
        messages: w.chat.messages,
        loaded: w.loaded,
        rendered: w.rendered,
        calls: w.calls,
        rids: w.rids,
      }),
    ) as AiSdkPageState;
  });
}

/** Polls the page until `check` holds; fails naming `label`, with the messages last seen. */
export async function untilState(
  page: Page,
  check: (s: AiSdkPageState) => boolean,
  label: string,
  timeoutMs = 60_000,
): Promise<AiSdkPageState> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await pageState(page);
    if (check(s)) return s;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}; last seen: ${JSON.stringify(s.messages).slice(0, 600)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The text of the assistant messages' text parts as the page's DOM shows it. */
export const shownText = (page: Page): Promise<string> =>
  page.evaluate(() =>
    Array.from(document.querySelectorAll("section.assistant p.text"))
      .map((p) => p.textContent)
      .join(""),
  );
