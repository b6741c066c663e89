// The browser's own EventSource, unchanged, on the edge's Server-Sent Events (docs/http.md): it
// reads the log to its end, reconnects by itself once the stream closes, and the edge's 204 for
// a reconnect from the end it already has is what stops it (a stream that stays open, or one
// that closes again at once, would have it reconnecting for as long as the page lives).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { WEB_ROOT, launchChromium, type Chromium } from "../helpers/browser.js";
import { range } from "../helpers/raw-client.js";
import { Stack } from "../helpers/stack.js";

interface Seen {
  ids: number[];
  kinds: string[];
  opens: number;
  state: number;
}

describe("EventSource in Chromium", () => {
  let stack: Stack;
  let chromium: Chromium;
  let base: string;

  before(async () => {
    chromium = await launchChromium(); // first: without Chromium, fail at once with what to install
    stack = await Stack.start({ edgeEnv: { WEB_ROOT }, workerEnv: { SCRIPTED_TPS: "200" } });
    base = `http://127.0.0.1:${stack.edges[0]!.port}`;
  });
  after(async () => {
    await chromium?.close();
    await stack?.stop();
  });

  it("reads every event once, reconnects after the end, gets 204 and stops (readyState CLOSED)", async () => {
    const created = await fetch(`${base}/v1/generate`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "write 30 words for an EventSource", params: { max_tokens: 30 } }),
    });
    const { rid } = (await created.json()) as { rid: string };
    const page = await chromium.context.newPage();
    try {
      await page.goto(`${base}/`);
      // The bound: 20 s, several times Chromium's 3 s reconnection delay.
      const seen = await page.evaluate(
        (url) =>
          new Promise<Seen>((resolve) => {
            const es = new EventSource(url);
            const out: Seen = { ids: [], kinds: [], opens: 0, state: 0 };
            es.onopen = () => {
              out.opens++;
            };
            es.onmessage = (m) => {
              out.ids.push(Number(m.lastEventId));
              out.kinds.push((JSON.parse(m.data) as { event: { kind: string } }).event.kind);
            };
            const began = Date.now();
            const check = setInterval(() => {
              if (es.readyState !== EventSource.CLOSED && Date.now() - began < 20_000) return;
              clearInterval(check);
              out.state = es.readyState;
              es.close();
              resolve(out);
            }, 50);
          }),
        `/v1/responses/${rid}/events`,
      );
      assert.equal(seen.state, 2, "the EventSource stopped by itself (CLOSED), not still reconnecting");
      assert.deepEqual(seen.ids, range(1, seen.ids.length), "every event once, in order");
      assert.equal(seen.kinds.at(-1), "end");
      assert.equal(seen.opens, 1, "one stream: the reconnect after the end was answered 204, not opened");
    } finally {
      await page.close();
    }
  });
});
