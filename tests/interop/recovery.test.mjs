// Connection state recovery and exactly-once sends with the real socket.io-client: a client
// that loses its transport gets what it missed once, in order (`socket.recovered`), also
// after a restart and on another node; a retried send makes one row.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { spawn, execFileSync } from "node:child_process";
import { io } from "socket.io-client";
import {
  startServer,
  tempDatabase,
  seedDemo,
  token,
  connected,
  next,
  tempId,
  closeAll,
} from "./harness.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts courier on `port` again, retrying while the port is still being released. */
async function restartOn(port, env) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await startServer({ ...env, PORT: String(port) });
    } catch (e) {
      if (attempt >= 10 || !/cannot listen|in use/i.test(String(e.message))) throw e;
      await sleep(200);
    }
  }
}

/** Presence settles fast in these tests. */
const FAST = { COURIER__PRESENCE__OFFLINE_GRACE: "200" };

/** A client as the app makes it (`transports: ["websocket", "polling"]`, static auth). */
function appClient(url, tok, opts = {}) {
  return io(url, {
    forceNew: true,
    transports: ["websocket", "polling"],
    auth: { token: tok },
    reconnectionDelay: 300,
    randomizationFactor: 0,
    ...opts,
  });
}

/** Every `receive_message` of `socket`, as [message, offset]. */
function collect(socket, event = "receive_message") {
  const got = [];
  socket.on(event, (...args) => got.push(args));
  return got;
}

