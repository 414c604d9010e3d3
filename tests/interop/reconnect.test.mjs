// The client reconnects by itself to a restarted Courier (same port, same database) and its
// auth callback is asked for a token again.
import { test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import {
  startServer,
  tempDatabase,
  seedDemo,
  token,
  connected,
  next,
  tempId,
  assertSavedMessage,
  closeAll,
} from "./harness.mjs";

async function sendOnce(socket, demo, label) {
  const id = tempId(label);
  const content = `${label} ${id}`;
  const sent = next(socket, "message_sent");
  socket.emit("send_message", { connectionId: demo.connectionId, content, tempId: id });
  const [payload] = await sent;
  assert.equal(payload.tempId, id);
  assertSavedMessage(payload.savedMessage, {
    connectionId: demo.connectionId,
    from: demo.alice,
    to: demo.bob,
    content,
  });
  return payload.savedMessage;
}

/** Starts courier on `port`, retrying a few times while the port is still being released. */
async function startOnPort(port, env) {
  let lastError;
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      return await startServer({ ...env, PORT: String(port) });
    } catch (e) {
      lastError = e;
      if (!/cannot listen|in use/i.test(String(e.message))) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw lastError;
}

for (const transports of [["websocket"], ["polling", "websocket"]]) {
  test(`reconnects to a restarted server (transports ${transports.join(", ")})`, { timeout: 60000 }, async (t) => {
    const db = tempDatabase();
    // A graceful shutdown waits up to server.shutdown_timeout for open WebSockets (10 s by
    // default); 2 s keeps this test short.
    const env = { DATABASE_URL: db.url, COURIER__SERVER__SHUTDOWN_TIMEOUT: "2" };
    let server;
    let socket;
    try {
      const demo = seedDemo(db.url);
      server = await startServer(env);
      const port = server.port;

      let authCalls = 0;
      socket = io(server.url, {
        forceNew: true,
        transports,
        reconnectionDelay: 100,
        reconnectionDelayMax: 300,
        randomizationFactor: 0,
        timeout: 5000,
        auth: (cb) => {
          authCalls += 1;
          cb({ token: token(demo.alice, 60) });
        },
      });

      await connected(socket, 10000);
      if (transports.length > 1) {
        // Let the upgrade finish so the restart hits the WebSocket.
        if (socket.io.engine.transport.name !== "websocket") await next(socket.io.engine, "upgrade");
      }
      assert.equal(authCalls, 1);
      const firstId = socket.id;
      const ack = await socket.timeout(3000).emitWithAck("join_chat", demo.connectionId);
      assert.deepEqual(ack, { ok: true, connectionId: demo.connectionId });
      const before = await sendOnce(socket, demo, "before");

      const stopping = Date.now();
      const disconnected = next(socket, "disconnect", 20000).then(([reason]) => ({
        reason,
        after: Date.now() - stopping,
      }));
      const stopMs = await server.stop();
      const { reason, after: disconnectMs } = await disconnected;
      assert.ok(["transport close", "transport error", "ping timeout"].includes(reason), reason);
      t.diagnostic(`server exited ${stopMs} ms after SIGTERM; client saw "${reason}" after ${disconnectMs} ms`);

      const reconnected = next(socket.io, "reconnect", 20000);
      server = await startOnPort(port, env);
      assert.equal(server.port, port);
      const [attempts] = await reconnected;
      t.diagnostic(`reconnected after ${attempts} attempt(s)`);
      await connected(socket, 5000);
      assert.ok(socket.connected);
      assert.notEqual(socket.id, firstId, "a new session");
      assert.ok(authCalls >= 2, `the auth callback was called again (${authCalls} calls)`);

      const after = await sendOnce(socket, demo, "after");
      assert.notEqual(after.id, before.id);
      assert.ok(Date.parse(after.createdAt) >= Date.parse(before.createdAt));
    } finally {
      closeAll(socket);
      await server?.stop();
      db.remove();
    }
  });
}
