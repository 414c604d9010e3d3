// Acknowledgements with socket.io-client 4.8: emitWithAck resolves with the result, or with
// `{error}` on failure (never a timeout), and the `error` event still comes.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startServer,
  tempDatabase,
  seedDemo,
  connectClient,
  connected,
  next,
  tempId,
  assertSavedMessage,
  closeAndSettle,
} from "./harness.mjs";

for (const transports of [["websocket"], ["polling"]]) {
  describe(`acknowledgements over ${transports[0]}`, () => {
    let db;
    let demo;
    let server;
    let alice;
    let bob;
    before(async () => {
      db = tempDatabase();
      demo = seedDemo(db.url);
      server = await startServer({ DATABASE_URL: db.url });
      alice = connectClient(server.url, { transports, auth: { token: demo.aliceToken } });
      bob = connectClient(server.url, { transports, auth: { token: demo.bobToken } });
      await Promise.all([connected(alice), connected(bob)]);
    });
    after(async () => {
      await closeAndSettle([alice, bob]);
      await server?.stop();
      db?.remove();
    });

    test("join_chat acknowledges {ok, connectionId}", async () => {
      const ack = await alice.timeout(2000).emitWithAck("join_chat", demo.connectionId);
      assert.deepEqual(ack, { ok: true, connectionId: demo.connectionId });
      const ack2 = await bob
        .timeout(2000)
        .emitWithAck("join_chat", { connectionId: demo.connectionId });
      assert.deepEqual(ack2, { ok: true, connectionId: demo.connectionId });
    });

    test("send_message with emitWithAck resolves {tempId, savedMessage}", async () => {
      const id = tempId("ack");
      const content = `acked ${id}`;
      const sentEvent = next(alice, "message_sent");
      const received = next(bob, "receive_message");
      const ack = await alice
        .timeout(2000)
        .emitWithAck("send_message", { connectionId: demo.connectionId, content, tempId: id });
      assert.deepEqual(Object.keys(ack).sort(), ["savedMessage", "tempId"]);
      assert.equal(ack.tempId, id);
      assertSavedMessage(ack.savedMessage, {
        connectionId: demo.connectionId,
        from: demo.alice,
        to: demo.bob,
        content,
      });
      // The event carries the same payload as the ack, and bob gets the message.
      const [[event], [message]] = await Promise.all([sentEvent, received]);
      assert.deepEqual(event, ack);
      assert.deepEqual(message, ack.savedMessage);
    });

    test("content is trimmed before it is saved", async () => {
      const id = tempId("trim");
      const ack = await alice.timeout(2000).emitWithAck("send_message", {
        connectionId: demo.connectionId,
        content: "   padded   ",
        tempId: id,
      });
      assert.equal(ack.tempId, id);
      assert.equal(ack.savedMessage.content, "padded");
    });

    test("a send to a bogus connection resolves {error} with the exact message", async () => {
      const errorEvent = next(alice, "error");
      const ack = await alice.timeout(2000).emitWithAck("send_message", {
        connectionId: "no-such-connection",
        content: "hi",
        tempId: tempId("bogus"),
      });
      assert.deepEqual(ack, { error: "Connection is not active." });
      const [err] = await errorEvent;
      assert.deepEqual(err, { message: "Connection is not active." });
      assert.ok(alice.connected, "the socket stays connected");
    });

    test("join_chat of a bogus connection resolves {error}", async () => {
      const errorEvent = next(bob, "error");
      const ack = await bob.timeout(2000).emitWithAck("join_chat", "no-such-connection");
      assert.deepEqual(ack, { error: "Connection is not active." });
      assert.deepEqual((await errorEvent)[0], { message: "Connection is not active." });
    });

    test("empty content resolves {error: 'Message content is required.'}", async () => {
      const errorEvent = next(alice, "error");
      const ack = await alice.timeout(2000).emitWithAck("send_message", {
        connectionId: demo.connectionId,
        content: "   ",
        tempId: tempId("empty"),
      });
      assert.deepEqual(ack, { error: "Message content is required." });
      assert.deepEqual((await errorEvent)[0], { message: "Message content is required." });
    });

    const invalid = [
      ["a number instead of an object", 42],
      ["a string instead of an object", "hello"],
      ["content that is not a string", { connectionId: "c", content: 5, tempId: "t" }],
      ["a tempId that is too long", { connectionId: "c", content: "x", tempId: "t".repeat(129) }],
      ["a bad mediaType", { connectionId: "c", content: "x", tempId: "t", mediaUrl: "https://a.example/x.png", mediaType: "exe" }],
    ];
    for (const [what, payload] of invalid) {
      test(`an invalid payload (${what}) resolves {error: string}`, async () => {
        const errorEvent = next(alice, "error");
        const ack = await alice.timeout(2000).emitWithAck("send_message", payload);
        assert.deepEqual(Object.keys(ack), ["error"]);
        assert.equal(typeof ack.error, "string");
        assert.ok(ack.error.length > 0);
        assert.deepEqual((await errorEvent)[0], { message: ack.error });
        assert.ok(alice.connected);
      });
    }

    test("the socket still works after the errors", async () => {
      const ack = await alice.timeout(2000).emitWithAck("send_message", {
        connectionId: demo.connectionId,
        content: "still here",
        tempId: tempId("after"),
      });
      assert.equal(ack.savedMessage.content, "still here");
    });
  });
}
