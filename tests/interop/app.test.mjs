// The app's browser hook (skill-swap/hooks/useChatSocket.ts), as it drives socket.io-client:
// transports ["websocket", "polling"], a static auth {token}, emits without acknowledgements,
// two sockets per tab (the layout's unread-count provider and the messages page). Every event
// the hook listens for arrives, and nothing reaches a user outside the pairs it is for.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startServer,
  tempDatabase,
  seedDemo,
  token,
  connectClient,
  connected,
  next,
  closeAndSettle,
  tempId,
  assertSavedMessage,
} from "./harness.mjs";

/** A socket as the app opens it. */
function appSocket(url, tok) {
  return connectClient(url, { transports: ["websocket", "polling"], auth: { token: tok } });
}

/** Collects every event a socket receives, by name. */
function recorder(socket) {
  const seen = [];
  socket.onAny((name, ...args) => seen.push({ name, args }));
  return seen;
}

/** Waits until `pred` holds (checked every 20 ms), at most `ms`. */
async function until(pred, ms = 5000, what = "condition") {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${what}: not within ${ms} ms`);
}

describe("the app's hook against Courier", () => {
  let db;
  let demo;
  let server;
  before(async () => {
    db = tempDatabase();
    demo = seedDemo(db.url);
    server = await startServer({
      DATABASE_URL: db.url,
      COURIER__PRESENCE__OFFLINE_GRACE: "300",
    });
  });
  after(async () => {
    await server?.stop();
    db?.remove();
  });

  test("presence, messages, read receipts, notices and a call, two sockets per tab", { timeout: 30000 }, async () => {
    const stranger = appSocket(server.url, token("stranger-user"));
    const strangerSeen = recorder(stranger);
    // Bob's tab: the layout's socket (never joins or sends) and the messages page.
    const bobLayout = appSocket(server.url, demo.bobToken);
    const bobPage = appSocket(server.url, demo.bobToken);
    const layoutSeen = recorder(bobLayout);
    await Promise.all([connected(stranger), connected(bobLayout), connected(bobPage)]);

    // Alice's tab opens: Bob's sockets learn she is online.
    const online = Promise.all([
      next(bobLayout, "user_online_status"),
      next(bobPage, "user_online_status"),
    ]);
    const aliceLayout = appSocket(server.url, demo.aliceToken);
    const alicePage = appSocket(server.url, demo.aliceToken);
    const aliceLayoutSeen = recorder(aliceLayout);
    await Promise.all([connected(aliceLayout), connected(alicePage)]);
    for (const [status] of await online) {
      assert.equal(status.userId, demo.alice);
      assert.equal(status.isOnline, true);
      assert.match(status.lastSeenAt, /Z$/);
    }

    // The messages page joins and sends (no ack); the peer's two sockets receive it, the
    // sender's own layout socket does not.
    alicePage.emit("join_chat", demo.connectionId);
    bobPage.emit("join_chat", demo.connectionId);
    const tid = tempId("app");
    const received = Promise.all([next(bobLayout, "receive_message"), next(bobPage, "receive_message")]);
    const sent = next(alicePage, "message_sent");
    alicePage.emit("send_message", { connectionId: demo.connectionId, content: "hi from the app", tempId: tid });
    const [{ tempId: echoed, savedMessage }] = await sent;
    assert.equal(echoed, tid);
    assertSavedMessage(savedMessage, {
      connectionId: demo.connectionId,
      from: demo.alice,
      to: demo.bob,
      content: "hi from the app",
    });
    for (const [msg] of await received) assert.deepEqual(msg, savedMessage);

    // Bob's page marks it read, as the app does on display: both of Alice's sockets hear.
    const read = Promise.all([next(aliceLayout, "message_read"), next(alicePage, "message_read")]);
    bobPage.emit("mark_message_read", { messageId: savedMessage.id, connectionId: demo.connectionId });
    for (const [r] of await read) {
      assert.deepEqual(r, { messageId: savedMessage.id, connectionId: demo.connectionId, readBy: demo.bob });
    }

    // Deletion and clearing notices reach the other member's sockets.
    const deleted = next(bobLayout, "messages_deleted");
    alicePage.emit("delete_messages", { connectionId: demo.connectionId, messageIds: [savedMessage.id], deletedBy: demo.alice });
    assert.deepEqual((await deleted)[0], {
      connectionId: demo.connectionId,
      messageIds: [savedMessage.id],
      deletedBy: demo.alice,
    });
    const cleared = next(alicePage, "conversation_cleared");
    bobPage.emit("clear_conversation", { connectionId: demo.connectionId });
    assert.deepEqual((await cleared)[0], { connectionId: demo.connectionId, clearedBy: demo.bob });

    // A call: ring, accept, ICE, end; the LiveKit room name travels as connectionId.
    const roomName = `call-${demo.connectionId}-${Date.now()}`;
    const incoming = next(bobLayout, "call:incoming");
    alicePage.emit("call:initiate", { recipientId: demo.bob, callType: "video", roomName });
    const [ring] = await incoming;
    assert.equal(ring.callerId, demo.alice);
    assert.equal(ring.callerName, "Alice");
    assert.equal(ring.connectionId, roomName);
    const accepted = next(alicePage, "call:accepted");
    bobPage.emit("call:answer", { callerId: demo.alice, connectionId: roomName });
    assert.equal((await accepted)[0].participantId, demo.bob);
    const ice = next(bobPage, "call:ice-candidate");
    alicePage.emit("call:ice-candidate", { to: demo.bob, connectionId: roomName, candidate: { candidate: "c", sdpMid: "0" } });
    assert.deepEqual((await ice)[0], { from: demo.alice, connectionId: roomName, candidate: { candidate: "c", sdpMid: "0" } });
    const ended = next(bobPage, "call:ended");
    const endedBack = next(alicePage, "call:ended");
    alicePage.emit("call:end", { participantId: demo.bob, connectionId: roomName });
    assert.equal((await ended)[0].participantId, demo.alice);
    assert.equal((await endedBack)[0].participantId, demo.bob);

    // The hook's heartbeat is taken without a word back.
    alicePage.emit("heartbeat");

    // Alice's tab closes: after the grace period, Bob learns she is offline.
    const offline = next(bobLayout, "user_offline_status", 5000);
    await closeAndSettle([aliceLayout, alicePage]);
    const [gone] = await offline;
    assert.equal(gone.userId, demo.alice);
    assert.equal(gone.isOnline, false);

    // Alice's layout socket never saw her own message as a received one.
    assert.ok(!aliceLayoutSeen.some((e) => e.name === "receive_message"));
    // Nothing about Alice and Bob reached the stranger, and no error anywhere.
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(strangerSeen, []);
    assert.ok(!layoutSeen.some((e) => e.name === "error"), JSON.stringify(layoutSeen));
    await until(() => layoutSeen.some((e) => e.name === "user_offline_status"));
    await closeAndSettle([stranger, bobLayout, bobPage]);
  });
});
