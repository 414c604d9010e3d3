// A mixed cluster: a Node socket.io server with @socket.io/redis-adapter 8 (fixture.mjs, the
// app's socket-server handlers) and two Courier nodes on one private Redis and one PostgreSQL
// database. Messages, presence and calls cross between them, and Node's fetchSockets()
// counts the sockets on Courier.
//
// ADAPTER=classic (the default): createAdapter on one redis-server. ADAPTER=sharded:
// createShardedAdapter (sharded pub/sub) on a Redis Cluster of three masters, Courier on
// redis+cluster://; the tests of what that protocol does not carry (allRooms, the one-socket
// join by id) are skipped.
//
// Environment: COURIER_BIN (default ../../target/debug/courier), TEST_DATABASE_URL, ADAPTER.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";
import net from "node:net";
import crypto from "node:crypto";
import os from "node:os";
import pg from "pg";
import { io } from "socket.io-client";

const here = path.dirname(fileURLToPath(import.meta.url));
const COURIER_BIN = process.env.COURIER_BIN ?? path.resolve(here, "../../target/debug/courier");
const DATABASE = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const SECRET = "mixed-cluster-secret";
const SHARDED = process.env.ADAPTER === "sharded";

const live = new Set();
process.on("exit", () => {
  for (const proc of live) {
    try {
      proc.kill("SIGKILL");
    } catch {
      // gone
    }
  }
});

function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Spawns a process; resolves with it and its log once every pattern in `ready` was logged. */
function start(cmd, args, env, ready, ms = 30000) {
  const proc = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  live.add(proc);
  proc.on("exit", () => live.delete(proc));
  proc.log = "";
  const onData = (chunk) => {
    proc.log += chunk;
    if (process.env.CLUSTER_TEST_LOG) process.stderr.write(chunk);
  };
  proc.stdout.on("data", onData);
  proc.stderr.on("data", onData);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${cmd} not ready:\n${proc.log}`)), ms);
    const check = () => {
      if (ready.every((r) => r.test(proc.log))) {
        clearTimeout(timer);
        resolve(proc);
      }
    };
    proc.stdout.on("data", check);
    proc.stderr.on("data", check);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} exited with ${code}:\n${proc.log}`));
    });
  });
}

/** A free port whose Redis Cluster bus port (10000 above it) is free too. */
async function freeClusterPort() {
  for (;;) {
    const port = await freePort();
    if (port >= 55000) continue;
    const busFree = await new Promise((resolve) => {
      const srv = net.createServer();
      srv.once("error", () => resolve(false));
      srv.listen(port + 10000, "127.0.0.1", () => srv.close(() => resolve(true)));
    });
    if (busFree) return port;
  }
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    proc.stdout.on("data", (c) => (out += c));
    proc.stderr.on("data", (c) => (out += c));
    proc.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(" ")}: ${out}`))));
  });
}

/** Three redis-server cluster masters on free ports, joined into one Redis Cluster. */
async function startRedisCluster(dir) {
  const ports = [];
  const procs = [];
  for (let i = 0; i < 3; i++) {
    const port = await freeClusterPort();
    ports.push(port);
    procs.push(
      await start(
        "redis-server",
        [
          "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
          "--cluster-enabled", "yes", "--cluster-config-file", path.join(dir, `nodes-${port}.conf`),
          "--cluster-node-timeout", "2000", "--dir", dir,
        ],
        process.env,
        [/Ready to accept connections/],
      ),
    );
  }
  await run("redis-cli", [
    "--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`),
    "--cluster-replicas", "0", "--cluster-yes",
  ]);
  await until("the Redis Cluster is ok", async () => {
    for (const port of ports) {
      const info = await run("redis-cli", ["-p", String(port), "CLUSTER", "INFO"]);
      if (!info.includes("cluster_state:ok")) return false;
    }
    return true;
  }, 30000);
  return { procs, url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(",")}` };
}

function portOf(proc) {
  return Number(proc.log.match(/listening on http:\/\/[^\s:]+:(\d+)/)[1]);
}

function token(userId) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const head = enc({ alg: "HS256", typ: "JWT" });
  const body = enc({ userId, exp: Math.floor(Date.now() / 1000) + 600 });
  const sig = crypto.createHmac("sha256", SECRET).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

const clients = new Set();

async function connect(port, userId) {
  const socket = io(`http://127.0.0.1:${port}`, {
    auth: { token: token(userId) },
    transports: ["websocket"],
    forceNew: true,
    reconnection: false,
  });
  clients.add(socket);
  socket.seen = [];
  socket.onAny((name, arg) => socket.seen.push([name, arg]));
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  return socket;
}

