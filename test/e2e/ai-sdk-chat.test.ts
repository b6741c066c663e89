import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UnbrokenChatTransport, webStorageChatStore } from "@unbroken/client";
import { NodeChat, aiSdkFixture, endReason, logOf, mapStorage, messageText, until } from "../helpers/ai-sdk.js";
import { textOf } from "../helpers/raw-client.js";
import { within } from "../helpers/within.js";

// The transport under the AI SDK's own Chat (what useChat runs), without React.
describe("AI SDK Chat over the transport", () => {
  const fixture = aiSdkFixture();
  const { newClient } = fixture;

  describe("driven by the AI SDK's own Chat (useChat without React)", () => {
    it("sendMessage: one user and one assistant message, the assistant's text is the log's", async () => {
      const chat = new NodeChat({ id: "c-send", transport: new UnbrokenChatTransport({ client: newClient() }) });
      await chat.sendMessage({ text: "write 40 words about lakes" });
      assert.equal(chat.status, "ready");
      assert.deepEqual(
        chat.messages.map((m) => m.role),
        ["user", "assistant"],
      );
      const log = await logOf(fixture.stack().url, chat.messages[1]!.id);
      assert.equal(messageText(chat.messages[1]), textOf(log));
    });

    it("stop() cancels the generation and keeps the text so far", async () => {
      const client = newClient();
      const chat = new NodeChat({ id: "c-stop", transport: new UnbrokenChatTransport({ client }) });
      const sent = chat.sendMessage({ text: "write 300 words about brakes" });
      await until(() => messageText(chat.messages[1]).length > 20, "some text");
      await chat.stop();
      await sent;
      assert.equal(chat.status, "ready");
      const log = await logOf(fixture.stack().url, chat.messages[1]!.id);
      assert.equal(endReason(log), "cancelled");
      const kept = messageText(chat.messages[1]);
      assert.ok(textOf(log).startsWith(kept));
      // The bound: once the transport has let go of the answer (its handle saw the cancelled
      // end), the same socket replays the ended answer to its end, so anything of it still on
      // the way to this client has arrived by then.
      let replay: ReturnType<typeof client.subscribe> | undefined;
      await until(() => {
        try {
          replay = client.subscribe(chat.messages[1]!.id);
          return true;
        } catch {
          return false; // the transport still holds the answer's live handle
        }
      }, "the transport letting go of the answer");
      await within(replay!.done, "the replay's end");
      assert.equal(messageText(chat.messages[1]), kept, "no text after stop");
    });

    it("resumeStream() after a reload rebuilds the answer in place: one assistant message, no duplicate", async () => {
      const storage = mapStorage();
      const clientA = newClient(fixture.proxy().url());
      const chatA = new NodeChat({
        id: "c-reload",
        transport: new UnbrokenChatTransport({ client: clientA, store: webStorageChatStore(storage) }),
      });
      void chatA.sendMessage({ text: "write 100 words about bridges" });
      await until(() => messageText(chatA.messages[1]).length > 40, "some text");
      fixture.proxy().cut();
      await until(() => messageText(chatA.messages[1]).length > 120, "more text after the cut");
      // The app persisted the messages (with the partial answer); then the page reloads.
      const persisted = structuredClone(chatA.messages);
      fixture.proxy().setDown(true);

      const chatB = new NodeChat({
        id: "c-reload",
        messages: persisted,
        transport: new UnbrokenChatTransport({ client: newClient(), store: webStorageChatStore(storage) }),
      });
      // React's StrictMode mounts twice: the first resume is replaced by the second, and that
      // abort is not a stop.
      void chatB.resumeStream();
      await chatB.resumeStream();
      fixture.proxy().setDown(false);
      assert.equal(chatB.status, "ready");
      assert.deepEqual(
        chatB.messages.map((m) => m.role),
        ["user", "assistant"],
      );
      const rid = chatB.messages[1]!.id;
      const log = await logOf(fixture.stack().url, rid);
      assert.equal(endReason(log), "stop");
      assert.equal(messageText(chatB.messages[1]), textOf(log));
      assert.equal(storage.map.size, 0);
    });

    it("transport.steer() shows up in the message the Chat builds", async () => {
      const transport = new UnbrokenChatTransport({ client: newClient() });
      const chat = new NodeChat({ id: "c-steer", transport });
      const sent = chat.sendMessage({ text: "write 120 words about mountains" });
      await until(() => messageText(chat.messages[1]).length > 30, "some text");
      await transport.steer(chat.id, "mention cats");
      await sent;
      const parts = chat.messages[1]!.parts;
      assert.deepEqual(
        parts.map((p) => p.type),
        ["step-start", "text", "steering-message", "text"],
      );
      const log = await logOf(fixture.stack().url, chat.messages[1]!.id);
      assert.equal(messageText(chat.messages[1]), textOf(log));
    });
  });
});
