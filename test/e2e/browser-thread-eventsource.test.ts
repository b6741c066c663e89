// The browser's own EventSource on a thread's turns (docs/http.md, "Threads"): it replays the
// thread, follows it live, and when the connection is cut under it (a relay in front of the edge
// drops every connection, as a network switch would) reconnects by itself with Last-Event-ID and
// continues exactly after the last turn it saw: the turns written meanwhile once each, none again.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { Page } from "playwright-core";
import { WEB_ROOT, launchChromium, type Chromium } from "../helpers/browser.js";
import { CuttableProxy } from "../helpers/proxy.js";
import { range } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";

/** What the page's EventSource saw: each message's lastEventId and its turn's seq, and its opens. */
interface Seen {
  ids: number[];
  seqs: number[];
  contents: string[];
  opens: number;
  errors: number;
}

type Watched = Window & { seen: Seen };

describe("EventSource on a thread in Chromium", () => {
  let stack: Stack;
  let chromium: Chromium;
  let relay: CuttableProxy;
  let edge: string;

  before(async () => {
    chromium = await launchChromium(); // first: without Chromium, fail at once with what to install
    // Auth off: an EventSource cannot send an Authorization header.
    stack = await Stack.start({ edgeEnv: { WEB_ROOT }, workerEnv: { SCRIPTED_TPS: "200" } });
    edge = `http://127.0.0.1:${stack.edges[0]!.port}`;
    relay = await CuttableProxy.start(stack.edges[0]!.port);
  });
  after(async () => {
    await chromium?.close();
    await relay?.close();
    await stack?.stop();
  });

  /** One turn in `thread`, generated beside the page (straight to the edge, not through the relay). */
  async function turn(thread: string, content: string): Promise<void> {
    const res = await fetch(`${edge}/v1/generate`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ thread, messages: [{ role: "user", content }], params: { max_tokens: 1 } }),
    });
    assert.equal(res.status, 202, await res.text());
  }

  const seen = (page: Page): Promise<Seen> => page.evaluate(() => (window as unknown as Watched).seen);

  /** Polls the page until its EventSource has seen turn `seq` (generous; no assertion on time). */
  async function untilSeq(page: Page, seq: number, label: string): Promise<Seen> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const s = await seen(page);
      if (s.seqs.includes(seq)) return s;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}; seen: ${JSON.stringify(s)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it("replays and follows a thread live; after a cut it reconnects with Last-Event-ID and goes on without a repeat", async () => {
    const thread = randomBytes(12).toString("base64url");
    await turn(thread, "turn 1");
    await turn(thread, "turn 2");
    const page = await chromium.context.newPage();
    try {
      // The page's origin is the relay's, so its EventSource goes through the relay too.
      await page.goto(`http://127.0.0.1:${relay.port}/`);
      await page.evaluate((url) => {
        const out: Seen = { ids: [], seqs: [], contents: [], opens: 0, errors: 0 };
        (window as unknown as Watched).seen = out;
        const es = new EventSource(url);
        es.onopen = () => {
          out.opens++;
        };
        es.onerror = () => {
          out.errors++;
        };
        es.onmessage = (m) => {
          const frame = JSON.parse(m.data) as { type: string; seq: number; messages: Array<{ content: string }> };
          out.ids.push(Number(m.lastEventId));
          out.seqs.push(frame.type === "turn" ? frame.seq : -1);
          out.contents.push(frame.messages[0]?.content ?? "");
        };
      }, `/v1/threads/${thread}/turns`);
      await untilSeq(page, 2, "the stored turns");
      await turn(thread, "turn 3");
      await untilSeq(page, 3, "a turn generated while the page follows");

      relay.cut();
      // Written while the page is cut off (the EventSource waits a few seconds to reconnect),
      // then one after it is back.
      await turn(thread, "turn 4");
      await turn(thread, "turn 5");
      await untilSeq(page, 5, "the turns written during the cut, after the reconnect");
      await turn(thread, "turn 6");
      const s = await untilSeq(page, 6, "a live turn after the reconnect");

      assert.ok(s.errors >= 1, "the cut reached the EventSource");
      assert.equal(s.opens, 2, "one reconnect");
      assert.deepEqual(s.seqs, range(1, 6), "every turn once, in order");
      assert.deepEqual(s.ids, s.seqs, "each message's id is its turn's seq");
      assert.deepEqual(
        s.contents,
        range(1, 6).map((n) => `turn ${n}`),
      );
    } finally {
      await page.close();
    }
  });
});