/** The first event `name` (seen before or after the call) whose argument passes `pred`. */
async function event(socket, name, pred = () => true, ms = 8000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = socket.seen.find(([n, arg]) => n === name && pred(arg));
    if (found) {
      socket.seen.splice(socket.seen.indexOf(found), 1);
      return found[1];
    }
    if (Date.now() > deadline) {
      throw new Error(`no ${name} within ${ms} ms; seen ${JSON.stringify(socket.seen)}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function until(what, check, ms = 8000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let redis = [], courier, courier2, node, admin, schema, clusterDir;
const users = {};
let conn;

before(async () => {
  let redisUrl;
  if (SHARDED) {
    clusterDir = await import("node:fs").then((fs) =>
      fs.mkdtempSync(path.join(os.tmpdir(), "courier-mixed-cluster-")),
    );
    const cluster = await startRedisCluster(clusterDir);
    redis = cluster.procs;
    redisUrl = cluster.url;
  } else {
    const redisPort = await freePort();
    redis = [
      await start(
        "redis-server",
        ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        process.env,
        [/Ready to accept connections/],
      ),
    ];
    redisUrl = `redis://127.0.0.1:${redisPort}`;
  }
  schema = `courier_mixed_${process.pid}_${Date.now()}`;
  admin = new pg.Client({ connectionString: DATABASE });
  await admin.connect();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  const separator = DATABASE.includes("?") ? "&" : "?";
  const courierEnv = {
    PATH: process.env.PATH,
    RUST_LOG: "info",
    PORT: "0",
    SOCKET_SECRET: SECRET,
    DATABASE_URL: `${DATABASE}${separator}schema=${schema}`,
    REDIS_URL: redisUrl,
    COURIER__SERVER__HOST: "127.0.0.1",
    COURIER__METRICS__BIND: "127.0.0.1:0",
    COURIER__PRESENCE__SCOPE: "all",
    COURIER__PRESENCE__OFFLINE_GRACE: "300",
  };
  // The first migrates the database.
  courier = await start(COURIER_BIN, [], courierEnv, [/listening on http:/, /cluster: subscribed/]);
  courier2 = await start(COURIER_BIN, [], courierEnv, [/listening on http:/, /cluster: subscribed/]);
  // Courier migrated the schema: the app's users and their connection.
  const db = new pg.Client({ connectionString: DATABASE, options: `-c search_path=${schema}` });
  await db.connect();
  for (const name of ["alice", "bob", "carol"]) {
    users[name] = `${name}${crypto.randomBytes(4).toString("hex")}`;
    await db.query(
      'INSERT INTO "users" ("id", "email", "name", "updatedAt") VALUES ($1, $2, $3, now())',
      [users[name], `${users[name]}@example.test`, name],
    );
  }
  conn = `conn${crypto.randomBytes(4).toString("hex")}`;
  const [u1, u2] = [users.alice, users.bob].sort();
  await db.query(
    'INSERT INTO "connections" ("id", "user1Id", "user2Id", "status", "updatedAt") ' +
      "VALUES ($1, $2, $3, 'ACTIVE', now())",
    [conn, u1, u2],
  );
  await db.end();
  node = await start(
    process.execPath,
    [path.join(here, "fixture.mjs")],
    {
      PATH: process.env.PATH,
      TZ: "UTC",
      PORT: "0",
      REDIS_URL: redisUrl,
      DATABASE_URL: DATABASE,
      DB_SCHEMA: schema,
      SOCKET_SECRET: SECRET,
      ADAPTER: SHARDED ? "sharded" : "classic",
    },
    [/listening on http:/],
  );
});

after(async () => {
  for (const c of clients) c.close();
  for (const proc of [node, courier, courier2, ...redis]) proc?.kill("SIGKILL");
  if (clusterDir) {
    const fs = await import("node:fs");
    fs.rmSync(clusterDir, { recursive: true, force: true });
  }
  if (admin) {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await admin.end();
  }
});

