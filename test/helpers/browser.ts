import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** The built demo page (scripts/build-web.mjs), as the edge's WEB_ROOT. */
export const WEB_ROOT = path.join(root, "packages/web/dist");
/** Where tests leave screenshots (gitignored). */
export const RESULTS = path.join(root, "test-results");

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Debian's Chromium (scripts/setup.mjs installs it for `npm test`), or CHROMIUM_BIN. */
export function findChromium(): string {
  const given = process.env.CHROMIUM_BIN;
  const bin = given ? (executable(given) ? given : undefined) : ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find(executable);
  if (bin === undefined) {
    throw new Error(
      `chromium not found${given ? ` (CHROMIUM_BIN=${given} is not executable)` : " at /usr/bin/chromium"}: the browser tests need ` +
        "Debian's chromium. `npm test` installs it when run as root on Debian (apt-get install chromium); " +
        "otherwise install it yourself or set CHROMIUM_BIN.",
    );
  }
  if (!existsSync(path.join(WEB_ROOT, "index.html"))) {
    throw new Error(`${WEB_ROOT}/index.html is missing: build the page (npm run build, or node scripts/build-web.mjs)`);
  }
  return bin;
}

/** Flags for a closed network: no first-run, sync, component or background fetches, no QUIC. */
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export interface Chromium {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Headless Chromium with a fresh profile directory, removed again by `close`. */
export async function launchChromium(): Promise<Chromium> {
  const executablePath = findChromium();
  const userDataDir = mkdtempSync(path.join(tmpdir(), "unbroken-chromium-"));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: ARGS,
      viewport: { width: 1000, height: 760 },
      timeout: 60_000,
    });
  } catch (err) {
    rmSync(userDataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    context,
    close: async () => {
      await context.close().catch(() => undefined);
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/** A new tab; page errors are collected so a test can show them when it fails. */
export async function openTab(c: Chromium, url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await c.context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (err) => errors.push(String(err)));
  page.on("console", (msg) => {
    if (msg.type() === "error") errors.push(msg.text());
  });
  await page.goto(url);
  return { page, errors };
}

export function screenshotPath(name: string): string {
  mkdirSync(RESULTS, { recursive: true });
  return path.join(RESULTS, name);
}

/** What the page shows of an answer: its text without the steer markers, its state, rid, seq. */
export interface AnswerOnPage {
  rid: string;
  state: string;
  seq: number;
  text: string;
  steers: string[];
  endMarks: string[];
  /** Text after the end marker, which must stay empty. */
  afterEnd: string;
}

/** The n-th answer (default: the last) as the page shows it. */
export async function answerOnPage(page: Page, index = -1): Promise<AnswerOnPage | undefined> {
  return page.evaluate((i) => {
    const all = Array.from(document.querySelectorAll<HTMLElement>("#log .turn.answer"));
    const el = all[i < 0 ? all.length + i : i];
    if (!el) return undefined;
    const body = el.querySelector(".answer-body") as HTMLElement;
    const end = body.querySelector(".end-mark");
    let afterEnd = "";
    for (let n = end?.nextSibling; n; n = n.nextSibling) afterEnd += n.textContent ?? "";
    return {
      rid: el.dataset.rid ?? "",
      state: el.dataset.state ?? "",
      seq: Number(el.dataset.seq ?? 0),
      text: Array.from(body.querySelectorAll(".seg"), (s) => s.textContent ?? "").join(""),
      steers: Array.from(body.querySelectorAll(".steer-mark"), (s) => s.textContent ?? ""),
      endMarks: Array.from(body.querySelectorAll(".end-mark"), (s) => s.textContent ?? ""),
      afterEnd,
    };
  }, index);
}

/** Polls the page until `check` holds for the last answer (generous; no assertion on time). */
export async function untilAnswer(
  page: Page,
  check: (a: AnswerOnPage) => boolean,
  label: string,
  timeoutMs = 60_000,
): Promise<AnswerOnPage> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const a = await answerOnPage(page);
    if (a && check(a)) return a;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}; last seen: ${JSON.stringify(a)?.slice(0, 400)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const ENDED = new Set(["done", "stopped", "length", "error"]);

/** Types a question into the page and sends it; resolves with the new answer's rid. */
export async function ask(page: Page, question: string): Promise<string> {
  const before = await page.locator("#log .turn.answer").count();
  await page.fill("#prompt", question);
  await page.click("#send");
  await page.locator("#log .turn.answer").nth(before).waitFor();
  return (await page.locator("#log .turn.answer").nth(before).getAttribute("data-rid")) as string;
}
