// socket.io-client 4.8 over every transport combination: two users chat through Courier.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startServer,
  tempDatabase,
  seedDemo,
  connectClient,
  connected,
  upgraded,
  chatRoundTrip,
  closeAll,
  closeAndSettle,
} from "./harness.mjs";

describe("chat over each transport combination", () => {
  let db;
  let demo;
  let server;
  before(async () => {
    db = tempDatabase();
    demo = seedDemo(db.url);
    server = await startServer({ DATABASE_URL: db.url });
  });
  after(async () => {
    await server?.stop();
    db?.remove();
  });

  const cases = [
    ["default options (polling, then the upgrade)", {}, "websocket"],
    ['transports: ["websocket"]', { transports: ["websocket"] }, "websocket"],
    ['transports: ["polling"]', { transports: ["polling"] }, "polling"],
    ['transports: ["websocket", "polling"]', { transports: ["websocket", "polling"] }, "websocket"],
  ];

  for (const [what, opts, finalTransport] of cases) {
    test(what, { timeout: 30000 }, async () => {
      const alice = connectClient(server.url, { ...opts, auth: { token: demo.aliceToken } });
      const bob = connectClient(server.url, { ...opts, auth: { token: demo.bobToken } });
      try {
        await Promise.all([connected(alice), connected(bob)]);
        if (finalTransport === "websocket") {
          await Promise.all([upgraded(alice), upgraded(bob)]);
        } else {
          // Give a (wrong) upgrade the time to happen before checking it did not.
          await new Promise((r) => setTimeout(r, 300));
        }
        for (const s of [alice, bob]) {
          assert.equal(s.io.engine.transport.name, finalTransport);
        }
        await chatRoundTrip(alice, bob, demo, "transport");
        // And the other way round, still on the same transport.
        await chatRoundTrip(alice, bob, demo, "again");
        for (const s of [alice, bob]) {
          assert.equal(s.io.engine.transport.name, finalTransport);
          assert.ok(s.connected);
        }
      } finally {
        await closeAndSettle([alice, bob]);
      }
    });
  }
});

describe("a server that only allows polling", () => {
  let db;
  let demo;
  let server;
  before(async () => {
    db = tempDatabase();
    demo = seedDemo(db.url);
    server = await startServer({
      DATABASE_URL: db.url,
      COURIER__ENGINEIO__TRANSPORTS: "polling",
    });
  });
  after(async () => {
    await server?.stop();
    db?.remove();
  });

  test("tryAllTransports falls back from websocket to polling and chats", { timeout: 30000 }, async () => {
    const opts = { transports: ["websocket", "polling"], tryAllTransports: true };
    const alice = connectClient(server.url, { ...opts, auth: { token: demo.aliceToken } });
    const bob = connectClient(server.url, { ...opts, auth: { token: demo.bobToken } });
    try {
      await Promise.all([connected(alice, 10000), connected(bob, 10000)]);
      for (const s of [alice, bob]) {
        assert.equal(s.io.engine.transport.name, "polling");
        // The handshake offered no upgrade (engine.io-client keeps the server's list,
        // filtered by the client's transports, in `_upgrades`).
        assert.deepEqual(s.io.engine._upgrades, []);
      }
      await chatRoundTrip(alice, bob, demo, "fallback");
      for (const s of [alice, bob]) assert.equal(s.io.engine.transport.name, "polling");
    } finally {
      await closeAndSettle([alice, bob]);
    }
  });

  test("a websocket-only client is refused", { timeout: 15000 }, async () => {
    const socket = connectClient(server.url, {
      transports: ["websocket"],
      auth: { token: demo.aliceToken },
    });
    try {
      await assert.rejects(connected(socket, 10000), /connect_error/);
    } finally {
      closeAll(socket);
    }
  });
});