test("messages cross both ways with Node's own createdAt/updatedAt strings", async () => {
  const aliceNode = await connect(portOf(node), users.alice);
  const bobCourier = await connect(portOf(courier), users.bob);
  aliceNode.emit("send_message", { connectionId: conn, content: "from node", tempId: "t1" });
  const sent = await event(aliceNode, "message_sent");
  const got = await event(bobCourier, "receive_message", (m) => m.content === "from node");
  assert.equal(got.createdAt, sent.savedMessage.createdAt);
  assert.equal(got.updatedAt, sent.savedMessage.updatedAt);
  assert.match(got.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.deepEqual(got, sent.savedMessage);

  bobCourier.emit("send_message", { connectionId: conn, content: "from courier", tempId: "t2" });
  const back = await event(bobCourier, "message_sent");
  const there = await event(aliceNode, "receive_message", (m) => m.content === "from courier");
  assert.deepEqual(there, back.savedMessage);
  aliceNode.close();
  bobCourier.close();
});

test("Node's presence reaches Courier's sockets, and calls ring both ways", async () => {
  const bobCourier = await connect(portOf(courier), users.bob);
  const aliceNode = await connect(portOf(node), users.alice);
  const online = await event(bobCourier, "user_online_status", (p) => p.userId === users.alice);
  assert.equal(online.isOnline, true);
  assert.match(online.timestamp, /Z$/);

  // Node rings Courier: it finds Bob in online_users, which Courier keeps.
  aliceNode.emit("call:initiate", { recipientId: users.bob, callType: "video", roomName: "r1" });
  const ring = await event(bobCourier, "call:incoming");
  assert.equal(ring.callerId, users.alice);
  bobCourier.emit("call:answer", { callerId: users.alice, connectionId: "r1" });
  const accepted = await event(aliceNode, "call:accepted");
  assert.equal(accepted.participantId, users.bob);

  // Courier rings Node: Alice has no socket on a Courier node, but she is online on Node.
  const ack = await bobCourier
    .timeout(5000)
    .emitWithAck("call:initiate", { recipientId: users.alice, callType: "audio", roomName: "r2" });
  assert.deepEqual(ack, { ok: true });
  const back = await event(aliceNode, "call:incoming");
  assert.equal(back.callerId, users.bob);
  aliceNode.close();
  bobCourier.close();
});

test("Node's fetchSockets() counts the sockets on Courier before it marks a user offline", async () => {
  const carolCourier = await connect(portOf(courier), users.carol);
  const carolNode = await connect(portOf(node), users.carol);
  const watcher = await connect(portOf(courier), users.bob);
  carolNode.close();
  await until("Node's fetchSockets for carol", () =>
    new RegExp(`fetchSockets ${users.carol} \\d`).test(node.log),
  );
  assert.match(node.log, new RegExp(`fetchSockets ${users.carol} 1`));
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(
    !watcher.seen.some(([n, p]) => n === "user_offline_status" && p.userId === users.carol),
    "Carol is still online (Courier has her socket)",
  );
  carolCourier.close();
  const offline = await event(watcher, "user_offline_status", (p) => p.userId === users.carol);
  assert.equal(offline.isOnline, false);
  watcher.close();
});

test("Courier asks the Node servers too before it tells a user went offline", async () => {
  const watcher = await connect(portOf(courier), users.alice);
  const bobNode = await connect(portOf(node), users.bob);
  const bobCourier = await connect(portOf(courier), users.bob);
  await new Promise((r) => setTimeout(r, 200));
  bobCourier.close();
  // Past Courier's grace (300 ms): Bob still has his socket on the Node server.
  await new Promise((r) => setTimeout(r, 1200));
  assert.ok(
    !watcher.seen.some(([n, p]) => n === "user_offline_status" && p.userId === users.bob),
    `Bob is still online on Node: ${JSON.stringify(watcher.seen)}`,
  );
  bobNode.close();
  const offline = await event(watcher, "user_offline_status", (p) => p.userId === users.bob);
  assert.equal(offline.isOnline, false);
  watcher.close();
});

/** Runs one of the fixture's cluster-wide server API calls (`/ops/<op>`); its JSON answer. */
async function op(name, params = {}) {
  const qs = new URLSearchParams(params).toString();
  const res = await fetch(`http://127.0.0.1:${portOf(node)}/ops/${name}?${qs}`);
  const body = await res.json();
  assert.equal(res.status, 200, `${name}: ${JSON.stringify(body)}`);
  return body;
}

test("Courier's sockets are in Socket.IO's rooms for Node: <connectionId>, joins, leaves, fetchSockets, allRooms", async () => {
  const alice = await connect(portOf(courier), users.alice);
  const ack = await alice.timeout(5000).emitWithAck("join_chat", conn);
  assert.equal(ack.ok, true);
  // fetchSockets on the conversation's room finds Alice's Courier socket, by its socket.id,
  // with its rooms: its id, its user's, the conversation.
  const found = await op("fetch", { room: conn });
  assert.equal(found.length, 1, JSON.stringify(found));
  assert.equal(found[0].id, alice.id);
  assert.deepEqual(new Set(found[0].rooms), new Set([alice.id, users.alice, conn]));
  assert.equal(found[0].data.userId, users.alice);
  if (!SHARDED) {
    // allRooms(): the classic adapter's request (the sharded one asks nobody).
    const rooms = await op("rooms");
    for (const room of [alice.id, users.alice, conn]) assert.ok(rooms.includes(room), `${room} in ${rooms}`);
  }
  // A Node server's broadcast to the conversation's room reaches the joined socket.
  await op("emit", { room: conn, event: "notice", arg: JSON.stringify({ n: 1 }) });
  assert.deepEqual(await event(alice, "notice"), { n: 1 });
  // socketsJoin / socketsLeave, by the user's room.
  await op("join", { room: users.alice, join: "vip" });
  await until("the join", async () => (await op("fetch", { room: "vip" })).length === 1);
  await op("emit", { room: "vip", event: "notice", arg: JSON.stringify({ n: 2 }) });
  assert.deepEqual(await event(alice, "notice"), { n: 2 });
  await op("leave", { room: users.alice, leave: "vip" });
  await until("the leave", async () => (await op("fetch", { room: "vip" })).length === 0);
  await op("emit", { room: "vip", event: "notice", arg: JSON.stringify({ n: 3 }) });
  if (!SHARDED) {
    // remoteJoin of one socket by its id (classic protocol): Node waits for the answer of
    // the socket's node.
    await op("remote-join", { sid: alice.id, join: "solo" });
    assert.equal((await op("fetch", { room: "solo" })).length, 1);
  } else {
    await op("join", { room: alice.id, join: "solo" });
    await until("the join", async () => (await op("fetch", { room: "solo" })).length === 1);
  }
  await op("emit", { room: "solo", event: "notice", arg: JSON.stringify({ n: 4 }) });
  assert.deepEqual(await event(alice, "notice"), { n: 4 }, "n: 3 went to an empty room");
  alice.close();
});

test("Node's Buffers reach Courier's sockets as binary, and its broadcasts with acks get their answers", async () => {
  const bob = await connect(portOf(courier), users.bob);
  const files = [];
  bob.on("file", (...args) => files.push(args));
  await op("binary", { room: users.bob, event: "file" });
  await until("the binary event", () => files.length === 1);
  const [meta, tail] = files[0];
  assert.equal(meta.name, "a.bin");
  assert.deepEqual([...new Uint8Array(meta.body)], [1, 2, 3]);
  assert.deepEqual([...new Uint8Array(tail)], [255]);
  // io.to(bob).timeout(…).emitWithAck(…): Courier counts Bob's socket and passes on its ack.
  bob.on("question", (arg, callback) => callback({ answer: `${arg}!` }));
  const responses = await op("ask", { room: users.bob, event: "question", arg: "ping", timeout: "3000" });
  assert.deepEqual(responses, [{ answer: "ping!" }]);
  // Nobody there: Courier answers a count of 0 at once, so Node does not wait its timeout.
  const started = Date.now();
  assert.deepEqual(await op("ask", { room: "nobody", event: "question", arg: "x", timeout: "4000" }), []);
  assert.ok(Date.now() - started < 3000, "answered before the timeout");
  bob.close();
});

test("Node's disconnectSockets() disconnects Courier's sockets", async () => {
  const carol = await connect(portOf(courier), users.carol);
  const reason = new Promise((resolve) => carol.once("disconnect", resolve));
  await op("disconnect", { room: users.carol });
  assert.equal(await reason, "io server disconnect");
  await until("no socket left", async () => (await op("fetch", { room: users.carol })).length === 0);
});

test("a message crosses from one Courier node to the receiver's sockets on the other and on Node", async () => {
  const aliceA = await connect(portOf(courier), users.alice);
  const bobB = await connect(portOf(courier2), users.bob);
  const bobNode = await connect(portOf(node), users.bob);
  for (let i = 0; i < 20; i++) {
    aliceA.emit("send_message", { connectionId: conn, content: `x${i}`, tempId: `x${i}` });
  }
  for (const bob of [bobB, bobNode]) {
    for (let i = 0; i < 20; i++) {
      const got = await event(bob, "receive_message", (m) => m.content.startsWith("x"));
      assert.equal(got.content, `x${i}`, "in the order sent");
    }
  }
  // And Node's fetchSockets() finds both of Bob's sockets (every server answers).
  const found = await op("fetch", { room: users.bob });
  assert.deepEqual(new Set(found.map((s) => s.id)), new Set([bobB.id, bobNode.id]));
  aliceA.close();
  bobB.close();
  bobNode.close();
});