async function until(what, cond, ms = 10000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Sends `n` messages from `socket` (acknowledged one by one); their saved messages. */
async function send(socket, connectionId, label, n) {
  const saved = [];
  for (let i = 0; i < n; i++) {
    const ack = await socket
      .timeout(10000)
      .emitWithAck("send_message", { connectionId, content: `${label} ${i}`, tempId: tempId(label) });
    assert.ok(ack.savedMessage, `send ${i} acknowledged: ${JSON.stringify(ack)}`);
    saved.push(ack.savedMessage);
  }
  return saved;
}

/** Drops the client's transport (as a network loss does) and waits until it reconnected. */
async function dropAndReconnect(socket, meanwhile = async () => {}) {
  const reconnected = next(socket, "connect", 15000);
  socket.io.engine.close();
  await meanwhile();
  await reconnected;
}

/** A TCP proxy, the load balancer in front of two nodes: `target` can change. */
async function proxy(target) {
  const state = { target, sockets: new Set() };
  const server = net.createServer((client) => {
    const upstream = net.connect(state.target, "127.0.0.1");
    state.sockets.add(client);
    state.sockets.add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      state.sockets.delete(client);
      state.sockets.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    switchTo(port) {
      state.target = port;
      for (const s of state.sockets) s.destroy();
    },
    close() {
      for (const s of state.sockets) s.destroy();
      server.close();
    },
  };
}

/** A PostgreSQL database of its own, or null without TEST_DATABASE_URL's server. */
function tempPostgres() {
  const base = process.env.TEST_DATABASE_URL;
  if (!base) return null;
  const name = `courier_interop_${process.pid}_${Date.now()}`;
  const admin = (sql) => execFileSync("psql", [base, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], { encoding: "utf8" });
  admin(`CREATE DATABASE ${name}`);
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    psql: (sql) => execFileSync("psql", [url.toString(), "-v", "ON_ERROR_STOP=1", "-qAtc", sql], { encoding: "utf8" }).trim(),
    remove() {
      admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

for (const backend of ["sqlite", "postgres"]) {
  test(`missed messages are replayed once, in order, and recovered is true (${backend})`, { timeout: 60000 }, async (t) => {
  const db = backend === "sqlite" ? tempDatabase() : tempPostgres();
  if (!db) return t.skip("TEST_DATABASE_URL is not set");
  const server = await startServer({ DATABASE_URL: db.url, ...FAST });
  const demo = seedDemo(db.url);
  const alice = appClient(server.url, demo.aliceToken);
  const bob = appClient(server.url, demo.bobToken, { reconnectionDelay: 1500 });
  try {
    await Promise.all([connected(alice), connected(bob)]);
    assert.equal(typeof bob._pid, "string", "CONNECT answered with a pid");
    assert.equal(bob.recovered, false);
    const got = collect(bob);
    const before = await send(alice, demo.connectionId, "before", 2);
    await until("the live messages", () => got.length === 2);
    assert.equal(typeof got[1][1], "string", "receive_message carries an offset last");
    let missed;
    await dropAndReconnect(bob, async () => {
      missed = await send(alice, demo.connectionId, "missed", 5);
    });
    assert.equal(bob.recovered, true, "the client recovered");
    const after = await send(alice, demo.connectionId, "after", 2);
    await until("every message", () => got.length >= 9);
    await sleep(200);
    assert.deepEqual(
      got.map(([m]) => m.id),
      [...before, ...missed, ...after].map((m) => m.id),
      "every message once, in order",
    );
    assert.deepEqual(got[2][0], missed[0], "replayed as the saved message");
    // Read receipts of alice's messages that she missed are replayed to her too.
    const receipts = collect(alice, "message_read");
    let marked;
    await dropAndReconnect(alice, async () => {
      const ack = await bob.timeout(5000).emitWithAck("mark_message_read", {
        messageId: after[0].id,
        connectionId: demo.connectionId,
      });
      marked = ack;
    });
    assert.equal(alice.recovered, true);
    await until("the receipt", () => receipts.length === 1);
    assert.deepEqual(receipts[0][0], marked);
    assert.equal(typeof receipts[0][1], "string");
  } finally {
    closeAll(alice, bob);
    await server.stop();
    db.remove();
  }
  });
}

for (const backend of ["sqlite", "postgres"]) {
  test(`the replay races live sends: no gap, no duplicate (${backend})`, { timeout: 60000 }, async (t) => {
  const db = backend === "sqlite" ? tempDatabase() : tempPostgres();
  if (!db) return t.skip("TEST_DATABASE_URL is not set");
  const server = await startServer({ DATABASE_URL: db.url, ...FAST });
  const demo = seedDemo(db.url);
  const alice = appClient(server.url, demo.aliceToken);
  const bob = appClient(server.url, demo.bobToken, { reconnectionDelay: 100 });
  try {
    await Promise.all([connected(alice), connected(bob)]);
    const got = collect(bob);
    const acks = [];
    const total = 300;
    for (let i = 0; i < total; i++) {
      acks.push(
        alice.timeout(20000).emitWithAck("send_message", {
          connectionId: demo.connectionId,
          content: `race ${i}`,
          tempId: tempId("race"),
        }),
      );
      if (i % 50 === 25) bob.io.engine.close();
      await sleep(3);
    }
    const saved = (await Promise.all(acks)).map((a) => a.savedMessage);
    await until("every message", () => got.length >= total, 20000);
    await sleep(300);
    assert.equal(bob.recovered, true);
    assert.deepEqual(
      got.map(([m]) => m.id),
      saved.map((m) => m.id),
      "bob got every message once, in the order sent",
    );
  } finally {
    closeAll(alice, bob);
    await server.stop();
    db.remove();
  }
  });
}

for (const backend of ["sqlite", "postgres"]) {
  test(`recovery works after a restart and on another node (${backend})`, { timeout: 90000 }, async (t) => {
  const db = backend === "sqlite" ? tempDatabase() : tempPostgres();
  if (!db) return t.skip("TEST_DATABASE_URL is not set");
  const env = { DATABASE_URL: db.url, COURIER__SERVER__SHUTDOWN_TIMEOUT: "2", ...FAST };
  const demo = seedDemo(db.url);
  let a = await startServer(env);
  const b = await startServer(env);
  const lb = await proxy(a.port);
  const alice = appClient(b.url, demo.aliceToken);
  const bob = appClient(lb.url, demo.bobToken, { reconnectionDelay: 2000 });
  try {
    await Promise.all([connected(alice), connected(bob)]);
    const got = collect(bob);
    const first = await send(alice, demo.connectionId, "first", 1);
    // Node a is restarted: bob's connection drops; alice (on b) writes meanwhile.
    let missed;
    const back = next(bob, "connect", 20000);
    await a.stop();
    missed = await send(alice, demo.connectionId, "restart", 3);
    a = await restartOn(a.port, env);
    await back;
    assert.equal(bob.recovered, true, "recovered after the restart");
    // bob moves to node b (the balancer sends him elsewhere); alice writes meanwhile.
    let moved;
    const again = next(bob, "connect", 20000);
    lb.switchTo(b.port);
    moved = await send(alice, demo.connectionId, "moved", 3);
    await again;
    assert.equal(bob.recovered, true, "recovered on another node");
    await until("every message", () => got.length >= 7);
    await sleep(200);
    assert.deepEqual(
      got.map(([m]) => m.id),
      [...first, ...missed, ...moved].map((m) => m.id),
    );
  } finally {
    closeAll(alice, bob);
    lb.close();
    await Promise.all([a.stop(), b.stop()]);
    db.remove();
  }
  });
}

test("forged, foreign and offset-less pids; too much to replay", { timeout: 60000 }, async () => {
  const db = tempDatabase();
  const server = await startServer({ DATABASE_URL: db.url, COURIER__RECOVERY__MAX_REPLAY: "3", ...FAST });
  const demo = seedDemo(db.url);
  const alice = appClient(server.url, demo.aliceToken);
  const bob = appClient(server.url, demo.bobToken, { reconnectionDelay: 1000 });
  try {
    await Promise.all([connected(alice), connected(bob)]);
    const got = collect(bob);

    // A pid and no offset (bob never received an event): recovered from the pid's start.
    assert.equal(bob._lastOffset, undefined);
    let missed;
    await dropAndReconnect(bob, async () => {
      missed = await send(alice, demo.connectionId, "nooffset", 2);
    });
    assert.equal(bob.recovered, true);
    await until("the replay", () => got.length === 2);
    assert.deepEqual(got.map(([m]) => m.id), missed.map((m) => m.id));

    // A forged pid: an ordinary fresh connection, nothing replayed.
    const pid = bob._pid;
    bob._pid = pid.slice(0, -2) + (pid.endsWith("A") ? "BB" : "AA");
    await dropAndReconnect(bob, async () => {
      await send(alice, demo.connectionId, "forged", 1);
    });
    assert.equal(bob.recovered, false, "a forged pid does not recover");
    assert.notEqual(bob._pid, pid);
    await sleep(300);
    assert.equal(got.length, 2, "nothing replayed for a forged pid");

    // Alice's pid in bob's socket: bob connects fresh and gets none of alice's stream.
    await send(bob, demo.connectionId, "to-alice", 1); // in alice's stream, not bob's
    bob._pid = alice._pid;
    bob._lastOffset = alice._lastOffset;
    await dropAndReconnect(bob, async () => {
      await send(bob, demo.connectionId, "queued", 0);
    });
    assert.equal(bob.recovered, false, "another user's pid does not recover");
    await sleep(300);
    assert.equal(got.length, 2, "bob got nothing of alice's stream");

    // More missed than recovery.max_replay (3): not recovered, nothing replayed. (No
    // offset: the one bob holds is of alice's stream.)
    bob._lastOffset = undefined;
    await dropAndReconnect(bob, async () => {
      await send(alice, demo.connectionId, "toomany", 5);
    });
    assert.equal(bob.recovered, false, "too much to replay");
    await sleep(300);
    assert.equal(got.length, 2, "nothing replayed past max_replay");
  } finally {
    closeAll(alice, bob);
    await server.stop();
    db.remove();
  }
});

test("a pid stands in for an expired token only within max_disconnection (the app's options)", { timeout: 60000 }, async () => {
  const db = tempDatabase();
  const server = await startServer({
    DATABASE_URL: db.url,
    COURIER__RECOVERY__MAX_DISCONNECTION: "2000",
    ...FAST,
  });
  const demo = seedDemo(db.url);
  const short = token(demo.bob, 1);
  const alice = appClient(server.url, demo.aliceToken);
  // Exactly the app's options: a static token, both transports, default reconnection.
  const bob = io(server.url, { forceNew: true, auth: { token: short }, transports: ["websocket", "polling"] });
  try {
    await Promise.all([connected(alice), connected(bob)]);
    const got = collect(bob);
    await sleep(2100); // the token has expired
    let missed;
    await dropAndReconnect(bob, async () => {
      missed = await send(alice, demo.connectionId, "expired", 2);
    });
    assert.equal(bob.recovered, true, "the pid stood in for the expired token");
    await until("the replay", () => got.length === 2);
    assert.deepEqual(got.map(([m]) => m.id), missed.map((m) => m.id));

    // Without a pid the expired token is refused, as ever.
    const fresh = io(server.url, { forceNew: true, reconnection: false, auth: { token: short } });
    const [err] = await next(fresh, "connect_error");
    assert.equal(err.message, "Authentication error: Invalid token");
    fresh.close();

    // Gone longer than max_disconnection (2 s): refused.
    bob.io.reconnectionDelay(4000);
    bob.io.reconnectionDelayMax(4000);
    bob.io.randomizationFactor(0);
    const refused = next(bob, "connect_error", 15000);
    bob.io.engine.close();
    const [late] = await refused;
    assert.equal(late.message, "Authentication error: Invalid token");
  } finally {
    closeAll(alice, bob);
    await server.stop();
    db.remove();
  }
});

/** A client that connects (once, no reconnection) presenting `pid` and `offset` as a
 * socket.io-client that lost its transport does, with `tok` as its static token. */
function presenting(url, tok, pid, offset) {
  const socket = io(url, {
    forceNew: true,
    autoConnect: false,
    reconnection: false,
    transports: ["websocket"],
    auth: { token: tok },
  });
  socket._pid = pid;
  socket._lastOffset = offset;
  socket.connect();
  return socket;
}

/** Sets the user's "lastHeartbeatAt" to now, as the heartbeats of their other sockets do. */
function seenNow(db, user) {
  execFileSync("sqlite3", [db.file, `UPDATE users SET "lastHeartbeatAt" = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE id = '${user}'`]);
}

test("an expired token's pid works only until max_disconnection after its own session's disconnect, whatever the user's other sockets do", { timeout: 60000 }, async () => {
  const db = tempDatabase();
  const server = await startServer({
    DATABASE_URL: db.url,
    COURIER__RECOVERY__MAX_DISCONNECTION: "1500",
    COURIER__PRESENCE__HEARTBEAT_FLUSH: "200",
    ...FAST,
  });
  const demo = seedDemo(db.url);
  const short = token(demo.bob, 1);
  const victim = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"], auth: { token: short } });
  // The same user stays online on another socket all along, sending heartbeats.
  const other = appClient(server.url, demo.bobToken);
  let stolen;
  try {
    await Promise.all([connected(victim), connected(other)]);
    const beat = setInterval(() => other.emit("heartbeat"), 200);
    try {
      stolen = { pid: victim._pid, offset: victim._lastOffset };
      await sleep(1100); // the token has expired
      victim.close();
      await sleep(2000); // the victim's session is gone longer than max_disconnection
      seenNow(db, demo.bob);
      const thief = presenting(server.url, short, stolen.pid, stolen.offset);
      const [err] = await next(thief, "connect_error");
      assert.equal(err.message, "Authentication error: Invalid token", "the stolen pid is refused");
      thief.close();
    } finally {
      clearInterval(beat);
    }
  } finally {
    closeAll(victim, other);
    await server.stop();
    db.remove();
  }
});

test("a new connection with the pid of a live session takes it over: recovered, the old transport closed", { timeout: 60000 }, async () => {
  const db = tempDatabase();
  const server = await startServer({ DATABASE_URL: db.url, COURIER__RECOVERY__MAX_DISCONNECTION: "1500", ...FAST });
  const demo = seedDemo(db.url);
  const short = token(demo.bob, 1);
  const alice = appClient(server.url, demo.aliceToken);
  const old = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"], auth: { token: short } });
  let moved;
  try {
    await Promise.all([connected(alice), connected(old)]);
    await send(alice, demo.connectionId, "before", 1);
    await until("the old socket's offset", () => typeof old._lastOffset === "string");
    await sleep(1100); // the token has expired; the old transport is still up
    const closed = next(old, "disconnect", 10000);
    // The same client on a new network: its pid, its offset, its expired token.
    moved = presenting(server.url, short, old._pid, old._lastOffset);
    await connected(moved);
    assert.equal(moved.recovered, true, "the live session's state recovers into the new one");
    assert.equal(moved._pid, old._pid, "the pid stays the same");
    const [reason] = await closed;
    assert.equal(reason, "transport close", "the old transport is closed");
    const got = collect(moved);
    const [m] = await send(alice, demo.connectionId, "after", 1);
    await until("the message on the new socket", () => got.length === 1);
    assert.equal(got[0][0].id, m.id);
  } finally {
    closeAll(alice, old, moved);
    await server.stop();
    db.remove();
  }
});

test("after a graceful restart the app's expired token and pid recover within max_disconnection, not after", { timeout: 90000 }, async () => {
  const db = tempDatabase();
  const env = { DATABASE_URL: db.url, COURIER__RECOVERY__MAX_DISCONNECTION: "4000", COURIER__SERVER__SHUTDOWN_TIMEOUT: "2", ...FAST };
  let server = await startServer(env);
  const demo = seedDemo(db.url);
  const short = token(demo.bob, 1);
  const alice = appClient(server.url, demo.aliceToken);
  // Exactly the app's options: a static token, both transports, default reconnection.
  const bob = io(server.url, { forceNew: true, auth: { token: short }, transports: ["websocket", "polling"], reconnectionDelay: 300, randomizationFactor: 0 });
  try {
    await connected(bob);
    await sleep(1100); // the token has expired
    const back = next(bob, "connect", 20000);
    await server.stop();
    server = await restartOn(server.port, env);
    await back;
    assert.equal(bob.recovered, true, "recovered after the restart with the expired token");
    // Down longer than max_disconnection: the pid no longer stands in.
    bob.io.reconnection(false);
    const down = next(bob, "disconnect", 20000);
    await server.stop();
    await down;
    await sleep(4500);
    server = await restartOn(server.port, env);
    const late = presenting(server.url, short, bob._pid, bob._lastOffset);
    const [err] = await next(late, "connect_error");
    assert.equal(err.message, "Authentication error: Invalid token");
    late.close();
  } finally {
    closeAll(alice, bob);
    await server.stop();
    db.remove();
  }
});

/** Holds a write lock on `messages` for `ms`: resolves once it is held. */
async function holdLock(db, ms) {
  const proc = db.psql
    ? spawn("psql", [db.url, "-qAt"])
    : spawn("sqlite3", ["-cmd", ".timeout 10000", db.file]);
  const lock = db.psql ? "BEGIN; LOCK TABLE messages IN EXCLUSIVE MODE;" : "BEGIN IMMEDIATE;";
  proc.stdin.write(`${lock}\nSELECT 'locked';\n`);
  await new Promise((resolve) => proc.stdout.once("data", resolve));
  proc.released = new Promise((r) => proc.once("exit", r));
  setTimeout(() => proc.stdin.end("COMMIT;\n"), ms);
  return proc;
}

function countRows(db, tempLabel) {
  const sql = `SELECT COUNT(*) FROM messages WHERE content LIKE '${tempLabel}%'`;
  if (db.psql) return Number(db.psql(sql));
  return Number(execFileSync("sqlite3", [db.file, sql], { encoding: "utf8" }).trim());
}

for (const backend of ["sqlite", "postgres"]) {
  test(`exactly-once sends by tempId (${backend})`, { timeout: 90000 }, async (t) => {
    const db = backend === "sqlite" ? tempDatabase() : tempPostgres();
    if (!db) return t.skip("TEST_DATABASE_URL is not set");
    const env = { DATABASE_URL: db.url, COURIER__SERVER__SHUTDOWN_TIMEOUT: "2", ...FAST };
    const demo = seedDemo(db.url);
    let a = await startServer(env);
    const b = await startServer(env);
    // The client sends again what is not acknowledged within 300 ms (up to 10 times).
    const alice = appClient(a.url, demo.aliceToken, { ackTimeout: 300, retries: 10 });
    const bob = appClient(a.url, demo.bobToken);
    try {
      await Promise.all([connected(alice), connected(bob)]);
      const got = collect(bob);

      // The database holds the write for 1.5 s: the client sends it again meanwhile.
      const lock = await holdLock(db, 1500);
      const payload = { connectionId: demo.connectionId, content: "once 1", tempId: tempId("once") };
      const resent = [];
      alice.io.engine.on("packetCreate", (p) => {
        if (p.type === "message" && String(p.data).includes(payload.tempId)) resent.push(p);
      });
      const ack = await alice.emitWithAck("send_message", payload);
      await lock.released;
      assert.ok(ack.savedMessage, `acknowledged with the message: ${JSON.stringify(ack)}`);
      assert.ok(resent.length >= 2, `the client sent it ${resent.length} times`);
      await sleep(300);
      assert.equal(countRows(db, "once 1"), 1, "one row");
      assert.deepEqual(got.map(([m]) => m.id), [ack.savedMessage.id], "one receive_message");

      // The same send after a reconnect: the original message, nothing new.
      await dropAndReconnect(alice);
      const again = await alice.timeout(5000).emitWithAck("send_message", payload);
      assert.deepEqual(again.savedMessage, ack.savedMessage);

      // After a restart of the node.
      await a.stop();
      a = await restartOn(a.port, env);
      await until("alice back", () => alice.connected, 15000);
      const restarted = await alice.timeout(5000).emitWithAck("send_message", payload);
      assert.deepEqual(restarted.savedMessage, ack.savedMessage);

      // On another node.
      const elsewhere = appClient(b.url, demo.aliceToken);
      await connected(elsewhere);
      const other = await elsewhere.timeout(5000).emitWithAck("send_message", payload);
      assert.deepEqual(other.savedMessage, ack.savedMessage);
      elsewhere.close();

      // The same tempId with other content is another message.
      const changed = await alice.timeout(5000).emitWithAck("send_message", { ...payload, content: "once 2" });
      assert.notEqual(changed.savedMessage.id, ack.savedMessage.id);

      await sleep(300);
      assert.equal(countRows(db, "once 1"), 1, "still one row");
      assert.equal(countRows(db, "once 2"), 1);
      assert.deepEqual(
        got.filter(([m]) => m.content === "once 1").length,
        1,
        "bob got the message once",
      );
    } finally {
      closeAll(alice, bob);
      await Promise.all([a.stop(), b.stop()]);
      db.remove();
    }
  });
}

/** A private redis-server on a free port (never the machine's shared one). */
async function privateRedis() {
  const port = await new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  const proc = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: ["ignore", "pipe", "ignore"],
  });
  await new Promise((resolve, reject) => {
    let out = "";
    proc.stdout.on("data", (d) => {
      out += d;
      if (/Ready to accept connections/.test(out)) resolve();
    });
    proc.once("exit", (code) => reject(new Error(`redis-server exited with ${code}`)));
  });
  return { url: `redis://127.0.0.1:${port}`, stop: () => proc.kill("SIGKILL") };
}

test("recovery across two clustered nodes: live messages from the other node count in the offset", { timeout: 90000 }, async () => {
  const db = tempDatabase();
  const redis = await privateRedis();
  const env = { DATABASE_URL: db.url, COURIER__REDIS__URL: redis.url, ...FAST };
  const demo = seedDemo(db.url);
  const a = await startServer(env);
  const b = await startServer(env);
  const lb = await proxy(a.port);
  const alice = appClient(b.url, demo.aliceToken);
  const bob = appClient(lb.url, demo.bobToken, { reconnectionDelay: 1500 });
  const extra = [];
  try {
    await Promise.all([connected(alice), connected(bob)]);
    const got = collect(bob);
    // alice on node b, bob on node a: delivered across the cluster, live.
    const live = await send(alice, demo.connectionId, "live", 3);
    await until("the live messages", () => got.length === 3);
    assert.equal(typeof got[2][1], "string", "an offset on a message from the other node");
    // bob moves to node b; alice writes meanwhile.
    let moved;
    const back = next(bob, "connect", 20000);
    lb.switchTo(b.port);
    moved = await send(alice, demo.connectionId, "moved", 2);
    await back;
    assert.equal(bob.recovered, true);
    await until("every message", () => got.length >= 5);
    await sleep(300);
    assert.deepEqual(
      got.map(([m]) => m.id),
      [...live, ...moved].map((m) => m.id),
      "what the other node delivered is not replayed again",
    );
    // A read receipt crosses nodes with its place in the stream: bob (on node b now) reads;
    // alice's socket on node a gets message_read from the other node, with an offset, and
    // after a reconnect it is not replayed again.
    const aliceOnA = appClient(a.url, demo.aliceToken);
    extra.push(aliceOnA);
    const reads = collect(aliceOnA, "message_read");
    await connected(aliceOnA);
    const ack = await bob.timeout(5000).emitWithAck("mark_message_read", {
      messageId: moved[1].id,
      connectionId: demo.connectionId,
    });
    assert.equal(ack.messageId, moved[1].id, JSON.stringify(ack));
    await until("the receipt from the other node", () => reads.length === 1);
    assert.equal(reads[0][0].messageId, moved[1].id);
    assert.equal(typeof reads[0][1], "string", "an offset on a receipt from the other node");
    await dropAndReconnect(aliceOnA);
    assert.equal(aliceOnA.recovered, true);
    await sleep(500);
    assert.equal(reads.length, 1, `the receipt is not replayed: ${JSON.stringify(reads)}`);
  } finally {
    closeAll(alice, bob, ...extra);
    lb.close();
    await Promise.all([a.stop(), b.stop()]);
    redis.stop();
    db.remove();
  }
});
